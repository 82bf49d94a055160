package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/liveview"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
	"github.com/pdworker/pdworker/workers"
)

const (
	e2eAccount  = "acme"
	e2eToken    = "pdload-rest-token"
	e2eServices = 50
	// stepGap separates the changes of one incident (trigger, acknowledge, resolve),
	// so that each state is usually visible on its own. The live view only promises
	// to converge on an incident's latest state: when the worker falls behind, a
	// later change can be applied first and the earlier one is then stale, so a
	// state may never show.
	stepGap = 200 * time.Millisecond
	// settleTimeout bounds the wait for the last changes to reach the live view.
	settleTimeout = 30 * time.Second
)

// lifecycleStep is one change of an incident: the Events API action and the state it
// leads to.
type lifecycleStep struct{ action, status string }

// lifecycle returns the order of each incident's changes; the live view never moves
// an incident back along it. It ends in finalStatus.
func lifecycle() [3]lifecycleStep {
	return [3]lifecycleStep{{"trigger", pdsim.IncidentTriggered}, {"acknowledge", pdsim.IncidentAcknowledged}, {"resolve", finalStatus}}
}

// finalStatus is the state each incident ends in.
const finalStatus = pdsim.IncidentResolved

// endToEnd measures how long an incident state change in the simulator takes to show
// in the live view: Events API → simulator → signed webhook → receiver → JetStream →
// webhook worker → live-view bucket → watcher.
func endToEnd(ctx context.Context, o options, out io.Writer) error {
	env, receiverURL, err := startReceiver(ctx, storeDurable)
	if err != nil {
		return err
	}
	defer env.close()
	key := secret.Value(loadSecretValue)

	view, err := liveview.NewStore(ctx, env.js)
	if err != nil {
		return err
	}
	seen, err := events.NewSeen(ctx, env.js, events.SeenConfig{})
	if err != nil {
		return err
	}
	mappings, err := mapping.NewStore(ctx, env.js)
	if err != nil {
		return err
	}
	handler := workers.NewWebhookEvents(env.js, view, seen, mappings, workers.WebhookEventsConfig{DefaultAccount: e2eAccount})
	consumer, err := workers.NewConsumer(env.js, workers.ConsumerConfig{
		Stream: events.StreamPagerDutyWebhooks, Durable: "pdworker-webhooks",
		FilterSubjects: []string{events.SubjectWebhookPrefix + ">"}, Concurrency: 8,
	}, handler.Handle, nil, zerolog.Nop())
	if err != nil {
		return err
	}
	runCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	go func() { defer close(workerDone); _ = consumer.Run(runCtx) }()
	defer func() { stopWorker(); <-workerDone }()

	sim := pdsim.New(pdsim.Options{RateLimit: 1 << 30, Webhooks: pdsim.WebhookOptions{
		RetryInterval: 50 * time.Millisecond, MaxRetryInterval: time.Second, Concurrency: 32,
	}})
	defer sim.StopWebhooks()
	seed := pdsim.AccountSeed{ID: e2eAccount, Tokens: []string{e2eToken}, EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PEPLOAD", Name: "Load EP"}}}
	for i := range e2eServices {
		seed.Services = append(seed.Services, pdsim.ServiceSeed{ID: fmt.Sprintf("PSVC%03d", i), Name: fmt.Sprintf("Service %d", i), EscalationPolicyID: "PEPLOAD"})
	}
	if err := sim.AddAccount(seed); err != nil {
		return err
	}
	simURL, stopSim, err := serve(sim)
	if err != nil {
		return err
	}
	defer stopSim()
	client := newClient()
	var routingKeys []string
	for _, s := range seed.Services {
		k, err := integrationKey(client, simURL, s.ID)
		if err != nil {
			return err
		}
		routingKeys = append(routingKeys, k)
	}
	if _, err := sim.AddWebhookSubscription(e2eAccount, pdsim.WebhookSubscription{
		URL: receiverURL + "/api/pagerduty/webhooks?account=" + e2eAccount, Secret: key.Reveal(),
	}); err != nil {
		return err
	}

	w := newViewWatcher()
	kv, err := env.js.KeyValue(ctx, events.BucketLiveView)
	if err != nil {
		return err
	}
	watch, err := kv.Watch(runCtx, "*.svc.*", jetstream.UpdatesOnly())
	if err != nil {
		return err
	}
	defer func() { _ = watch.Stop() }()
	go w.run(watch)

	// Open loop: a new incident every 3/rate seconds; each goes through trigger,
	// acknowledge and resolve, stepGap apart.
	changes := &changeLog{at: map[string]time.Time{}}
	perIncident := time.Duration(3 * float64(time.Second) / float64(o.e2eRate))
	n := int(o.e2eDuration / perIncident)
	var wg sync.WaitGroup
	start := time.Now()
	var failures sync.Map
	dedups := make([]string, 0, n)
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * perIncident)); wait > 0 {
			time.Sleep(wait)
		}
		rk := routingKeys[i%len(routingKeys)]
		dedup := fmt.Sprintf("e2e-%06d", i)
		dedups = append(dedups, dedup)
		wg.Go(func() {
			for j, step := range lifecycle() {
				if j > 0 {
					time.Sleep(stepGap)
				}
				changes.note(dedup+"/"+step.status, time.Now())
				if err := enqueue(client, simURL, rk, step.action, dedup); err != nil {
					failures.Store(dedup, err)
					return
				}
			}
		})
	}
	wg.Wait()
	var failed []string
	failures.Range(func(k, v any) bool { failed = append(failed, fmt.Sprintf("%v: %v", k, v)); return true })
	if len(failed) > 0 {
		return fmt.Errorf("events API: %d incidents failed, first: %s", len(failed), failed[0])
	}
	settleCtx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if err := sim.WaitWebhooks(settleCtx); err != nil {
		return err
	}

	// Join: dedup key → simulator incident id, then change time → first sight of
	// that state or a later one.
	idOf := map[string]string{}
	for _, inc := range sim.Incidents(e2eAccount) {
		idOf[inc.IncidentKey] = inc.ID
	}
	want := len(lifecycle()) * n
	var obs observation
	deadline := time.NewTimer(settleTimeout)
	defer deadline.Stop()
