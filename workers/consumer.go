package workers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/events"
)

// Defaults of ConsumerConfig.
const (
	DefaultMaxDeliver      = 10
	DefaultAckWait         = 30 * time.Second
	DefaultBaseDelay       = time.Second
	DefaultMaxDelay        = 5 * time.Minute
	DefaultConcurrency     = 4
	DefaultMaxAckPending   = 1000
	DefaultDrainTimeout    = 10 * time.Second
	DefaultPendingInterval = 15 * time.Second
)

const (
	// settleTimeout bounds each ack, nak, term and dead-letter publish, and OnGiveUp.
	settleTimeout = 10 * time.Second
	// stopGrace is how long Run waits, once the drain timeout has cancelled the
	// handlers still running, for them to return.
	stopGrace = 5 * time.Second
	// maxResumeDelay caps the pause before a broken message subscription is reopened.
	maxResumeDelay = 30 * time.Second
	// pullExpiry is how long one pull request waits on the server for messages.
	pullExpiry = 10 * time.Second
	// repullAfter is how long the first wait for the next message lasts before the
	// wait is started again, which sends a pull request the client skipped (see next).
	repullAfter = 100 * time.Millisecond
	// maxRememberedErrors bounds the memory of last errors used to log retries once.
	maxRememberedErrors = 10000
)

// Message is one JetStream message as a Handler sees it.
type Message struct {
	Subject string
	Data    []byte
	Header  nats.Header
	// NumDelivered is 1 on the first delivery.
	NumDelivered uint64
	StreamSeq    uint64
}

// Handler processes one message. It returns nil when the work is done, a Permanent
// error when no retry can help, and any other error to be retried later (an error
// with RetryAfter() time.Duration sets the least delay). ctx carries the per-message
// timeout, is cancelled at shutdown, and holds the message's logger
// (zerolog.Ctx(ctx)). Handlers must be safe for concurrent use and idempotent: a
// message can be delivered more than once.
type Handler func(ctx context.Context, m *Message) error

// ConsumerConfig configures a Consumer. Zero values take the Default* constants.
type ConsumerConfig struct {
	// Stream and Durable name the stream and the durable pull consumer. Several
	// Consumers (in one or many processes) with the same Durable share its messages.
	Stream, Durable string
	// FilterSubjects limits the consumer to these subjects (empty: the whole stream).
	// On a work-queue stream, filters of different consumers must not overlap.
	FilterSubjects []string
	// MaxDeliver is how often a message is delivered at most; a retryable failure on
	// the last delivery dead-letters it.
	MaxDeliver int
	// AckWait is how long the server waits for an ack before redelivering. Handlers
	// running longer than AckWait/3 send progress heartbeats.
	AckWait time.Duration
	// HandlerTimeout bounds one handler call; it must be shorter than AckWait
	// (default: two thirds of AckWait).
	HandlerTimeout time.Duration
	// BaseDelay and MaxDelay shape the retry delay: BaseDelay·2^(n-1) after the n-th
	// delivery, at most MaxDelay, minus up to 20% jitter, and never less than what the
	// error's RetryAfter asks for. BaseDelay is also the delay before a message
	// interrupted by shutdown is delivered again.
	BaseDelay, MaxDelay time.Duration
	// Concurrency is how many handlers run at once in this Consumer.
	Concurrency int
	// MaxAckPending caps messages delivered but not yet acknowledged across all
	// Consumers of the durable, including those waiting for a delayed retry.
	MaxAckPending int
	// DrainTimeout is how long Run lets running handlers finish after its ctx is done
	// before it cancels them.
	DrainTimeout time.Duration
	// PendingInterval is how often pdworker_consumer_pending is refreshed.
	PendingInterval time.Duration
	// OnGiveUp, when set, is called before a message is dead-lettered, with the reason
	// (for example to publish a failed job result). It can be called more than once
	// for a message if dead-lettering fails and the message comes back.
	OnGiveUp func(ctx context.Context, m *Message, reason error)
}

// Consumer runs a Handler on the messages of a durable pull consumer and owns the
// ack, retry and dead-letter decisions for them.
type Consumer struct {
	js  jetstream.JetStream
	cfg ConsumerConfig
	h   Handler
	m   *Metrics
	log zerolog.Logger

	mu      sync.Mutex
	lastErr map[uint64]string // stream sequence → error of its last failed delivery
}

