package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/httpapi"
	"github.com/pdworker/pdworker/internal/secret"
	"github.com/pdworker/pdworker/internal/webhook"
)

// Objectives the ingest run is judged against.
const (
	targetP99       = 10 * time.Millisecond
	targetShare     = 0.5  // of the floor's maximum throughput
	goalShare       = 0.7  // of the floor's maximum throughput
	goalRate        = 2500 // deliveries per second with zero non-2xx and p99 under targetP99
	baselineRate    = 1000
	maxInFlight     = 4096
	requestTimeout  = 10 * time.Second
	warmupRequests  = 2000
	warmupClients   = 64
	leadIn          = 2 * time.Second // uncounted start of each fixed-rate run
	loadSecretValue = "pdload-webhook-signing-secret-0001"
)

type options struct {
	mode        string
	rates       []int
	duration    time.Duration
	concurrency []int
	store       string
	maxDuration time.Duration
	rounds      int
	e2eRate     int
	e2eDuration time.Duration
}

func main() {
	var o options
	var rates, clients string
	flag.StringVar(&o.mode, "mode", "all", "what to measure: all, ingest or e2e")
	flag.StringVar(&rates, "rate", "1000,2500", "fixed open-loop rates in requests per second, comma-separated")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each fixed-rate run")
	flag.StringVar(&clients, "concurrency", "16,64,256", "client counts of the maximum-throughput runs, comma-separated; a target's maximum is its best run")
	flag.StringVar(&o.store, "store", storeDurable, "how the ingest run's receiver stores deliveries: "+
		"durable (pdworker's: the stream writes each message before acknowledging it), "+
		"async (JetStream's async persist mode: the ack comes first; not pdworker's setting) or "+
		"none (no publish: the receiver's own work alone)")
	flag.DurationVar(&o.maxDuration, "max-duration", 5*time.Second, "length of each maximum-throughput run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of maximum-throughput runs (every client count, both targets, alternating)")
	flag.IntVar(&o.e2eRate, "e2e-rate", 150, "incident state changes per second of the end-to-end run")
	flag.DurationVar(&o.e2eDuration, "e2e-duration", 10*time.Second, "length of the end-to-end run")
	flag.Parse()
	var err error
	if o.rates, err = positiveInts("-rate", rates); err == nil {
		o.concurrency, err = positiveInts("-concurrency", clients)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pdload:", err)
		os.Exit(2)
	}
	if o.rounds < 1 {
		fmt.Fprintln(os.Stderr, "pdload: -rounds must be at least 1")
		os.Exit(2)
	}
	if o.store != storeDurable && o.store != storeAsync && o.store != storeNone {
		fmt.Fprintln(os.Stderr, "pdload: -store must be durable, async or none")
		os.Exit(2)
	}
	if o.mode != "all" && o.mode != "ingest" && o.mode != "e2e" {
		fmt.Fprintln(os.Stderr, "pdload: -mode must be all, ingest or e2e")
		os.Exit(2)
	}
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pdload:", err)
		os.Exit(1)
	}
}

// positiveInts parses a comma-separated list of positive integers given to flag name.
func positiveInts(name, list string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s %q: want positive integers, comma-separated", name, list)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(ctx context.Context, o options, out io.Writer) error {
	fmt.Fprintf(out, "pdload: %d CPUs, %s/%s, %s, GOMAXPROCS=%d\n\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), runtime.GOMAXPROCS(0))
	if o.mode == "all" || o.mode == "ingest" {
		if err := ingest(ctx, o, out); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
	}
	if o.mode == "all" || o.mode == "e2e" {
		if err := endToEnd(ctx, o, out); err != nil {
			return fmt.Errorf("end to end: %w", err)
		}
	}
	return nil
}

// natsEnv is an embedded NATS server with file storage in a temporary directory, a TCP
// connection to it and every stream and bucket provisioned.
type natsEnv struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	close func()
}

