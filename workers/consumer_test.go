package workers_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/workers"
)

const (
	testSubject = events.SubjectActionPrefix + "test.job"
	testDurable = "test-jobs"
	eventually  = 15 * time.Second
	tick        = 10 * time.Millisecond
)

// testConfig is a consumer on testSubject with short delays.
func testConfig() workers.ConsumerConfig {
	return workers.ConsumerConfig{
		Stream:         events.StreamScaffolderJobs,
		Durable:        testDurable,
		FilterSubjects: []string{testSubject},
		MaxDeliver:     5,
		AckWait:        5 * time.Second,
		HandlerTimeout: 3 * time.Second,
		BaseDelay:      20 * time.Millisecond,
		MaxDelay:       200 * time.Millisecond,
		Concurrency:    4,
		DrainTimeout:   200 * time.Millisecond,
	}
}

// run starts c.Run and returns a func that stops it and waits for Run to return; the
// same happens at cleanup if the test did not stop it.
func run(t *testing.T, c *workers.Consumer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(eventually):
				err = errors.New("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { assert.NoError(t, stop()) })
	return stop
}

func newConsumer(t *testing.T, js jetstream.JetStream, cfg workers.ConsumerConfig, h workers.Handler, m *workers.Metrics) *workers.Consumer {
	t.Helper()
	c, err := workers.NewConsumer(js, cfg, h, m, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel))
	require.NoError(t, err)
	return c
}

func publish(t *testing.T, js jetstream.JetStream, data ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	for _, d := range data {
		_, err := js.Publish(ctx, testSubject, []byte(d))
		require.NoError(t, err)
	}
}

// deadLetters reads every message of the DEADLETTER stream.
func deadLetters(t *testing.T, js jetstream.JetStream) []events.DeadLetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamDeadLetter)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []events.DeadLetter
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		out = append(out, events.ParseDeadLetter(raw.Subject, raw.Header, raw.Data))
	}
	return out
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), events.StreamScaffolderJobs)
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

func consumerInfo(t *testing.T, js jetstream.JetStream) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(context.Background(), events.StreamScaffolderJobs, testDurable)
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	return info
}

// deliveries records what a handler saw.
type deliveries struct {
	mu   sync.Mutex
	seen []workers.Message
	at   []time.Time
}

func (d *deliveries) add(m *workers.Message) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen = append(d.seen, *m)
	d.at = append(d.at, time.Now())
	return len(d.seen)
}

func (d *deliveries) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

func (d *deliveries) snapshot() ([]workers.Message, []time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]workers.Message(nil), d.seen...), append([]time.Time(nil), d.at...)
}

func TestAckOnSuccess(t *testing.T) {
	_, _, js := natstest.Start(t)
	reg := prometheus.NewRegistry()
	metrics := workers.NewMetrics(reg)
	var got deliveries
	c := newConsumer(t, js, testConfig(), func(ctx context.Context, m *workers.Message) error {
		got.add(m)
		return nil
	}, metrics)
	run(t, c)

	publish(t, js, "a", "b", "c")

	require.Eventually(t, func() bool { return got.len() == 3 }, eventually, tick)
	require.Eventually(t, func() bool { return streamMsgs(t, js) == 0 }, eventually, tick, "acked messages leave the work queue")
	seen, _ := got.snapshot()
	for _, m := range seen {
		assert.Equal(t, uint64(1), m.NumDelivered)
		assert.Equal(t, testSubject, m.Subject)
		assert.NotZero(t, m.StreamSeq)
	}
	assert.Empty(t, deadLetters(t, js))
	require.Eventually(t, func() bool {
		return metricValue(t, reg, "pdworker_messages_total", "outcome", "acked") == 3
	}, eventually, tick)
}

type retryAfterError struct{ wait time.Duration }

func (e retryAfterError) Error() string             { return "rate limited" }
func (e retryAfterError) RetryAfter() time.Duration { return e.wait }