// NewConsumer checks cfg, fills in defaults and returns a Consumer; nothing talks to
// NATS until Run. m may be nil.
func NewConsumer(js jetstream.JetStream, cfg ConsumerConfig, h Handler, m *Metrics, log zerolog.Logger) (*Consumer, error) {
	if js == nil || h == nil {
		return nil, errors.New("new consumer: JetStream and handler are required")
	}
	if cfg.Stream == "" || cfg.Durable == "" {
		return nil, errors.New("new consumer: stream and durable name are required")
	}
	cfg = withDefaults(cfg)
	switch {
	case cfg.MaxDeliver < 1:
		return nil, fmt.Errorf("new consumer %s: MaxDeliver must be at least 1, got %d", cfg.Durable, cfg.MaxDeliver)
	case cfg.HandlerTimeout >= cfg.AckWait:
		return nil, fmt.Errorf("new consumer %s: HandlerTimeout (%s) must be shorter than AckWait (%s)", cfg.Durable, cfg.HandlerTimeout, cfg.AckWait)
	case cfg.MaxDelay < cfg.BaseDelay:
		return nil, fmt.Errorf("new consumer %s: MaxDelay (%s) must not be shorter than BaseDelay (%s)", cfg.Durable, cfg.MaxDelay, cfg.BaseDelay)
	case cfg.Concurrency < 1, cfg.MaxAckPending < cfg.Concurrency:
		return nil, fmt.Errorf("new consumer %s: need 1 <= Concurrency (%d) <= MaxAckPending (%d)", cfg.Durable, cfg.Concurrency, cfg.MaxAckPending)
	}
	return &Consumer{
		js:      js,
		cfg:     cfg,
		h:       h,
		m:       m,
		log:     log.With().Str("component", "consumer").Str("consumer", cfg.Durable).Logger(),
		lastErr: make(map[uint64]string),
	}, nil
}

func withDefaults(cfg ConsumerConfig) ConsumerConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = DefaultMaxDeliver
	}
	def(&cfg.AckWait, DefaultAckWait)
	def(&cfg.HandlerTimeout, cfg.AckWait*2/3)
	def(&cfg.BaseDelay, DefaultBaseDelay)
	def(&cfg.MaxDelay, max(DefaultMaxDelay, cfg.BaseDelay))
	def(&cfg.DrainTimeout, DefaultDrainTimeout)
	def(&cfg.PendingInterval, DefaultPendingInterval)
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxAckPending == 0 {
		cfg.MaxAckPending = max(DefaultMaxAckPending, cfg.Concurrency)
	}
	return cfg
}

// Run creates or updates the durable consumer and handles its messages until ctx is
// done. Then it stops fetching, hands back messages fetched but not started, lets
// running handlers finish for up to DrainTimeout, cancels those still running (their
// messages are retried after BaseDelay, not dead-lettered) and returns. It returns
// nil after such a shutdown, and an error when the consumer cannot be created or the
// NATS connection is closed under it. A broken subscription (consumer deleted,
// server restarted) is reopened.
func (c *Consumer) Run(ctx context.Context) error {
	cons, err := c.ensure(ctx)
	if err != nil {
		return err
	}
	c.log.Info().Str("stream", c.cfg.Stream).Strs("filter_subjects", c.cfg.FilterSubjects).
		Int("concurrency", c.cfg.Concurrency).Msg("consumer started")

	// Handlers run under work, not ctx: a shutdown first lets them finish, and
	// cancels them only when DrainTimeout has passed.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()

	var (
		inflight sync.WaitGroup
		bg       sync.WaitGroup
		sem      = make(chan struct{}, c.cfg.Concurrency)
	)
	bg.Go(func() { c.trackPending(ctx, cons) })

	runErr := c.consume(ctx, work, cons, sem, &inflight)

	drained := make(chan struct{})
	go func() { inflight.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(c.cfg.DrainTimeout):
		c.log.Info().Dur("drain_timeout", c.cfg.DrainTimeout).Msg("handlers still running at the drain timeout; interrupting them")
		stopWork()
		select {
		case <-drained:
		case <-time.After(stopGrace):
			runErr = errors.Join(runErr, fmt.Errorf("consumer %s: handlers ignored cancellation and are still running", c.cfg.Durable))
		}
	}
	bg.Wait()
	c.log.Info().Msg("consumer stopped")
	return runErr
}