wait:
	for {
		obs = observe(dedups, idOf, changes, w.snapshot())
		if len(obs.unsettled) == 0 {
			break
		}
		select {
		case <-w.changed:
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			return fmt.Errorf("waiting for the live view: %w", ctx.Err())
		}
	}
	r := result{latencies: obs.latencies}
	sub := sim.WebhookSubscriptions(e2eAccount)[0]
	fmt.Fprintln(out, "## End to end: simulator state change → live view")
	fmt.Fprintln(out)
	fmt.Fprintf(out, "%d incidents × 3 changes (trigger, acknowledge, resolve %s apart) at %d changes/s for %s; %d of %d changes observed in the live view (%d as their own state, %d only through a later state of the same incident); simulator: %d delivered, %d retried, %d dropped\n\n",
		n, stepGap, o.e2eRate, o.e2eDuration, len(obs.latencies), want, obs.direct, obs.superseded, sub.Delivered, sub.Retried, sub.Dropped)
	fmt.Fprintln(out, "| p50 | p99 | max |")
	fmt.Fprintln(out, "|---|---|---|")
	fmt.Fprintf(out, "| %s | %s | %s |\n\n", ms(r.percentile(0.50)), ms(r.percentile(0.99)), ms(r.percentile(1)))
	if len(obs.unsettled) > 0 {
		return fmt.Errorf("%d of %d incidents did not reach their final state (%s) in the live view within %s (first: %s); %d of %d changes observed",
			len(obs.unsettled), n, finalStatus, settleTimeout, obs.unsettled[0], len(obs.latencies), want)
	}
	return nil
}

// observation is what the live view showed of the requested changes.
type observation struct {
	// latencies holds, sorted, one entry per observed change: from its request to
	// the first sight of its state or of a later state of the same incident.
	latencies []time.Duration
	// direct counts changes whose own state appeared in the view; superseded those
	// seen only through a later state, which the view may show instead since it
	// promises the latest state of each incident, not every state.
	direct, superseded int
	// unsettled lists the dedup keys of incidents whose final state has not
	// appeared.
	unsettled []string
}