func TestRetryThenSuccess(t *testing.T) {
	_, _, js := natstest.Start(t)
	reg := prometheus.NewRegistry()
	metrics := workers.NewMetrics(reg)
	var got deliveries
	c := newConsumer(t, js, testConfig(), func(ctx context.Context, m *workers.Message) error {
		if got.add(m) == 1 {
			return errors.New("pagerduty 503")
		}
		return nil
	}, metrics)
	run(t, c)

	publish(t, js, "job")

	require.Eventually(t, func() bool { return got.len() == 2 }, eventually, tick)
	require.Eventually(t, func() bool { return streamMsgs(t, js) == 0 }, eventually, tick)
	seen, _ := got.snapshot()
	assert.Equal(t, uint64(1), seen[0].NumDelivered)
	assert.Equal(t, uint64(2), seen[1].NumDelivered)
	assert.Equal(t, seen[0].StreamSeq, seen[1].StreamSeq)
	assert.Empty(t, deadLetters(t, js))
	// The retry is counted once its nak is sent, which can be after the redelivery.
	require.Eventually(t, func() bool {
		return metricValue(t, reg, "pdworker_messages_total", "outcome", "retried") == 1
	}, eventually, tick)
	assert.Equal(t, 1.0, metricValue(t, reg, "pdworker_redeliveries_total"))
}

func TestRetryAfterHonoured(t *testing.T) {
	_, _, js := natstest.Start(t)
	const wait = 300 * time.Millisecond
	var got deliveries
	c := newConsumer(t, js, testConfig(), func(ctx context.Context, m *workers.Message) error {
		if got.add(m) == 1 {
			return fmt.Errorf("create service: %w", retryAfterError{wait: wait})
		}
		return nil
	}, nil)
	run(t, c)

	publish(t, js, "job")

	require.Eventually(t, func() bool { return got.len() == 2 }, eventually, tick)
	_, at := got.snapshot()
	assert.GreaterOrEqual(t, at[1].Sub(at[0]), wait, "redelivered before the asked wait")
}

type notTemporary struct{}

func (notTemporary) Error() string   { return "invalid input: name is required" }
func (notTemporary) Temporary() bool { return false }

type markedPermanent struct{}

func (markedPermanent) Error() string   { return "escalation policy not found" }
func (markedPermanent) Permanent() bool { return true }

func TestPermanentFailureDeadLettersOnce(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"Permanent", workers.Permanent(errors.New("decode job: unexpected end of JSON input"))},
		{"wrapped Permanent", fmt.Errorf("step service: %w", workers.Permanent(errors.New("bad input")))},
		{"Temporary false", fmt.Errorf("validate: %w", notTemporary{})},
		{"Permanent method", markedPermanent{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, js := natstest.Start(t)
			reg := prometheus.NewRegistry()
			metrics := workers.NewMetrics(reg)
			var (
				got     deliveries
				gaveUp  atomic.Int32
				reasons = make(chan string, 10)
			)
			cfg := testConfig()
			cfg.OnGiveUp = func(ctx context.Context, m *workers.Message, reason error) {
				gaveUp.Add(1)
				reasons <- reason.Error()
			}
			c := newConsumer(t, js, cfg, func(ctx context.Context, m *workers.Message) error {
				got.add(m)
				return tt.err
			}, metrics)
			run(t, c)

			publish(t, js, `{"id":"x"}`)

			require.Eventually(t, func() bool { return len(deadLetters(t, js)) == 1 }, eventually, tick)
			dl := deadLetters(t, js)[0]
			assert.Equal(t, tt.err.Error(), dl.Reason)
			assert.Equal(t, testSubject, dl.Subject)
			assert.Equal(t, testDurable, dl.Consumer)
			assert.Equal(t, events.StreamScaffolderJobs, dl.Stream)
			assert.Equal(t, uint64(1), dl.Deliveries)
			assert.NotZero(t, dl.StreamSeq)
			assert.False(t, dl.Time.IsZero())
			assert.Equal(t, `{"id":"x"}`, string(dl.Data))

			require.Eventually(t, func() bool { return streamMsgs(t, js) == 0 }, eventually, tick, "terminated messages leave the work queue")
			info := consumerInfo(t, js)
			assert.Zero(t, info.NumAckPending)
			assert.Zero(t, info.NumRedelivered)
			assert.Equal(t, 1, got.len())
			assert.Equal(t, int32(1), gaveUp.Load())
			assert.Equal(t, tt.err.Error(), <-reasons)
			require.Eventually(t, func() bool {
				return metricValue(t, reg, "pdworker_dead_letters_total", "reason_class", "permanent") == 1
			}, eventually, tick)
		})
	}
}