func startNATS(ctx context.Context) (*natsEnv, error) {
	dir, err := os.MkdirTemp("", "pdload-")
	if err != nil {
		return nil, err
	}
	srv, err := events.StartEmbedded(events.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: dir}, zerolog.Nop())
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	cleanup := func() {
		srv.Shutdown()
		_ = os.RemoveAll(dir)
	}
	nc, err := events.Connect(ctx, srv.ClientURL(), "pdload", zerolog.Nop())
	if err != nil {
		cleanup()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		err = events.Provision(ctx, js, 1)
	}
	if err != nil {
		nc.Close()
		cleanup()
		return nil, err
	}
	return &natsEnv{nc: nc, js: js, close: func() { nc.Close(); cleanup() }}, nil
}

// serve serves h on a free port of 127.0.0.1 and returns its base URL and a stop
// function.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = hs.Close() }, nil
}

// Values of -store.
const (
	storeDurable = "durable"
	storeAsync   = "async"
	storeNone    = "none"
)

// startReceiver starts NATS and serves the real webhook receiver on it (signed with
// loadSecretValue), storing deliveries as store says; env.close stops both.
func startReceiver(ctx context.Context, store string) (*natsEnv, string, error) {
	env, err := startNATS(ctx)
	if err != nil {
		return nil, "", err
	}
	var publisher httpapi.WebhookPublisher = env.js
	switch store {
	case storeAsync:
		err = persistAsync(ctx, env.js, events.StreamPagerDutyWebhooks)
	case storeNone:
		publisher = discard{}
	}
	if err != nil {
		env.close()
		return nil, "", err
	}
	// The service's whole handler (routing, metrics, panic recovery), with only the
	// webhook route's dependencies: the receiver as pdworker serves it.
	reg := prometheus.NewRegistry()
	url, stop, err := serve(httpapi.New(httpapi.Config{MaxBodyBytes: 1 << 20}, httpapi.Deps{
		Gatherer: reg, Registerer: reg, Connected: env.nc.IsConnected,
		Webhooks: httpapi.WebhookDeps{
			Secrets: []secret.Value{secret.Value(loadSecretValue)}, Publisher: publisher, MaxBodyBytes: 1 << 20, Connected: env.nc.IsConnected,
		},
	}, zerolog.Nop()))
	if err != nil {
		env.close()
		return nil, "", err
	}
	closeNATS := env.close
	env.close = func() { stop(); closeNATS() }
	return env, url, nil
}

// persistAsync recreates stream name in JetStream's async persist mode.
func persistAsync(ctx context.Context, js jetstream.JetStream, name string) error {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return err
	}
	cfg := s.CachedInfo().Config
	cfg.PersistMode = jetstream.AsyncPersistMode
	if err := js.DeleteStream(ctx, name); err != nil {
		return err
	}
	_, err = js.CreateStream(ctx, cfg)
	return err
}

// discard is a publisher that stores nothing and always succeeds (-store none).
type discard struct{}

func (discard) PublishMsg(context.Context, *nats.Msg, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return &jetstream.PubAck{Stream: events.StreamPagerDutyWebhooks}, nil
}