// ensure creates the durable consumer, or updates it to this config.
func (c *Consumer) ensure(ctx context.Context) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       c.cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		MaxDeliver:    c.cfg.MaxDeliver,
		MaxAckPending: c.cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if len(c.cfg.FilterSubjects) == 1 {
		cfg.FilterSubject = c.cfg.FilterSubjects[0]
	} else {
		cfg.FilterSubjects = c.cfg.FilterSubjects
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on stream %s: %w", c.cfg.Durable, c.cfg.Stream, err)
	}
	return cons, nil
}

// consume reads messages and starts a handler for each while a slot is free, until
// ctx is done. It reopens the subscription when it breaks.
func (c *Consumer) consume(ctx, work context.Context, cons jetstream.Consumer, sem chan struct{}, inflight *sync.WaitGroup) error {
	for attempt := 1; ; attempt++ {
		err := c.pump(ctx, work, cons, sem, inflight)
		if ctx.Err() != nil {
			return nil
		}
		if c.js.Conn().IsClosed() {
			return fmt.Errorf("consumer %s: NATS connection closed: %w", c.cfg.Durable, err)
		}
		delay := min(time.Second<<min(attempt-1, 5), maxResumeDelay)
		c.log.Warn().Err(err).Dur("retry_in", delay).Msg("message subscription broke; reopening")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		if next, err := c.ensure(ctx); err == nil {
			cons, attempt = next, 0
		} else if ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("consumer not available yet")
		}
	}
}

// pump runs one message subscription. The subscription buffers at most Concurrency
// messages, and a message is taken from it only when a handler slot is free, so a
// message never waits behind more than one running handler.
func (c *Consumer) pump(ctx, work context.Context, cons jetstream.Consumer, sem chan struct{}, inflight *sync.WaitGroup) error {
	// A short pull expiry (with idle heartbeats at half of it) bounds how long a lost
	// pull request, for example during a server restart, can stall this consumer.
	it, err := cons.Messages(
		jetstream.PullMaxMessages(c.cfg.Concurrency),
		jetstream.PullExpiry(pullExpiry),
		jetstream.WithMessagesErrOnMissingHeartbeat(false),
	)
	if err != nil {
		return err
	}
	heartbeatEvery := c.cfg.AckWait / 3
	for {
		waitStart := time.Now()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			c.handBack(it)
			return nil
		}
		// Messages buffered while every slot was busy may have used up part of their
		// AckWait already; such a message gets a heartbeat before its handler starts.
		stale := time.Since(waitStart) > heartbeatEvery
		msg, err := next(ctx, it)
		if err != nil {
			<-sem
			if ctx.Err() != nil {
				c.handBack(it)
				return nil
			}
			it.Stop()
			return err
		}
		inflight.Go(func() {
			defer func() { <-sem }()
			c.process(work, msg, stale)
		})
	}
}

// next waits for the next message of it until ctx is done.
//
// The client sends a new pull request only when Next starts (and when a status or
// heartbeat arrives), and skips it while it is still publishing the previous request.
// A fast handler can bring the pump back to Next within that moment: the request is
// skipped, none is open on the server, nothing arrives to make Next look again, and the
// consumer would sit idle with messages waiting until the client's missing-heartbeat
// check (twice the idle heartbeat, 10 s) pulls again. So the first wait is short, and a
// second Next sends the skipped request; a Next that returns on its context changes
// nothing in the client's pull accounting, and the second Next still has the
// missing-heartbeat check for a pull request lost on the server.
func next(ctx context.Context, it jetstream.MessagesContext) (jetstream.Msg, error) {
	first, cancel := context.WithTimeout(ctx, repullAfter)
	msg, err := it.Next(jetstream.NextContext(first))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return msg, err
	}
	return it.Next(jetstream.NextContext(ctx))
}