func TestMaxDeliverExhaustion(t *testing.T) {
	_, _, js := natstest.Start(t)
	var (
		got    deliveries
		gaveUp atomic.Int32
	)
	cfg := testConfig()
	cfg.MaxDeliver = 3
	cfg.OnGiveUp = func(ctx context.Context, m *workers.Message, reason error) { gaveUp.Add(1) }
	c := newConsumer(t, js, cfg, func(ctx context.Context, m *workers.Message) error {
		got.add(m)
		return fmt.Errorf("pagerduty: 503 service unavailable (attempt %d)", m.NumDelivered)
	}, nil)
	run(t, c)

	publish(t, js, "job")

	require.Eventually(t, func() bool { return len(deadLetters(t, js)) == 1 }, eventually, tick)
	dl := deadLetters(t, js)[0]
	assert.Equal(t, "gave up after 3 deliveries: pagerduty: 503 service unavailable (attempt 3)", dl.Reason)
	assert.Equal(t, uint64(3), dl.Deliveries)
	assert.Equal(t, 3, got.len())
	assert.Equal(t, int32(1), gaveUp.Load())
	require.Eventually(t, func() bool { return streamMsgs(t, js) == 0 }, eventually, tick)
}

func TestPanicDeadLettersAndConsumerKeepsGoing(t *testing.T) {
	_, _, js := natstest.Start(t)
	var got deliveries
	cfg := testConfig()
	cfg.Concurrency = 1
	c := newConsumer(t, js, cfg, func(ctx context.Context, m *workers.Message) error {
		got.add(m)
		if string(m.Data) == "explode" {
			panic("kaboom")
		}
		return nil
	}, nil)
	run(t, c)

	publish(t, js, "explode", "fine")

	require.Eventually(t, func() bool { return got.len() == 2 && len(deadLetters(t, js)) == 1 }, eventually, tick, "got %d", got.len())
	dl := deadLetters(t, js)[0]
	assert.Contains(t, dl.Reason, "panic: kaboom")
	assert.Equal(t, "explode", string(dl.Data))
	require.Eventually(t, func() bool { return streamMsgs(t, js) == 0 }, eventually, tick)
	seen, _ := got.snapshot()
	assert.Equal(t, "fine", string(seen[1].Data))
}

// A consumer with one handler slot works through a backlog of fast messages (acked
// and dead-lettered) without ever sitting idle while messages wait: a pull request
// the client skips because it is still publishing the previous one is sent again at
// once, not only when the client's missing-heartbeat check fires 10 s later.
func TestSingleSlotConsumerNeverIdlesWithMessagesWaiting(t *testing.T) {
	_, _, js := natstest.Start(t)
	const (
		n = 2000
		// stall is far longer than handling one message takes on any machine, and
		// shorter than the missing-heartbeat check (twice the 5 s idle heartbeat).
		stall = 9 * time.Second
	)
	handled := make(chan struct{}, n)
	cfg := testConfig()
	cfg.Concurrency = 1
	// Dead letters are logged at Error; the log is left out here.
	c, err := workers.NewConsumer(js, cfg, func(ctx context.Context, m *workers.Message) error {
		handled <- struct{}{}
		if m.StreamSeq%2 == 0 {
			return workers.Permanent(errors.New("decode job: not a job"))
		}
		return nil
	}, nil, zerolog.Nop())
	require.NoError(t, err)
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = "msg-" + strconv.Itoa(i)
	}
	publish(t, js, msgs...)
	run(t, c)

	for i := range n {
		select {
		case <-handled:
		case <-time.After(stall):
			t.Fatalf("no message handled for %s after %d of %d, with %d still waiting", stall, i, n, n-i)
		}
	}
	require.Eventually(t, func() bool { return streamMsgs(t, js) == 0 }, eventually, tick)
	assert.Len(t, deadLetters(t, js), n/2, "every other message is dead-lettered")
}

