package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/config"
	"github.com/pdworker/pdworker/internal/httpapi"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/schemas"
	"github.com/pdworker/pdworker/workers"
)

// Options are the process-level choices that are not settings.
type Options struct {
	// PagerDuty overrides client tuning (tests shorten retry waits); zero values keep
	// the defaults. RateLimit always comes from the configuration.
	PagerDuty pagerduty.Options
	// ActionConsumer overrides the action consumer's retry tuning (tests); zero values
	// keep the defaults.
	ActionConsumer workers.ConsumerConfig
	// Simulate starts the PagerDuty simulator in-process with demo data and points the
	// service at it (--simulate).
	Simulate bool
}

// App is one running pdworker.
type App struct {
	cfg *config.Config
	log zerolog.Logger

	listener net.Listener
	server   *http.Server
	nc       *nats.Conn
	embedded *events.Embedded
	js       jetstream.JetStream
	registry *prometheus.Registry
	demo     string

	consumers []*workers.Consumer
	// background are long-running loops (periodic jobs) started by Start and stopped
	// with the consumers.
	background []func(ctx context.Context) error

	// cleanups run in reverse order of registration when the app stops; each closes
	// what New opened, so a failure halfway through New releases exactly what exists.
	cleanups []func(ctx context.Context)

	runCtx    context.Context
	runCancel context.CancelFunc
	wg        sync.WaitGroup
	stopOnce  sync.Once
}

// New builds every component and opens the HTTP listener and the NATS connection; it
// starts no work yet (see Start, then Stop). On error everything opened so far is closed.
//
// The wiring reads top to bottom: NATS, what every capability shares, then each
// capability (scaffolder actions, catalog and dependency sync, webhooks, the Backstage
// card), then HTTP in front of them all.
func New(ctx context.Context, cfg *config.Config, opts Options, log zerolog.Logger) (_ *App, err error) {
	a := &App{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			a.cleanup(context.Background())
		}
	}()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if opts.Simulate {
		if err := a.startSimulation(); err != nil {
			return nil, err
		}
	}
	if err := a.connectNATS(ctx); err != nil {
		return nil, err
	}
	a.js, err = jetstream.New(a.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := events.Provision(ctx, a.js, cfg.NATS.Replicas); err != nil {
		return nil, fmt.Errorf("create NATS streams and buckets: %w", err)
	}
	d, err := a.newShared(opts.PagerDuty)
	if err != nil {
		return nil, err
	}

	var routes httpapi.Deps
	if routes.Actions, routes.Jobs, err = a.addActions(ctx, d, opts.ActionConsumer); err != nil {
		return nil, err
	}
	mappings, err := mapping.NewStore(ctx, a.js)
	if err != nil {
		return nil, fmt.Errorf("mapping store: %w", err)
	}
	if routes.Mapping, err = a.addCatalogSync(ctx, d, mappings); err != nil {
		return nil, err
	}
	if routes.Webhooks, err = a.addWebhooks(ctx, d, mappings); err != nil {
		return nil, err
	}
	cards, backstage, err := a.addCard(d, mappings)
	if err != nil {
		return nil, err
	}
	routes.Card = cards
	if err := a.listen(d, backstage, routes); err != nil {
		return nil, err
	}
	return a, nil
}

// shared are the components every capability uses.
type shared struct {
	accounts  *pagerduty.Accounts
	validator *schemas.Validator
	metrics   *workers.Metrics
}

// newShared builds the PagerDuty accounts, the schema validator and the consumer
// metrics.
func (a *App) newShared(pdOpts pagerduty.Options) (shared, error) {
	pdOpts.RateLimit = a.cfg.PagerDuty.RateLimit
	pdOpts.Registerer = a.registry
	accounts, err := pagerduty.NewAccounts(a.cfg.PagerDuty.Accounts, pdOpts, a.log)
	if err != nil {
		return shared{}, fmt.Errorf("PagerDuty accounts: %w", err)
	}
	validator, err := schemas.New()
	if err != nil {
		return shared{}, err
	}
	return shared{accounts: accounts, validator: validator, metrics: workers.NewMetrics(a.registry)}, nil
}

