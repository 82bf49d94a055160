package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/actions"
	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/backstageauth"
	"github.com/pdworker/pdworker/internal/card"
	"github.com/pdworker/pdworker/internal/catalog"
	"github.com/pdworker/pdworker/internal/catalogwatch"
	"github.com/pdworker/pdworker/internal/config"
	"github.com/pdworker/pdworker/internal/depsync"
	"github.com/pdworker/pdworker/internal/httpapi"
	"github.com/pdworker/pdworker/internal/liveview"
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
	jobs, err := events.NewJobs(ctx, a.js)
	if err != nil {
		return nil, fmt.Errorf("open job store: %w", err)
	}

	pdOpts := opts.PagerDuty
	pdOpts.RateLimit = cfg.PagerDuty.RateLimit
	pdOpts.Registerer = a.registry
	accounts, err := pagerduty.NewAccounts(cfg.PagerDuty.Accounts, pdOpts, log)
	if err != nil {
		return nil, fmt.Errorf("PagerDuty accounts: %w", err)
	}
	validator, err := schemas.New()
	if err != nil {
		return nil, err
	}
	registry, err := actions.NewRegistry(
		actions.NewServiceCreate(accounts, jobs, actions.ServiceCreateConfig{ReadOnly: cfg.ReadOnly}, log),
	)
	if err != nil {
		return nil, err
	}

	workerMetrics := workers.NewMetrics(a.registry)
	actionJobs := workers.NewActionJobs(registry, validator, jobs, log)
	cc := opts.ActionConsumer
	cc.Stream = events.StreamScaffolderJobs
	cc.Durable = "pdworker-actions"
	cc.FilterSubjects = []string{events.SubjectActionPrefix + ">"}
	cc.Concurrency = cfg.WorkerConcurrency
	cc.OnGiveUp = actionJobs.GiveUp
	consumer, err := workers.NewConsumer(a.js, cc, actionJobs.Handle, workerMetrics, log)
	if err != nil {
		return nil, fmt.Errorf("action consumer: %w", err)
	}
	a.consumers = append(a.consumers, consumer)

	// Backstage card: Backstage token verification, the cached card reads, and their
	// invalidation by webhook events on every replica (core NATS).
	var backstage *backstageauth.Verifier
	if cfg.Auth.BackstageURL != "" {
		backstage, err = backstageauth.NewVerifier(backstageauth.Config{BaseURL: cfg.Auth.BackstageURL, PluginID: cfg.Auth.PluginID}, log)
		if err != nil {
			return nil, fmt.Errorf("BACKSTAGE_URL: %w", err)
		}
	}

	// Catalog, mappings and dependency sync (issue 4): the mapping store, the
	// catalog.entity.* consumer, the depsync.run consumer, the periodic reconcile and
	// the reconcile of changed entities.
	mappings, err := mapping.NewStore(ctx, a.js)
	if err != nil {
		return nil, fmt.Errorf("mapping store: %w", err)
	}
	cards := card.New(accounts, mappedIntegrationKey(mappings), card.Config{TTL: cfg.CardCacheTTL}, a.registry, log)
	if _, err := cards.Subscribe(a.nc, card.WebhookServiceID); err != nil {
		return nil, err
	}
	guardMin := cfg.Depsync.GuardMinRemovals
	if guardMin == 0 {
		guardMin = -1 // depsync treats 0 as "default"; the setting's 0 means no floor
	}
	syncer, err := depsync.New(ctx, a.js, mappings, accounts, depsync.Config{
		Interval: cfg.DepsyncInterval, MaxRemovalShare: cfg.Depsync.MaxRemovalShare,
		GuardMinRemovals: guardMin, BatchSize: cfg.Depsync.BatchSize, ReadOnly: cfg.ReadOnly,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("dependency sync: %w", err)
	}
	catalogHandler := catalog.NewHandler(mappings, validator, accounts, syncer.MarkChanged, log)
	for _, c := range []struct {
		durable string
		subject string
		handler workers.Handler
		timeout time.Duration // 0 = the wrapper's default
	}{
		{"pdworker-catalog", "catalog.entity.>", catalogHandler.Handle, 0},
		// A full reconcile of a large catalog reads PagerDuty for minutes.
		{"pdworker-depsync-run", events.SubjectDepsyncRun, syncer.RunHandler(validator), time.Hour},
	} {
		cc := workers.ConsumerConfig{Stream: streamOf(c.subject), Durable: c.durable, FilterSubjects: []string{c.subject}, Concurrency: 1}
		if c.timeout > 0 {
			cc.AckWait, cc.HandlerTimeout = c.timeout+time.Minute, c.timeout
		}
		cons, err := workers.NewConsumer(a.js, cc, c.handler, workerMetrics, log)
		if err != nil {
			return nil, fmt.Errorf("%s consumer: %w", c.durable, err)
		}
		a.consumers = append(a.consumers, cons)
	}
	a.background = append(a.background, syncer.RunPeriodic, func(ctx context.Context) error {
		return syncer.RunChangedLoop(ctx, changedReconcileEvery)
	})
	// Catalog watcher (issue 4): with BACKSTAGE_URL and BACKSTAGE_TOKEN, one replica (a
	// lease) polls the Backstage catalog and publishes catalog.entity.* changes.
	switch {
	case cfg.Backstage.URL != "" && !cfg.Backstage.Token.IsZero():
		watcher, err := catalogwatch.New(ctx, a.js, catalogwatch.Config{
			BaseURL: cfg.Backstage.URL, Token: cfg.Backstage.Token, Interval: cfg.Backstage.PollInterval,
		}, log)
		if err != nil {
			return nil, err
		}
		a.background = append(a.background, watcher.Run)
	case cfg.Backstage.URL != "":
		log.Info().Msg("BACKSTAGE_TOKEN is not set: the catalog watcher is off; catalog.entity.* messages must come from elsewhere")
	}
	mappingDeps := httpapi.MappingDeps{Store: mappings, Accounts: accounts, Changed: func(ctx context.Context, refs ...string) {
		if err := syncer.MarkChanged(ctx, refs...); err != nil {
			log.Warn().Err(err).Msg("could not mark remapped entities for dependency reconcile")
		}
	}}

	// PagerDuty webhooks (issue 3): the receiver stores deliveries; the webhook
	// consumer keeps the live view, publishes entity events resolved through the
	// mapping store, and remembers processed deliveries for longer than PagerDuty
	// retries.
	liveView, err := liveview.NewStore(ctx, a.js)
	if err != nil {
		return nil, fmt.Errorf("live view: %w", err)
	}
	seen, err := events.NewSeen(ctx, a.js, events.SeenConfig{})
	if err != nil {
		return nil, fmt.Errorf("webhook seen records: %w", err)
	}
	webhookEvents := workers.NewWebhookEvents(a.js, liveView, seen, mappings, workers.WebhookEventsConfig{
		DefaultAccount: accounts.Default().Account(), Registerer: a.registry,
	}, log)
	webhookConsumer, err := workers.NewConsumer(a.js, workers.ConsumerConfig{
		Stream: events.StreamPagerDutyWebhooks, Durable: "pdworker-webhooks",
		FilterSubjects: []string{events.SubjectWebhookPrefix + ">"}, Concurrency: cfg.WorkerConcurrency,
	}, webhookEvents.Handle, workerMetrics, log)
	if err != nil {
		return nil, fmt.Errorf("webhook consumer: %w", err)
	}
	a.consumers = append(a.consumers, webhookConsumer)
	webhookDeps := httpapi.WebhookDeps{
		Secrets: cfg.PagerDuty.WebhookSecrets, Publisher: a.js, MaxBodyBytes: cfg.HTTP.MaxBodyBytes, Connected: a.nc.IsConnected,
	}

	auth := httpapi.NewAuthenticator(httpapi.AuthConfig{Tokens: cfg.Auth.APITokens, Disabled: cfg.Auth.Disabled, Backstage: backstage}, log)
	handler := httpapi.New(httpapi.Config{
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		ActionWait:   cfg.ActionWaitTimeout,
		ReadOnly:     cfg.ReadOnly,
	}, httpapi.Deps{
		Actions:    registry,
		Validator:  validator,
		Jobs:       jobs,
		Auth:       auth,
		Ready:      a.ready,
		Connected:  a.nc.IsConnected,
		Gatherer:   a.registry,
		Registerer: a.registry,
		Mapping:    mappingDeps,
		Webhooks:   webhookDeps,
		Card:       cards,
	}, log)
	handler = httpapi.CORS(cfg.HTTP.CORSOrigins, handler)

	a.listener, err = net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("HTTP_ADDR %s: %w", cfg.HTTP.Addr, err)
	}
	a.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: action calls wait up to ACTION_WAIT_TIMEOUT by design, and
		// every handler bounds its own work.
	}
	a.cleanups = append(a.cleanups, func(context.Context) { _ = a.listener.Close() })
	return a, nil
}

// mappedIntegrationKey reads the integration key mapped to a service, for the
// server-side incident trigger; a mapping of another account does not count.
func mappedIntegrationKey(mappings *mapping.Store) card.IntegrationKeyFunc {
	return func(ctx context.Context, account, serviceID string) (string, error) {
		m, err := mappings.ByService(ctx, serviceID)
		if err != nil || m == nil || !mapping.AccountsMatch(m.Account, account) {
			return "", err
		}
		return m.IntegrationKey, nil
	}
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
	a.cleanups = append(a.cleanups, func(context.Context) {
		if err := nc.Drain(); err != nil {
			nc.Close()
		}
	})
	return nil
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

// changedReconcileEvery is how often changed catalog entities are reconciled; a burst
// of catalog changes within it becomes one dependency-sync run.
const changedReconcileEvery = 5 * time.Second

// streamOf names the stream that stores subject (catalog.* or depsync.*).
func streamOf(subject string) string {
	if strings.HasPrefix(subject, "catalog.") {
		return events.StreamCatalog
	}
	return events.StreamDepsync
}