// observe joins the requested changes of the incidents with dedup keys dedups
// (idOf maps a dedup key to the simulator's incident id) with the first sight of
// each incident state (incident id/status) in the live view.
func observe(dedups []string, idOf map[string]string, changes *changeLog, first map[string]time.Time) observation {
	var o observation
	steps := lifecycle()
	for _, dedup := range dedups {
		id, ok := idOf[dedup]
		if !ok {
			o.unsettled = append(o.unsettled, dedup)
			continue
		}
		if _, ok := first[id+"/"+finalStatus]; !ok {
			o.unsettled = append(o.unsettled, dedup)
		}
		for j, step := range steps {
			at, ok := changes.get(dedup + "/" + step.status)
			if !ok {
				continue
			}
			// The view never moves back, so the earliest sight among this state
			// and the later ones is when this change became visible.
			var seenAt time.Time
			for _, later := range steps[j:] {
				if t, ok := first[id+"/"+later.status]; ok && (seenAt.IsZero() || t.Before(seenAt)) {
					seenAt = t
				}
			}
			if seenAt.IsZero() {
				continue
			}
			if _, ok := first[id+"/"+step.status]; ok {
				o.direct++
			} else {
				o.superseded++
			}
			o.latencies = append(o.latencies, seenAt.Sub(at))
		}
	}
	slices.Sort(o.latencies)
	return o
}

// changeLog records when each change (dedup key/status) was requested.
type changeLog struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (c *changeLog) note(k string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at[k] = t
}

func (c *changeLog) get(k string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.at[k]
	return t, ok
}

// viewWatcher notes when each incident state (incident id/status) first appears in
// the live view, and signals changed after each update of the view.
type viewWatcher struct {
	mu      sync.Mutex
	first   map[string]time.Time
	changed chan struct{}
}

func newViewWatcher() *viewWatcher {
	return &viewWatcher{first: map[string]time.Time{}, changed: make(chan struct{}, 1)}
}

func (v *viewWatcher) run(w jetstream.KeyWatcher) {
	for e := range w.Updates() {
		if e == nil || e.Operation() != jetstream.KeyValuePut {
			continue
		}
		now := time.Now()
		var svc liveview.Service
		if json.Unmarshal(e.Value(), &svc) != nil {
			continue
		}
		v.mu.Lock()
		for id, inc := range svc.Open {
			v.noteLocked(id+"/"+inc.Status, now)
		}
		for id := range svc.Resolved {
			v.noteLocked(id+"/"+pdsim.IncidentResolved, now)
		}
		v.mu.Unlock()
		select {
		case v.changed <- struct{}{}:
		default:
		}
	}
}

func (v *viewWatcher) noteLocked(k string, t time.Time) {
	if _, ok := v.first[k]; !ok {
		v.first[k] = t
	}
}

func (v *viewWatcher) snapshot() map[string]time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]time.Time, len(v.first))
	for k, t := range v.first {
		out[k] = t
	}
	return out
}

// integrationKey creates an Events API v2 integration on a simulator service and
// returns its routing key.
func integrationKey(client *http.Client, simURL, serviceID string) (string, error) {
	body := `{"integration":{"type":"events_api_v2_inbound_integration","name":"load"}}`
	req, err := http.NewRequest(http.MethodPost, simURL+"/services/"+serviceID+"/integrations", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Token token="+e2eToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Integration struct {
			Key string `json:"integration_key"`
		} `json:"integration"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Integration.Key == "" {
		return "", fmt.Errorf("create integration on %s: status %d: %v", serviceID, resp.StatusCode, err)
	}
	return out.Integration.Key, nil
}

// enqueue sends one Events API v2 event and expects 202.
func enqueue(client *http.Client, simURL, routingKey, action, dedup string) error {
	body := fmt.Sprintf(`{"routing_key":%q,"event_action":%q,"dedup_key":%q,"payload":{"summary":"load %s","source":"pdload","severity":"error"}}`,
		routingKey, action, dedup, dedup)
	resp, err := client.Post(simURL+"/v2/enqueue", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("%s %s: status %d", action, dedup, resp.StatusCode)
	}
	return nil
}