// handBack stops the subscription and naks the messages it had buffered but not
// started, so that another replica can take them at once.
func (c *Consumer) handBack(it jetstream.MessagesContext) {
	it.Drain()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			return
		}
		if err := msg.Nak(); err != nil {
			c.log.Debug().Err(err).Msg("nak of an unstarted message at shutdown failed; it is redelivered after AckWait")
		}
	}
}

// process runs the handler for one message and settles the message.
func (c *Consumer) process(work context.Context, msg jetstream.Msg, stale bool) {
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to ack and nothing to retry.
		c.log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without JetStream metadata; ignored")
		return
	}
	m := &Message{
		Subject:      msg.Subject(),
		Data:         msg.Data(),
		Header:       msg.Headers(),
		NumDelivered: meta.NumDelivered,
		StreamSeq:    meta.Sequence.Stream,
	}
	log := c.log.With().Str("subject", m.Subject).Uint64("stream_seq", m.StreamSeq).Uint64("num_delivered", m.NumDelivered).Logger()
	if m.NumDelivered > 1 {
		c.m.redelivered(c.cfg.Durable)
	}

	start := time.Now()
	herr := c.invoke(work, msg, m, log, stale)
	c.m.handled(c.cfg.Durable, time.Since(start))
	c.settle(work, msg, m, log, herr)
}

// invoke calls the handler under the per-message timeout, with heartbeats, and turns
// a panic into a permanent error.
func (c *Consumer) invoke(work context.Context, msg jetstream.Msg, m *Message, log zerolog.Logger, stale bool) (err error) {
	ctx, cancel := context.WithTimeoutCause(work, c.cfg.HandlerTimeout,
		fmt.Errorf("handler timed out after %s", c.cfg.HandlerTimeout))
	defer cancel()
	ctx = log.WithContext(ctx)

	stop := c.heartbeat(msg, stale, log)
	defer stop()

	defer func() {
		if r := recover(); r != nil {
			log.Error().Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Msg("handler panicked")
			err = &panicError{value: r}
		}
	}()
	err = c.h(ctx, m)
	if err != nil && work.Err() == nil && ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
		err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	return err
}

