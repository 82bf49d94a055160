package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/httpapi"
	"github.com/pdworker/pdworker/internal/liveview"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
	"github.com/pdworker/pdworker/workers"
)

const (
	simToken  = "pd-token-hooks"
	hookAcct  = "hooks"
	hookEP    = "PHOOKEP"
	webSecret = "webhook-secret-for-tests-0123456"
)

// fakeClock is the simulated time of the seen store.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// hookWorld is the whole webhook path: the simulator over HTTP, the receiver over
// HTTP, an embedded NATS server, a mapping store and webhook workers.
type hookWorld struct {
	t        testing.TB
	sim      *pdsim.Sim
	simURL   string
	recvURL  string
	js       jetstream.JetStream
	srv      *events.Embedded
	view     *liveview.Store
	mappings *mapping.Store
	clock    *fakeClock
	sub      pdsim.WebhookSubscriptionState
	keys     map[string]string // service id → routing key
}

func newHookWorld(t testing.TB, services int) *hookWorld {
	t.Helper()
	srv, _, js := natstest.Start(t)
	return newHookWorldOn(t, srv, js, services, nil)
}

// newHookWorldOn builds the world on a given NATS; connected reports the receiver's
// NATS connection state (nil: always connected).
func newHookWorldOn(t testing.TB, srv *events.Embedded, js jetstream.JetStream, services int, connected func() bool) *hookWorld {
	t.Helper()
	ctx := context.Background()
	w := &hookWorld{t: t, srv: srv, js: js, clock: newFakeClock(), keys: map[string]string{}}
	var err error
	w.view, err = liveview.NewStore(ctx, js)
	require.NoError(t, err)
	w.mappings, err = mapping.NewStore(ctx, js)
	require.NoError(t, err)

	recv := httptest.NewServer(httpapi.NewWebhookHandler(httpapi.WebhookDeps{
		Secrets: []secret.Value{"old-unused-secret", webSecret}, Publisher: js, MaxBodyBytes: 256 << 10, Connected: connected,
	}, zerolog.Nop()))
	t.Cleanup(recv.Close)
	w.recvURL = recv.URL + "?account=" + hookAcct

	w.sim = pdsim.New(pdsim.Options{RateLimit: 1 << 30, Webhooks: pdsim.WebhookOptions{
		RetryInterval: 20 * time.Millisecond, MaxRetryInterval: 100 * time.Millisecond, Concurrency: 32,
	}})
	seed := pdsim.AccountSeed{ID: hookAcct, Tokens: []string{simToken}, EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: hookEP, Name: "Hooks EP"}}}
	for i := range services {
		seed.Services = append(seed.Services, pdsim.ServiceSeed{ID: fmt.Sprintf("PSVC%03d", i), Name: fmt.Sprintf("Service %d", i), EscalationPolicyID: hookEP})
	}
	require.NoError(t, w.sim.AddAccount(seed))
	simSrv := httptest.NewServer(w.sim)
	t.Cleanup(simSrv.Close)
	t.Cleanup(w.sim.StopWebhooks)
	w.simURL = simSrv.URL
	for _, s := range seed.Services {
		w.keys[s.ID] = w.integrationKey(s.ID)
		_, err := w.mappings.Put(ctx, mapping.Mapping{ServiceID: s.ID, EntityRef: "component:default/" + strings.ToLower(s.ID), Account: hookAcct})
		require.NoError(t, err)
	}
	w.sub, err = w.sim.AddWebhookSubscription(hookAcct, pdsim.WebhookSubscription{URL: w.recvURL, Secret: webSecret})
	require.NoError(t, err)
	return w
}