// consume adds a consumer that Start runs and Stop drains.
func (a *App) consume(d shared, cc workers.ConsumerConfig, h workers.Handler) error {
	c, err := workers.NewConsumer(a.js, cc, h, d.metrics, a.log)
	if err != nil {
		return fmt.Errorf("%s consumer: %w", cc.Durable, err)
	}
	a.consumers = append(a.consumers, c)
	return nil
}

// connectNATS starts the embedded server when NATS_URL is empty, then connects.
func (a *App) connectNATS(ctx context.Context) error {
	url := a.cfg.NATS.URL
	if a.cfg.NATS.Embedded() {
		e, err := events.StartEmbedded(events.EmbeddedConfig{
			Listen:            a.cfg.NATS.EmbeddedListen,
			StoreDir:          a.cfg.NATS.DataDir,
			AllowPortFallback: a.cfg.NATS.AllowPortFallback,
		}, a.log)
		if err != nil {
			return err
		}
		a.embedded = e
		a.cleanups = append(a.cleanups, func(context.Context) { e.Shutdown() })
		url = e.ClientURL()
	}
	nc, err := events.Connect(ctx, url, "pdworker", a.log)
	if err != nil {
		return err
	}
	a.nc = nc
	a.cleanups = append(a.cleanups, func(ctx context.Context) { drain(ctx, nc) })
	return nil
}

// drain drains nc and waits until it is closed, or closes it when ctx ends first: Drain
// alone returns at once and finishes in the background, which a process about to exit
// (or an embedded server about to stop) would cut short.
func drain(ctx context.Context, nc *nats.Conn) {
	closed := make(chan struct{})
	logClosed := nc.ClosedHandler()
	nc.SetClosedHandler(func(c *nats.Conn) {
		if logClosed != nil {
			logClosed(c)
		}
		close(closed)
	})
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-ctx.Done():
		nc.Close()
	}
}

// ready reports whether NATS is connected and the job stream answers.
func (a *App) ready(ctx context.Context) error {
	if !a.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if _, err := a.js.Stream(ctx, events.StreamScaffolderJobs); err != nil {
		return fmt.Errorf("stream %s: %w", events.StreamScaffolderJobs, err)
	}
	return nil
}

// HTTPAddr is the address the HTTP server listens on (useful with HTTP_ADDR=:0).
func (a *App) HTTPAddr() string { return a.listener.Addr().String() }

// NATSURL is the client URL of the embedded NATS server, or "" with an external one.
func (a *App) NATSURL() string {
	if a.embedded == nil {
		return ""
	}
	return a.embedded.ClientURL()
}

// Start serves HTTP and starts the consumers. It returns at once; Stop ends them.
func (a *App) Start() {
	a.runCtx, a.runCancel = context.WithCancel(context.Background())
	for _, c := range a.consumers {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := c.Run(a.runCtx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error().Err(err).Msg("consumer stopped")
			}
		}()
	}
	for _, run := range a.background {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := run(a.runCtx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error().Err(err).Msg("background job stopped")
			}
		}()
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.server.Serve(a.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error().Err(err).Msg("HTTP server stopped")
		}
	}()
	a.log.Info().Str("http", a.HTTPAddr()).Msg("pdworker started")
}

// Stop shuts down in order — HTTP, consumers, NATS, embedded servers — within
// cfg.ShutdownTimeout. It is safe to call more than once.
func (a *App) Stop() {
	a.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
		defer cancel()
		a.log.Info().Msg("shutting down")
		// HTTP first: in-flight action calls get their answers, no new work arrives.
		if a.server != nil {
			if err := a.server.Shutdown(ctx); err != nil {
				a.log.Warn().Err(err).Msg("HTTP server did not shut down cleanly")
			}
		}
		// Then the consumers finish (or hand back) the messages they hold.
		if a.runCancel != nil {
			a.runCancel()
		}
		done := make(chan struct{})
		go func() { a.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			a.log.Warn().Msg("consumers did not stop within SHUTDOWN_TIMEOUT")
		}
		a.cleanup(ctx)
		a.log.Info().Msg("stopped")
	})
}

func (a *App) cleanup(ctx context.Context) {
	for i := len(a.cleanups) - 1; i >= 0; i-- {
		a.cleanups[i](ctx)
	}
	a.cleanups = nil
}