func ingest(ctx context.Context, o options, out io.Writer) error {
	env, receiverURL, err := startReceiver(ctx, o.store)
	if err != nil {
		return err
	}
	defer env.close()
	key := secret.Value(loadSecretValue)
	floorURL, stopFloor, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	if err != nil {
		return err
	}
	defer stopFloor()

	gen := &deliveries{secret: key}
	client := newClient()
	targets := []struct{ name, url string }{{"floor (bare 204)", floorURL}, {"receiver", receiverURL}}
	// After each receiver run the stream must hold exactly what the receiver accepted;
	// it is then purged, so that one run's data (and the disk's write-back of it) does
	// not weigh on the runs that follow, the floor's included.
	// A delivery the receiver did not answer 2xx may still be stored, then or in a
	// later run (its publish reached NATS before the receiver gave up on the ack), so
	// the unanswered ones of every run so far are allowed in the stream.
	// The runs' delivery ids serve this check only: they are dropped once it is done,
	// so that the ids of every run do not pile up for the garbage collector of this
	// process, which serves both targets too.
	var checked, checkedRuns, storedUnanswered int
	unanswered := map[string]bool{}
	check := func(i int, runs ...*result) error {
		defer func() {
			for _, r := range runs {
				r.accepted, r.unansweredIDs = nil, nil
			}
		}()
		if i != 1 || o.store == storeNone {
			return nil
		}
		var accepted []string
		for _, r := range runs {
			accepted = append(accepted, r.accepted...)
			for _, id := range r.unansweredIDs {
				unanswered[id] = true
			}
		}
		n, err := storedThenPurged(ctx, env.js, accepted, unanswered)
		if err != nil {
			last := runs[len(runs)-1]
			return fmt.Errorf("%s, %s: %w", last.target, last.load, err)
		}
		checked += len(accepted)
		storedUnanswered += n
		checkedRuns++
		return nil
	}
	for i, tg := range targets {
		warm := closedLoop(client, tg.url, gen, warmupClients, 0, warmupRequests)
		warm.target, warm.load = tg.name, "warm-up"
		if warm.failed > 0 || warm.non2xx > 0 {
			return fmt.Errorf("warm-up of %s: %d non-2xx %v, %d failed", tg.name, warm.non2xx, warm.bad, warm.failed)
		}
		if err := check(i, &warm); err != nil {
			return err
		}
	}
	var results []result
	// The receiver's lead-in and run at each fixed rate: the zero-non-2xx objectives
	// count both.
	type fixedRun struct{ lead, run result }
	receiverAt := map[int]fixedRun{}
	for _, rate := range o.rates {
		for i, tg := range targets {
			client.CloseIdleConnections()
			// The run is led in at its own rate, uncounted: the figure is the steady
			// state, not the first second after the target sat idle.
			// Its answers are not in the run's figures, but a non-2xx in it still
			// counts against the zero-non-2xx objectives.
			lead := openLoop(client, tg.url, gen, rate, leadIn)
			lead.target, lead.load = tg.name, fmt.Sprintf("lead-in %d/s, %s, uncounted", rate, leadIn)
			r := openLoop(client, tg.url, gen, rate, o.duration)
			r.target, r.load = tg.name, fmt.Sprintf("fixed %d/s, %s", rate, o.duration)
			if err := check(i, &lead, &r); err != nil {
				return err
			}
			results = append(results, lead, r)
			if i == 1 {
				receiverAt[rate] = fixedRun{lead, r}
			}
		}
	}
	// Each target's maximum is its best over the client counts: a server whose answers
	// take longer needs more requests in flight to reach its peak (Little's law). The
	// two targets alternate at each count so that drift on a shared machine hits both.
	// Rounds repeat the whole sweep, so that a noisy spell on a shared machine does not
	// decide the figure; each round's own ratio is printed too.
	var maxRuns [2]result
	var roundShares []float64
	for round := 1; round <= o.rounds; round++ {
		var best [2]result
		for _, c := range o.concurrency {
			for i, tg := range targets {
				client.CloseIdleConnections()
				r := closedLoop(client, tg.url, gen, c, o.maxDuration, 0)
				r.target, r.load = tg.name, fmt.Sprintf("max, %d clients, %s, round %d", c, o.maxDuration, round)
				if err := check(i, &r); err != nil {
					return err
				}
				results = append(results, r)
				if r.throughput() > best[i].throughput() {
					best[i] = r
				}
			}
		}
		roundShares = append(roundShares, best[1].throughput()/best[0].throughput())
		for i := range best {
			if best[i].throughput() > maxRuns[i].throughput() {
				maxRuns[i] = best[i]
			}
		}
	}

	if o.store == storeDurable {
		fmt.Fprintln(out, "## Ingest: receiver (signature + durable JetStream store) against the floor")
	} else {
		fmt.Fprintf(out, "## Ingest: receiver with -store %s (not pdworker's setting) against the floor\n", o.store)
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| target | load | sent | 2xx | non-2xx | failed | throughput/s | p50 | p99 | max |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Fprintf(out, "| %s | %s | %d | %d | %d | %d | %.0f | %s | %s | %s |\n", r.target, r.load, r.sent, r.ok, r.non2xx, r.failed,
			r.throughput(), ms(r.percentile(0.50)), ms(r.percentile(0.99)), ms(r.percentile(1)))
	}
	if o.store == storeNone {
		fmt.Fprintln(out, "\n-store none: the receiver stored nothing, so nothing was checked")
		fmt.Fprintln(out)
	} else {
		fmt.Fprintf(out, "\nevery 2xx of the receiver was in stream %s: %d deliveries, checked after each of %d runs (warm-up and lead-ins included)",
			events.StreamPagerDutyWebhooks, checked, checkedRuns)
		if storedUnanswered > 0 {
			fmt.Fprintf(out, "; %d deliveries not answered 2xx were stored too (the store finished after the receiver gave up; PagerDuty's retry of them is a duplicate)", storedUnanswered)
		}
		fmt.Fprint(out, "\n\n")
	}

	share := maxRuns[1].throughput() / maxRuns[0].throughput()
	percents := make([]string, len(roundShares))
	for i, r := range roundShares {
		percents[i] = fmt.Sprintf("%.0f %%", 100*r)
	}
	slices.Sort(roundShares)
	fmt.Fprintf(out, "receiver's best against the floor's best, round by round: %s (median %.0f %%)\n\n",
		strings.Join(percents, ", "), 100*(roundShares[(len(roundShares)-1)/2]+roundShares[len(roundShares)/2])/2)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	if fr, ok := receiverAt[baselineRate]; ok {
		p99, bad := fr.run.percentile(0.99), fr.lead.unanswered()+fr.run.unanswered()
		fmt.Fprintf(out, "- target: p99 under 10 ms at %d/s: receiver p99 %s, %d non-2xx: %s\n", baselineRate, ms(p99), bad,
			verdict(p99 < targetP99 && bad == 0))
	}
	fmt.Fprintf(out, "- target: at least %.0f %% of the floor's maximum throughput: %.0f/s (%s) of %.0f/s (%s) = %.0f %%: %s\n",
		100*targetShare, maxRuns[1].throughput(), maxRuns[1].load, maxRuns[0].throughput(), maxRuns[0].load, 100*share, verdict(share >= targetShare))
	if fr, ok := receiverAt[goalRate]; ok {
		p99, bad := fr.run.percentile(0.99), fr.lead.unanswered()+fr.run.unanswered()
		fmt.Fprintf(out, "- goal: %d/s with zero non-2xx and p99 under 10 ms: %d non-2xx, p99 %s: %s\n", goalRate, bad, ms(p99),
			verdict(bad == 0 && p99 < targetP99))
	}
	fmt.Fprintf(out, "- goal: at least %.0f %% of the floor's maximum throughput: %.0f %%: %s\n\n", 100*goalShare, 100*share, verdict(share >= goalShare))
	return nil
}