func TestConsumersShareADurable(t *testing.T) {
	_, _, js := natstest.Start(t)
	const n = 500
	var (
		handled    sync.Map // message body → count
		duplicates atomic.Int32
		perWorker  [2]atomic.Int32
		total      atomic.Int32
	)
	for i := range 2 {
		c := newConsumer(t, js, testConfig(), func(ctx context.Context, m *workers.Message) error {
			if _, loaded := handled.LoadOrStore(string(m.Data), true); loaded {
				duplicates.Add(1)
			}
			perWorker[i].Add(1)
			total.Add(1)
			time.Sleep(time.Millisecond) // a little work, so that both instances get some
			return nil
		}, nil)
		run(t, c)
	}
	// Messages go to the pull requests waiting when they arrive: publish only once
	// both instances have asked for messages, or the first could take them all.
	require.Eventually(t, func() bool {
		c, err := js.Consumer(context.Background(), events.StreamScaffolderJobs, testDurable)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumWaiting >= 2
	}, eventually, tick, "both instances are pulling")

	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = "msg-" + strconv.Itoa(i)
	}
	publish(t, js, msgs...)

	require.Eventually(t, func() bool { return total.Load() >= n }, eventually, tick)
	require.Eventually(t, func() bool { return streamMsgs(t, js) == 0 }, eventually, tick)
	assert.Equal(t, int32(n), total.Load())
	assert.Zero(t, duplicates.Load())
	assert.NotZero(t, perWorker[0].Load(), "first instance got no messages")
	assert.NotZero(t, perWorker[1].Load(), "second instance got no messages")
}

func TestShutdownHandsRunningMessageBack(t *testing.T) {
	_, _, js := natstest.Start(t)
	started := make(chan struct{}, 1)
	var gaveUp atomic.Int32
	cfg := testConfig()
	cfg.OnGiveUp = func(ctx context.Context, m *workers.Message, reason error) { gaveUp.Add(1) }
	first := newConsumer(t, js, cfg, func(ctx context.Context, m *workers.Message) error {
		started <- struct{}{}
		<-ctx.Done() // a long PagerDuty call, interrupted
		return fmt.Errorf("create service: %w", ctx.Err())
	}, nil)
	stopFirst := run(t, first)

	publish(t, js, "job")
	<-started
	require.NoError(t, stopFirst())

	var got deliveries
	second := newConsumer(t, js, cfg, func(ctx context.Context, m *workers.Message) error {
		got.add(m)
		return nil
	}, nil)
	run(t, second)

	require.Eventually(t, func() bool { return got.len() == 1 }, eventually, tick)
	seen, _ := got.snapshot()
	assert.Equal(t, uint64(2), seen[0].NumDelivered)
	assert.Empty(t, deadLetters(t, js))
	assert.Zero(t, gaveUp.Load())
}

func TestShutdownLetsShortHandlersFinish(t *testing.T) {
	_, _, js := natstest.Start(t)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	var acked atomic.Int32
	cfg := testConfig()
	cfg.DrainTimeout = eventually
	c := newConsumer(t, js, cfg, func(ctx context.Context, m *workers.Message) error {
		started <- struct{}{}
		<-release
		acked.Add(1)
		return nil
	}, nil)
	stop := run(t, c)

	publish(t, js, "job")
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	close(release)
	require.NoError(t, <-stopped)
	assert.Equal(t, int32(1), acked.Load())
	require.Eventually(t, func() bool { return streamMsgs(t, js) == 0 }, eventually, tick)
}

