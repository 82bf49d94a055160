package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/actions"
	"github.com/pdworker/pdworker/internal/card"
	"github.com/pdworker/pdworker/schemas"
)

// Config tunes the HTTP API.
type Config struct {
	// MaxBodyBytes caps every request body (HTTP_MAX_BODY_BYTES); larger bodies get 413.
	MaxBodyBytes int64
	// ActionWait bounds how long an action call waits for its job (ACTION_WAIT_TIMEOUT).
	ActionWait time.Duration
	// ReadOnly refuses writes to PagerDuty with 403 (READ_ONLY).
	ReadOnly bool
}

// Deps are what the handlers call into.
type Deps struct {
	Actions   *actions.Registry
	Validator *schemas.Validator
	Jobs      JobQueue
	Auth      *Authenticator
	// Ready reports whether the service can take work (NATS connected, streams ready).
	Ready func(ctx context.Context) error
	// Connected reports, without I/O, whether NATS is reachable now; handlers that
	// need NATS answer 503 at once when it is not.
	Connected func() bool
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Registerer receives the HTTP metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Webhooks configures the PagerDuty webhook receiver (webhooks.go).
	Webhooks WebhookDeps
	// Mapping serves the mapping, settings, dependency and catalog routes (mapping.go).
	Mapping MappingDeps
	// Card serves the Backstage card routes and the incident trigger (card.go); nil
	// leaves them out.
	Card *card.Cards
}

// New returns the service's HTTP handler.
func New(cfg Config, deps Deps, log zerolog.Logger) http.Handler {
	log = log.With().Str("component", "http").Logger()
	m := newMetrics(deps.Registerer)
	mux := http.NewServeMux()
	handle := func(pattern string, h http.Handler) {
		mux.Handle(pattern, m.instrument(pattern, h))
	}

	handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	handle("GET /readyz", readyHandler(deps.Ready))
	handle("GET /metrics", promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{}))
	registerWebhooks(handle, deps.Webhooks, log) // PagerDuty webhooks, signature instead of bearer auth (webhooks.go)

	act := &actionHandlers{cfg: cfg, actions: deps.Actions, validator: deps.Validator, jobs: deps.Jobs, connected: deps.Connected, log: log}
	api := func(pattern string, h http.HandlerFunc) {
		handle(pattern, deps.Auth.require(capBody(cfg.MaxBodyBytes, h)))
	}
	api("GET /api/pagerduty/actions", act.list)
	api("POST /api/pagerduty/actions/{id}", act.run)
	registerMapping(api, cfg, deps.Mapping, log) // mapping, settings, dependencies, catalog (mapping.go)
	// Backstage card reads, on-call, escalation policies, incident trigger (card.go).
	registerCard(api, cfg, deps.Card, log)
	api("/api/pagerduty/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
	})

	return recoverPanics(log, mux)
}

func readyHandler(ready func(ctx context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// capBody limits the request body; reading past the cap fails with *http.MaxBytesError.
func capBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// recoverPanics answers 500 instead of dropping the connection when a handler panics.
func recoverPanics(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error().Interface("panic", v).Str("method", r.Method).Str("path", r.URL.Path).Msg("handler panicked")
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// metrics are the HTTP server's Prometheus series.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pdworker_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

func (m *metrics) instrument(route string, next http.Handler) http.Handler {
	duration := m.duration.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		m.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
		duration.Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