func (w *hookWorld) integrationKey(serviceID string) string {
	body := `{"integration":{"type":"events_api_v2_inbound_integration","name":"alerts"}}`
	req, err := http.NewRequest(http.MethodPost, w.simURL+"/services/"+serviceID+"/integrations", strings.NewReader(body))
	require.NoError(w.t, err)
	req.Header.Set("Authorization", "Token token="+simToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(w.t, err)
	defer resp.Body.Close()
	var out struct {
		Integration struct {
			Key string `json:"integration_key"`
		} `json:"integration"`
	}
	require.NoError(w.t, json.NewDecoder(resp.Body).Decode(&out))
	return out.Integration.Key
}

// enqueue sends one Events API v2 event and fails the test unless it is accepted.
func (w *hookWorld) enqueue(client *http.Client, serviceID, action, dedup string) error {
	body := fmt.Sprintf(`{"routing_key":%q,"event_action":%q,"dedup_key":%q,"payload":{"summary":"problem %s","source":"test","severity":"error"}}`,
		w.keys[serviceID], action, dedup, dedup)
	resp, err := client.Post(w.simURL+"/v2/enqueue", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("enqueue %s %s: %d", action, dedup, resp.StatusCode)
	}
	return nil
}

// worker is one running webhook worker on its own NATS connection; kill stops it
// abruptly (connection closed first, so acks in flight are lost).
type worker struct {
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *hookWorld) startWorker(name string, nc *nats.Conn) *worker {
	w.t.Helper()
	return w.startWorkerMax(name, nc, 50)
}

// startWorkerMax is startWorker with the consumer's MaxDeliver.
func (w *hookWorld) startWorkerMax(name string, nc *nats.Conn, maxDeliver int) *worker {
	w.t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(w.t, err)
	view, err := liveview.NewStore(context.Background(), js)
	require.NoError(w.t, err)
	seen, err := events.NewSeen(context.Background(), js, events.SeenConfig{Now: w.clock.Now})
	require.NoError(w.t, err)
	mappings, err := mapping.NewStore(context.Background(), js)
	require.NoError(w.t, err)
	h := workers.NewWebhookEvents(js, view, seen, mappings, workers.WebhookEventsConfig{DefaultAccount: hookAcct})
	c, err := workers.NewConsumer(js, workers.ConsumerConfig{
		Stream: events.StreamPagerDutyWebhooks, Durable: "pdworker-webhooks", FilterSubjects: []string{events.SubjectWebhookPrefix + ">"},
		Concurrency: 16, AckWait: 2 * time.Second, BaseDelay: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond,
		MaxDeliver: maxDeliver, DrainTimeout: 100 * time.Millisecond, PendingInterval: time.Hour,
	}, h.Handle, nil, zerolog.Nop())
	require.NoError(w.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	wk := &worker{nc: nc, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(wk.done); _ = c.Run(ctx) }()
	w.t.Cleanup(wk.kill)
	return wk
}

func (wk *worker) kill() {
	wk.nc.Close()
	wk.cancel()
	<-wk.done
}

// settle waits until the simulator has delivered everything and the worker has
// processed every stored webhook. How long that takes depends on the machine, so it
// fails only when the work left stops shrinking: no delivery made for stuckAfter, or
// no fewer messages pending and unacknowledged than before for stuckAfter.
func (w *hookWorld) settle(stuckAfter time.Duration) {
	w.t.Helper()
	delivered := func() int {
		n := 0
		for _, s := range w.sim.WebhookSubscriptions(hookAcct) {
			n += s.Delivered + s.Dropped
		}
		return n
	}
	for last := -1; ; {
		ctx, cancel := context.WithTimeout(context.Background(), stuckAfter)
		err := w.sim.WaitWebhooks(ctx)
		cancel()
		if err == nil {
			break
		}
		now := delivered()
		require.NotEqual(w.t, last, now, "the simulator delivered nothing for %s: %v", stuckAfter, err)
		last = now
	}

	ctx := context.Background()
	left := func() (uint64, error) {
		info, err := w.consumerInfo(ctx)
		if err != nil {
			return 0, err
		}
		return info.NumPending + uint64(info.NumAckPending), nil
	}
	least, progress := uint64(math.MaxUint64), time.Now()
	var lastErr error
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for ; ; <-poll.C {
		n, err := left()
		switch {
		case err != nil:
			lastErr = err
		case n == 0:
			return
		case n < least:
			least, progress = n, time.Now()
		}
		if time.Since(progress) >= stuckAfter {
			w.t.Fatalf("the worker made no progress for %s: at best %d messages pending or unacknowledged (last error: %v)",
				stuckAfter, least, lastErr)
		}
	}
}

func (w *hookWorld) consumerInfo(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	c, err := w.js.Consumer(ctx, events.StreamPagerDutyWebhooks, "pdworker-webhooks")
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// streamCount is the number of messages a stream holds.
func (w *hookWorld) streamCount(name string) uint64 {
	n, err := w.streamMsgs(name)
	require.NoError(w.t, err)
	return n
}

// streamMsgs is the number of messages of stream name.
func (w *hookWorld) streamMsgs(name string) (uint64, error) {
	ctx := context.Background()
	s, err := w.js.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// assertViewMatchesSim compares the live view with the simulator's incidents.
func (w *hookWorld) assertViewMatchesSim() {
	w.t.Helper()
	want := map[string]map[string]string{} // service → open incident → status
	for _, inc := range w.sim.Incidents(hookAcct) {
		if inc.Status == pdsim.IncidentResolved {
			continue
		}
		if want[inc.ServiceID] == nil {
			want[inc.ServiceID] = map[string]string{}
		}
		want[inc.ServiceID][inc.ID] = inc.Status
	}
	views, err := w.view.List(context.Background(), hookAcct)
	require.NoError(w.t, err)
	got := map[string]map[string]string{}
	for _, v := range views {
		counts := map[string]int{}
		for id, inc := range v.Open {
			if got[v.ServiceID] == nil {
				got[v.ServiceID] = map[string]string{}
			}
			got[v.ServiceID][id] = inc.Status
			counts[inc.Status]++
			assert.NotEmpty(w.t, inc.HTMLURL)
			assert.NotEmpty(w.t, inc.Title)
		}
		assert.Equal(w.t, counts[pdsim.IncidentTriggered], v.Counts[pdsim.IncidentTriggered], v.ServiceID)
		assert.Equal(w.t, counts[pdsim.IncidentAcknowledged], v.Counts[pdsim.IncidentAcknowledged], v.ServiceID)
	}
	assert.Equal(w.t, want, got, "live view equals the simulator's open incidents")
}

// burst drives incidents through the Events API: each of n incidents is triggered,
// most are acknowledged and many resolved, in order per incident, with parallel
// incidents; it returns the number of state changes (one webhook each).
func (w *hookWorld) burst(n int, services []string, parallel int) int {
	w.t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: parallel}}
	var changes atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	next := make(chan int)
	for range parallel {
		wg.Go(func() {
			for i := range next {
				svc := services[i%len(services)]
				key := fmt.Sprintf("inc-%05d", i)
				steps := []string{"trigger"}
				if i%8 != 0 {
					steps = append(steps, "acknowledge")
				}
				if i%8 >= 3 {
					steps = append(steps, "resolve")
				}
				for _, a := range steps {
					if err := w.enqueue(client, svc, a, key); err != nil {
						select {
						case errs <- err:
						default:
						}
						return
					}
					changes.Add(1)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	require.NoError(w.t, <-errs)
	return int(changes.Load())
}

func (w *hookWorld) serviceIDs() []string {
	var out []string
	for id := range w.keys {
		out = append(out, id)
	}
	return out
}

// TestWebhooksExactlyOnceAcrossCrashesAndLateDuplicates is the must-hold: 10,000
// distinct deliveries, each sent twice more (once at once, once "hours later" after
// JetStream's duplicate window), with the worker killed and restarted during the
// burst. Every event is processed exactly once (one entity event and one seen
// record each) and the live view equals the simulator's incidents.
func TestWebhooksExactlyOnceAcrossCrashesAndLateDuplicates(t *testing.T) {
	w := newHookWorld(t, 40)
	// The resend "at once" below comes after the burst and its processing, however
	// long they take here; the duplicate window must still hold the first ids then.
	setDuplicateWindow(t, w.js, time.Hour)
	conn := func(name string) *nats.Conn {
		nc, err := w.srv.Conn(name)
		require.NoError(t, err)
		return nc
	}
	first := w.startWorker("worker-1", conn("worker-1"))

	// Kill the worker once a third of the burst has been processed, then restart it.
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		seen, err := w.js.KeyValue(context.Background(), events.BucketWebhookSeen)
		if err != nil {
			return
		}
		for {
			st, err := seen.Status(context.Background())
			if err == nil && st.Values() >= 3000 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		first.kill()
		w.startWorker("worker-2", conn("worker-2"))
	}()

	// 2,000 incidents: 2,000 triggers, 1,750 acks, 1,250 resolves... scaled to 10,000.
	changes := w.burst(4000, w.serviceIDs(), 24)
	require.Equal(t, 10000, changes)
	<-restarted
	w.settle(60 * time.Second)

	// Duplicates at once: JetStream's duplicate window drops them.
	require.Equal(t, 10000, w.sim.ResendWebhooks(w.sub.ID))
	w.settle(60 * time.Second)
	require.Equal(t, uint64(10000), w.streamCount(events.StreamPagerDutyWebhooks))

	// Duplicates hours later: the duplicate window has passed (shrunk here so the
	// test need not wait) and the clock has moved on; only the seen records stop them.
	w.clock.Advance(5 * time.Hour)
	shrinkDuplicateWindow(t, w.js)
	require.Equal(t, 10000, w.sim.ResendWebhooks(w.sub.ID))
	w.settle(60 * time.Second)
	require.Equal(t, uint64(20000), w.streamCount(events.StreamPagerDutyWebhooks), "late duplicates reached the stream")

	assert.Equal(t, uint64(10000), w.streamCount(events.StreamPagerDutyEntity), "one entity event per distinct delivery")
	seen, err := w.js.KeyValue(context.Background(), events.BucketWebhookSeen)
	require.NoError(t, err)
	st, err := seen.Status(context.Background())
	require.NoError(t, err)
	assert.Equal(t, uint64(10000), st.Values())
	w.assertViewMatchesSim()
	for _, s := range w.sim.WebhookSubscriptions(hookAcct) {
		assert.Equal(t, 30000, s.Delivered, "every delivery and duplicate got a 2xx")
		assert.Zero(t, s.Dropped)
	}
}

func shrinkDuplicateWindow(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, events.StreamPagerDutyWebhooks)
	require.NoError(t, err)
	// A probe with its own id (an event type the worker skips) tells when the server
	// has forgotten the ids of the old window; each stored probe is deleted again. It
	// reports to t, which is the condition's own collector while polling: a failing
	// require in Eventually's goroutine would leave Eventually waiting its full time.
	probe := func(t require.TestingT) *jetstream.PubAck {
		msg := nats.NewMsg(events.WebhookSubject("pdworker.probe"))
		msg.Header.Set(nats.MsgIdHdr, "duplicate-window-probe")
		msg.Data = []byte(`{"event":{"id":"probe","event_type":"pdworker.probe","resource_type":"pdworker","occurred_at":"2026-01-01T00:00:00Z"}}`)
		ack, err := js.PublishMsg(ctx, msg)
		require.NoError(t, err)
		if !ack.Duplicate {
			require.NoError(t, s.DeleteMsg(ctx, ack.Sequence))
		}
		return ack
	}
	require.False(t, probe(t).Duplicate)
	// A change of the window makes the server purge old ids at once, but that purge
	// can still run under the window before the change and then not run again until
	// that window has passed. Changing the window twice makes the purge after the
	// second change run under a short window whatever the timing.
	setDuplicateWindow(t, js, 200*time.Millisecond)
	setDuplicateWindow(t, js, 100*time.Millisecond)
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.False(c, probe(c).Duplicate) }, 3*time.Minute, 50*time.Millisecond,
		"the server forgets the ids of the old duplicate window")
}

// setDuplicateWindow sets the duplicate window of the webhook stream.
func setDuplicateWindow(t testing.TB, js jetstream.JetStream, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, events.StreamPagerDutyWebhooks)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	cfg.Duplicates = d
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
}

// TestWebhooksSurviveNATSRestart: with NATS stopped the receiver answers 503, the
// simulator keeps retrying, and once NATS is back every webhook lands and is
// processed; nothing is lost.
func TestWebhooksSurviveNATSRestart(t *testing.T) {
	dir := t.TempDir()
	start := func(listen string) *events.Embedded {
		e, err := events.StartEmbedded(events.EmbeddedConfig{Listen: listen, StoreDir: dir}, zerolog.Nop())
		require.NoError(t, err)
		return e
	}
	srv := start("127.0.0.1:0")
	url := srv.ClientURL()
	listen := strings.TrimPrefix(url, "nats://")
	connect := func(name string) *nats.Conn {
		nc, err := events.Connect(context.Background(), url, name, zerolog.Nop())
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	recvConn := connect("receiver")
	js, err := jetstream.New(recvConn)
	require.NoError(t, err)
	require.NoError(t, events.Provision(context.Background(), js, 1))
	w := newHookWorldOn(t, srv, js, 5, recvConn.IsConnected)
	w.startWorker("worker", connect("worker"))

	client := &http.Client{}
	services := w.serviceIDs()
	require.NoError(t, w.enqueue(client, services[0], "trigger", "before"))
	w.settle(30 * time.Second)

	srv.Shutdown()
	require.Eventually(t, func() bool { return !recvConn.IsConnected() }, 10*time.Second, 10*time.Millisecond)
	for i, svc := range services {
		require.NoError(t, w.enqueue(client, svc, "trigger", fmt.Sprintf("during-%d", i)))
		require.NoError(t, w.enqueue(client, svc, "acknowledge", fmt.Sprintf("during-%d", i)))
	}
	require.NoError(t, w.enqueue(client, services[0], "resolve", "before"))
	require.Eventually(t, func() bool {
		for _, s := range w.sim.WebhookSubscriptions(hookAcct) {
			if s.Retried >= 5 {
				return true
			}
		}
		return false
	}, 10*time.Second, 10*time.Millisecond, "the receiver answered 503 and the simulator retries")

	srv = start(listen)
	t.Cleanup(srv.Shutdown)
	w.settle(60 * time.Second)
	w.assertViewMatchesSim()
	for _, s := range w.sim.WebhookSubscriptions(hookAcct) {
		assert.Equal(t, 2*len(services)+2, s.Delivered)
		assert.Zero(t, s.Dropped)
	}
}

// TestWebhookEventsOrderingAndTypes publishes webhooks straight to the stream (as
// anyone may): out-of-order deliveries never move an incident backwards, service
// events refresh and retire the service, pagey.ping and unknown types are kept in the
// stream and skipped, and a body that is not an envelope is dead-lettered.
func TestWebhookEventsOrderingAndTypes(t *testing.T) {
	w := newHookWorld(t, 1)
	w.startWorker("worker", func() *nats.Conn { nc, err := w.srv.Conn("w"); require.NoError(t, err); return nc }())
	ctx := context.Background()
	pub := func(id, eventType, resource, at, data string) {
		body := fmt.Sprintf(`{"event":{"id":%q,"event_type":%q,"resource_type":%q,"occurred_at":%q,"agent":null,"client":null,"data":%s}}`,
			id, eventType, resource, at, data)
		msg := nats.NewMsg(events.WebhookSubject(eventType))
		msg.Data = []byte(body)
		msg.Header.Set(nats.MsgIdHdr, id)
		msg.Header.Set(events.HeaderWebhookAccount, hookAcct)
		_, err := w.js.PublishMsg(ctx, msg)
		require.NoError(t, err)
	}
	inc := func(status string) string {
		return fmt.Sprintf(`{"id":"PINC1","type":"incident","status":%q,"title":"db down","urgency":"high","html_url":"https://x/incidents/PINC1","service":{"id":"PSVC000","type":"service_reference","summary":"Service 0"},"assignees":[{"id":"PU1","type":"user_reference","summary":"Ann"}]}`, status)
	}
	pub("e1", "incident.triggered", "incident", "2026-03-01T10:00:00.000Z", inc("triggered"))
	pub("e3", "incident.resolved", "incident", "2026-03-01T10:02:00.000Z", inc("resolved"))
	pub("e2", "incident.acknowledged", "incident", "2026-03-01T10:01:00.000Z", inc("acknowledged")) // late
	pub("e4", "incident.triggered", "incident", "2026-03-01T10:03:00.000Z",
		strings.ReplaceAll(inc("triggered"), "PINC1", "PINC2"))
	pub("p1", "pagey.ping", "pagey", "2026-03-01T10:04:00.000Z", `{"message":"Hello from your friend Pagey!","type":"ping"}`)
	pub("u1", "oncall.handoff", "oncall", "2026-03-01T10:04:00.000Z", `{"id":"X"}`)
	pub("s1", "service.updated", "service", "2026-03-01T10:05:00.000Z", `{"id":"PSVC000","type":"service","summary":"Renamed","html_url":"https://x/services/PSVC000"}`)
	w.settle(20 * time.Second)

	v, err := w.view.Get(ctx, hookAcct, "PSVC000")
	require.NoError(t, err)
	require.NotNil(t, v)
	assert.Equal(t, []string{"PINC2"}, keys(v.Open), "the late acknowledgement did not reopen PINC1")
	assert.Equal(t, 1, v.Counts["triggered"])
	assert.Equal(t, 1, v.Counts["resolved"])
	assert.Equal(t, "Renamed", v.Name)
	assert.Equal(t, "Ann", v.Open["PINC2"].Assignees[0].Summary)

	pub("s2", "service.deleted", "service", "2026-03-01T10:06:00.000Z", `{"id":"PSVC000","type":"service","summary":"Renamed"}`)
	pub("s0", "service.updated", "service", "2026-03-01T10:05:30.000Z", `{"id":"PSVC000","type":"service","summary":"Older"}`) // late
	msg := nats.NewMsg(events.WebhookSubject("incident.triggered"))
	msg.Data = []byte(`not json`)
	_, err = w.js.PublishMsg(ctx, msg)
	require.NoError(t, err)
	w.settle(20 * time.Second)

	v, err = w.view.Get(ctx, hookAcct, "PSVC000")
	require.NoError(t, err)
	assert.True(t, v.Deleted, "service.deleted retires the service")
	assert.Empty(t, v.Open)
	assert.Equal(t, "Renamed", v.Name, "an older service.updated does not undo the deletion")
	assert.Equal(t, uint64(10), w.streamCount(events.StreamPagerDutyWebhooks), "unknown types and pings stay in the stream")
	assert.Equal(t, uint64(1), w.streamCount(events.StreamDeadLetter), "the body that is not an envelope is dead-lettered")
	// Entity events: 4 incident events + 3 service events for the mapped service.
	assert.Equal(t, uint64(7), w.streamCount(events.StreamPagerDutyEntity))
	raw, err := w.js.Stream(ctx, events.StreamPagerDutyEntity)
	require.NoError(t, err)
	last, err := raw.GetLastMsgForSubject(ctx, events.EntitySubject("service.deleted"))
	require.NoError(t, err)
	var ent workers.EntityEvent
	require.NoError(t, json.Unmarshal(last.Data, &ent))
	assert.Equal(t, "component:default/psvc000", ent.EntityRef)
	assert.Equal(t, "PSVC000", ent.ServiceID)
	assert.Equal(t, hookAcct, ent.Account)
	assert.Contains(t, string(ent.Event), `"service.deleted"`)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