// A handler slower than AckWait/3, with messages waiting behind it, keeps its message
// through progress heartbeats: nothing is delivered twice.
func TestHeartbeatsPreventRedelivery(t *testing.T) {
	_, _, js := natstest.Start(t)
	var got deliveries
	cfg := testConfig()
	cfg.AckWait = time.Second
	cfg.HandlerTimeout = 900 * time.Millisecond
	cfg.Concurrency = 1
	c := newConsumer(t, js, cfg, func(ctx context.Context, m *workers.Message) error {
		got.add(m)
		select {
		case <-time.After(600 * time.Millisecond): // slow work
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil)
	run(t, c)

	publish(t, js, "a", "b", "c")

	require.Eventually(t, func() bool { return streamMsgs(t, js) == 0 }, eventually, tick)
	seen, _ := got.snapshot()
	require.Len(t, seen, 3)
	for _, m := range seen {
		assert.Equal(t, uint64(1), m.NumDelivered, "message %s was redelivered", m.Data)
	}
}

func TestHandlerTimeoutIsRetried(t *testing.T) {
	_, _, js := natstest.Start(t)
	var got deliveries
	cfg := testConfig()
	cfg.AckWait = time.Second
	cfg.HandlerTimeout = 100 * time.Millisecond
	cfg.MaxDeliver = 2
	c := newConsumer(t, js, cfg, func(ctx context.Context, m *workers.Message) error {
		got.add(m)
		<-ctx.Done()
		return ctx.Err()
	}, nil)
	run(t, c)

	publish(t, js, "job")

	require.Eventually(t, func() bool { return len(deadLetters(t, js)) == 1 }, eventually, tick)
	assert.Equal(t, "gave up after 2 deliveries: handler timed out after 100ms: context deadline exceeded", deadLetters(t, js)[0].Reason)
	assert.Equal(t, 2, got.len())
}

func TestNewConsumerRejectsBadConfig(t *testing.T) {
	_, _, js := natstest.Start(t)
	ok := func(context.Context, *workers.Message) error { return nil }
	tests := []struct {
		name   string
		change func(*workers.ConsumerConfig)
		want   string
	}{
		{"no stream", func(c *workers.ConsumerConfig) { c.Stream = "" }, "stream"},
		{"no durable", func(c *workers.ConsumerConfig) { c.Durable = "" }, "durable"},
		{"handler timeout not below ack wait", func(c *workers.ConsumerConfig) { c.HandlerTimeout = c.AckWait }, "HandlerTimeout"},
		{"negative max deliver", func(c *workers.ConsumerConfig) { c.MaxDeliver = -1 }, "MaxDeliver"},
		{"max delay below base", func(c *workers.ConsumerConfig) { c.MaxDelay = time.Millisecond }, "MaxDelay"},
		{"negative concurrency", func(c *workers.ConsumerConfig) { c.Concurrency = -2 }, "Concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.change(&cfg)
			_, err := workers.NewConsumer(js, cfg, ok, nil, zerolog.Nop())
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestConsumerPendingGauge(t *testing.T) {
	_, _, js := natstest.Start(t)
	reg := prometheus.NewRegistry()
	metrics := workers.NewMetrics(reg)
	release := make(chan struct{})
	cfg := testConfig()
	cfg.Concurrency = 1
	cfg.PendingInterval = 20 * time.Millisecond
	c := newConsumer(t, js, cfg, func(ctx context.Context, m *workers.Message) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, metrics)
	publish(t, js, "1", "2", "3", "4", "5", "6")
	run(t, c)

	require.Eventually(t, func() bool {
		return metricValue(t, reg, "pdworker_consumer_pending") > 0
	}, eventually, tick)
	close(release)
	require.Eventually(t, func() bool {
		return metricValue(t, reg, "pdworker_consumer_pending") == 0
	}, eventually, tick)
}

// metricValue returns the value of the series of metric name for testDurable with the
// given extra label pairs, or -1 when there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labelPairs ...string) float64 {
	t.Helper()
	want := map[string]string{"consumer": testDurable}
	for i := 0; i+1 < len(labelPairs); i += 2 {
		want[labelPairs[i]] = labelPairs[i+1]
	}
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}