// storedThenPurged fails unless the webhook stream holds every delivery in accepted
// (answered 2xx) and nothing else but deliveries in unanswered (non-2xx or no answer),
// which may or may not be stored. It then empties the stream and returns how many
// unanswered ones it held. The stream is left as it was when the check fails.
func storedThenPurged(ctx context.Context, js jetstream.JetStream, accepted []string, unanswered map[string]bool) (int, error) {
	s, err := js.Stream(ctx, events.StreamPagerDutyWebhooks)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	ids, err := storedIDs(ctx, s, int(info.State.Msgs))
	if err != nil {
		return 0, err
	}
	n, err := compareIDs(ids, accepted, unanswered)
	if err != nil {
		return 0, err
	}
	return n, s.Purge(ctx)
}

// compareIDs checks the ids found in the stream against those sent: every accepted
// one must be there, and nothing else but unanswered ones. It returns how many
// unanswered ones the stream holds.
func compareIDs(ids map[string]bool, accepted []string, unanswered map[string]bool) (int, error) {
	var lost []string
	for _, id := range accepted {
		if !ids[id] {
			lost = append(lost, id)
		}
		delete(ids, id)
	}
	if len(lost) > 0 {
		return 0, fmt.Errorf("%d of %d deliveries answered 2xx are missing from stream %s (first: %s)",
			len(lost), len(accepted), events.StreamPagerDutyWebhooks, lost[0])
	}
	var strangers int
	for id := range ids {
		if !unanswered[id] {
			strangers++
		}
	}
	if strangers > 0 {
		return 0, fmt.Errorf("stream %s holds %d messages that this run did not accept and no request left unanswered", events.StreamPagerDutyWebhooks, strangers)
	}
	return len(ids), nil
}