// heartbeat sends InProgress every AckWait/3 while the handler runs (and once at once
// when the message is stale), so that a slow handler does not get its message
// redelivered to someone else. The returned func stops it and waits.
func (c *Consumer) heartbeat(msg jetstream.Msg, stale bool, log zerolog.Logger) (stop func()) {
	if stale {
		if err := msg.InProgress(); err != nil {
			log.Debug().Err(err).Msg("progress heartbeat failed")
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(c.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Debug().Err(err).Msg("progress heartbeat failed")
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// settle maps the handler's result to an ack, a delayed retry or a dead letter.
func (c *Consumer) settle(work context.Context, msg jetstream.Msg, m *Message, log zerolog.Logger, herr error) {
	// Settling must happen even when work is cancelled by shutdown.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(work), settleTimeout)
	defer cancel()
	lastDelivery := m.NumDelivered >= uint64(c.cfg.MaxDeliver)

	if herr == nil {
		c.forget(m.StreamSeq)
		if err := msg.DoubleAck(ctx); err != nil {
			log.Warn().Err(err).Msg("ack not confirmed; the message may be delivered again")
		}
		c.m.outcome(c.cfg.Durable, outcomeAcked)
		return
	}

	if work.Err() != nil {
		if !lastDelivery {
			log.Debug().Err(herr).Msg("handler interrupted by shutdown; message handed back")
			if err := msg.NakWithDelay(c.cfg.BaseDelay); err != nil {
				log.Debug().Err(err).Msg("nak failed; the message is redelivered after AckWait")
			}
			c.m.outcome(c.cfg.Durable, outcomeInterrupted)
			return
		}
		// The server would not deliver it again: keep it as a dead letter.
		c.giveUp(ctx, msg, m, log, reasonShutdown,
			fmt.Errorf("interrupted by shutdown on delivery %d of %d: %w", m.NumDelivered, c.cfg.MaxDeliver, herr))
		return
	}

	v := classify(herr)
	switch {
	case v.permanent:
		c.giveUp(ctx, msg, m, log, v.class, herr)
	case lastDelivery:
		c.giveUp(ctx, msg, m, log, reasonMaxDeliveries,
			fmt.Errorf("gave up after %d deliveries: %w", m.NumDelivered, herr))
	default:
		delay := max(c.backoff(m.NumDelivered), v.retryAfter)
		ev := log.Debug()
		if c.errorChanged(m.StreamSeq, herr.Error()) {
			ev = log.Warn()
		}
		ev.Err(herr).Dur("retry_in", delay).Int("max_deliver", c.cfg.MaxDeliver).Msg("handler failed; retrying later")
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn().Err(err).Msg("nak failed; the message is redelivered after AckWait")
		}
		c.m.outcome(c.cfg.Durable, outcomeRetried)
	}
}

// giveUp calls OnGiveUp, stores the message as a dead letter and terminates it. If the
// dead letter cannot be stored, the message is not terminated, so nothing is lost.
func (c *Consumer) giveUp(ctx context.Context, msg jetstream.Msg, m *Message, log zerolog.Logger, class string, reason error) {
	c.forget(m.StreamSeq)
	if c.cfg.OnGiveUp != nil {
		c.callOnGiveUp(ctx, m, reason, log)
	}
	err := events.PublishDeadLetter(ctx, c.js, events.DeadLetter{
		Subject:    m.Subject,
		Header:     m.Header,
		Data:       m.Data,
		Reason:     reason.Error(),
		Stream:     c.cfg.Stream,
		StreamSeq:  m.StreamSeq,
		Consumer:   c.cfg.Durable,
		Deliveries: m.NumDelivered,
	})
	if err != nil {
		log.Error().Err(err).AnErr("reason", reason).Msg("cannot store dead letter; message kept for redelivery")
		if err := msg.NakWithDelay(c.cfg.MaxDelay); err != nil {
			log.Warn().Err(err).Msg("nak failed; the message is redelivered after AckWait")
		}
		c.m.outcome(c.cfg.Durable, outcomeRetried)
		return
	}
	if err := msg.TermWithReason(reason.Error()); err != nil {
		log.Warn().Err(err).Msg("term failed; the message may be delivered again")
	}
	log.Error().Err(reason).Str("reason_class", class).Msg("message dead-lettered")
	c.m.deadLettered(c.cfg.Durable, class)
}

func (c *Consumer) callOnGiveUp(ctx context.Context, m *Message, reason error, log zerolog.Logger) {
	defer func() {
		if r := recover(); r != nil {
			log.Error().Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Msg("OnGiveUp panicked")
		}
	}()
	c.cfg.OnGiveUp(log.WithContext(ctx), m, reason)
}

// backoff is the retry delay after the n-th delivery: BaseDelay·2^(n-1), at most
// MaxDelay, minus up to 20% jitter so that retries of many messages spread out.
func (c *Consumer) backoff(n uint64) time.Duration {
	d := c.cfg.MaxDelay
	if shift := n - 1; n >= 1 && shift < 32 {
		if b := c.cfg.BaseDelay << shift; b > 0 && b < d {
			d = b
		}
	}
	return d - rand.N(d/5+1)
}

// errorChanged records text as the last error of the message at seq and reports
// whether it differs from the one before (so a retry is logged at Warn only then).
func (c *Consumer) errorChanged(seq uint64, text string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, seen := c.lastErr[seq]
	if len(c.lastErr) >= maxRememberedErrors {
		clear(c.lastErr)
	}
	c.lastErr[seq] = text
	return !seen || prev != text
}

func (c *Consumer) forget(seq uint64) {
	c.mu.Lock()
	delete(c.lastErr, seq)
	c.mu.Unlock()
}

// trackPending samples the consumer's pending count into the lag gauge until ctx is
// done.
func (c *Consumer) trackPending(ctx context.Context, cons jetstream.Consumer) {
	c.m.setPending(c.cfg.Durable, cons.CachedInfo().NumPending)
	t := time.NewTicker(c.cfg.PendingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			info, err := cons.Info(ctx)
			if err != nil {
				if ctx.Err() == nil {
					c.log.Debug().Err(err).Msg("consumer info unavailable")
				}
				continue
			}
			c.m.setPending(c.cfg.Durable, info.NumPending)
		}
	}
}