// storedIDs reads the Nats-Msg-Id of the n messages in the stream.
func storedIDs(ctx context.Context, s jetstream.Stream, n int) (map[string]bool, error) {
	ids := make(map[string]bool, n)
	if n == 0 {
		return ids, nil
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		HeadersOnly: true, AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = s.DeleteConsumer(context.WithoutCancel(ctx), c.CachedInfo().Name) }()
	for read := 0; read < n; {
		batch, err := c.Fetch(min(n-read, 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			ids[m.Headers().Get(jetstream.MsgIDHeader)] = true
			got++
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read stream %s: %w", events.StreamPagerDutyWebhooks, err)
		}
		if got == 0 {
			return nil, fmt.Errorf("read stream %s: %d of %d messages arrived", events.StreamPagerDutyWebhooks, read, n)
		}
		read += got
	}
	return ids, nil
}

func newClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = maxInFlight
	tr.MaxIdleConnsPerHost = maxInFlight
	return &http.Client{Transport: tr, Timeout: requestTimeout}
}

// result is what one run measured.
type result struct {
	target, load             string
	sent, ok, non2xx, failed int
	bad                      map[int]int // non-2xx answers by status
	accepted, unansweredIDs  []string    // delivery ids answered 2xx, and the others; until checked
	elapsed                  time.Duration
	latencies                []time.Duration // sorted
}

// unanswered counts the requests of the run that got no 2xx.
func (r result) unanswered() int { return r.non2xx + r.failed }

func (r result) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// percentile returns the latency below which a share q of the requests finished
// (nearest rank); 1 is the maximum.
func (r result) percentile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.latencies))+0.5) - 1
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// outcome is one request's status (0: no response) and latency.
type outcome struct {
	id      string
	status  int
	latency time.Duration
}

func summarize(outcomes []outcome, elapsed time.Duration) result {
	r := result{sent: len(outcomes), elapsed: elapsed, latencies: make([]time.Duration, 0, len(outcomes))}
	for _, o := range outcomes {
		switch {
		case o.status == 0:
			r.failed++
			r.unansweredIDs = append(r.unansweredIDs, o.id)
		case o.status < 200 || o.status > 299:
			r.non2xx++
			if r.bad == nil {
				r.bad = map[int]int{}
			}
			r.bad[o.status]++
			r.unansweredIDs = append(r.unansweredIDs, o.id)
		default:
			r.ok++
			r.accepted = append(r.accepted, o.id)
		}
		r.latencies = append(r.latencies, o.latency)
	}
	slices.Sort(r.latencies)
	return r
}

// openLoop sends rate requests per second for d, each at its due time whatever the
// answers to earlier ones; a request's latency runs from its due time.
func openLoop(client *http.Client, url string, gen *deliveries, rate int, d time.Duration) result {
	n := int(float64(rate) * d.Seconds())
	outcomes := make([]outcome, n)
	interval := time.Second / time.Duration(rate)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			id, status := send(client, url, gen)
			outcomes[i] = outcome{id: id, status: status, latency: time.Since(due)}
		})
	}
	wg.Wait()
	return summarize(outcomes, time.Since(start))
}

// closedLoop runs clients that send back-to-back, for d or until total requests were
// sent (whichever is set).
func closedLoop(client *http.Client, url string, gen *deliveries, clients int, d time.Duration, total int) result {
	var mu sync.Mutex
	var all []outcome
	var sent atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			var mine []outcome
			for {
				if total > 0 && sent.Add(1) > int64(total) {
					break
				}
				if total == 0 && time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				id, status := send(client, url, gen)
				mine = append(mine, outcome{id: id, status: status, latency: time.Since(t0)})
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return summarize(all, time.Since(start))
}

// send posts the next delivery and returns its id and the status, or 0 when there was
// no answer.
func send(client *http.Client, url string, gen *deliveries) (string, int) {
	id, body, sig := gen.next()
	req, err := http.NewRequest(http.MethodPost, url+"/api/pagerduty/webhooks", strings.NewReader(string(body)))
	if err != nil {
		return id, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "PagerDuty-Webhook/V3.0")
	req.Header.Set("X-Webhook-Id", id)
	req.Header.Set("X-Webhook-Subscription", "PLOADSUB")
	req.Header.Set(webhook.SignatureHeader, sig)
	resp, err := client.Do(req)
	if err != nil {
		return id, 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return id, resp.StatusCode
}

// deliveries makes distinct, signed incident.triggered deliveries shaped like
// PagerDuty's (about 1.4 KB each).
type deliveries struct {
	secret secret.Value
	n      atomic.Int64
}

func (g *deliveries) next() (id string, body []byte, signature string) {
	i := g.n.Add(1)
	id = fmt.Sprintf("01LOAD%020d", i)
	svc := fmt.Sprintf("PSVC%04d", i%500)
	inc := fmt.Sprintf("PINC%012d", i)
	at := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	body = fmt.Appendf(nil, deliveryTemplate, id, at, inc, inc, inc, i, at, svc, svc, svc, svc)
	return id, body, webhook.Sign(g.secret, body)
}

const deliveryTemplate = `{"event":{"id":%q,"event_type":"incident.triggered","resource_type":"incident","occurred_at":%q,` +
	`"agent":{"html_url":"https://acme.pagerduty.com/users/PLOADUSR","id":"PLOADUSR","self":"https://api.pagerduty.com/users/PLOADUSR","summary":"Load Generator","type":"user_reference"},` +
	`"client":{"name":"PagerDuty"},"data":{"id":%q,"type":"incident","self":"https://api.pagerduty.com/incidents/%s",` +
	`"html_url":"https://acme.pagerduty.com/incidents/%s","number":%d,"status":"triggered","incident_key":"load-key","created_at":%q,` +
	`"title":"Disk usage above 95 percent on db-primary-01 (load test)","service":{"html_url":"https://acme.pagerduty.com/services/%s",` +
	`"id":%q,"self":"https://api.pagerduty.com/services/%s","summary":"Service %s","type":"service_reference"},` +
	`"assignees":[{"html_url":"https://acme.pagerduty.com/users/PONCALL","id":"PONCALL","self":"https://api.pagerduty.com/users/PONCALL","summary":"On Call","type":"user_reference"}],` +
	`"escalation_policy":{"html_url":"https://acme.pagerduty.com/escalation_policies/PEP0001","id":"PEP0001","self":"https://api.pagerduty.com/escalation_policies/PEP0001","summary":"Default","type":"escalation_policy_reference"},` +
	`"teams":[],"priority":null,"urgency":"high","conference_bridge":null,"resolve_reason":null,"incident_type":{"name":"incident_default"}}}}`
