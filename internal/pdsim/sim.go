package pdsim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Defaults applied by New to zero Options fields.
const (
	// DefaultRateLimit is PagerDuty's documented REST limit: 960 requests per minute.
	DefaultRateLimit = 960
	// DefaultOAuthTokenTTL is how long an access token from /oauth/token stays valid.
	DefaultOAuthTokenTTL = time.Hour
)

// maxBodyBytes caps every request body the simulator reads.
const maxBodyBytes = 1 << 20

// Options configures a Sim.
type Options struct {
	// RateLimit is the number of REST requests each account may make per RateWindow;
	// 0 means DefaultRateLimit.
	RateLimit int
	// RateWindow is the rate-limit window; 0 means DefaultRateWindow (a minute, as at
	// PagerDuty). Tests shorten it to see a client's pacing within seconds.
	RateWindow time.Duration
	// OAuthTokenTTL is the lifetime of issued OAuth access tokens; 0 means
	// DefaultOAuthTokenTTL.
	OAuthTokenTTL time.Duration
	// Seed seeds the random sources behind generated IDs, integration keys, OAuth tokens
	// and probabilistic faults, so a run with the same seed and the same request order
	// produces the same values.
	Seed int64
	// Log receives one debug line per request and warnings about bad control calls.
	// The zero value logs nothing.
	Log zerolog.Logger
	// Webhooks tunes webhook delivery (timeouts, retries, disablement); see webhooks.go.
	Webhooks WebhookOptions
}

// Sim is a stateful PagerDuty REST API simulator. It is an http.Handler and is safe for
// concurrent use.
type Sim struct {
	opts Options
	log  zerolog.Logger
	now  func() time.Time

	api     *http.ServeMux
	control *http.ServeMux

	ids    *idSource
	faults *faultSet
	reqlog *requestLog

	// rateLimited counts 429s produced by the rate limiter (not by faults).
	rateLimited atomic.Int64

	// incidents and webhooks are the incident model and webhook delivery
	// (incidents.go, webhooks.go); they take their own locks after an account's.
	incidents *incidentBook
	webhooks  *webhookHub

	mu           sync.RWMutex
	accounts     map[string]*account
	accountOrder []string
	tokens       map[string]*account
	oauthClients map[string]*oauthClient
	oauthTokens  map[string]oauthToken
	tokensIssued map[string]int
}

// New returns an empty simulator; add accounts with AddAccount or Load.
func New(opts Options) *Sim {
	if opts.RateLimit <= 0 {
		opts.RateLimit = DefaultRateLimit
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = DefaultRateWindow
	}
	if opts.OAuthTokenTTL <= 0 {
		opts.OAuthTokenTTL = DefaultOAuthTokenTTL
	}
	s := &Sim{
		opts:         opts,
		log:          opts.Log.With().Str("component", "pdsim").Logger(),
		now:          time.Now,
		ids:          newIDSource(opts.Seed),
		faults:       newFaultSet(opts.Seed),
		reqlog:       &requestLog{},
		accounts:     map[string]*account{},
		tokens:       map[string]*account{},
		oauthClients: map[string]*oauthClient{},
		oauthTokens:  map[string]oauthToken{},
		tokensIssued: map[string]int{},
		incidents:    newIncidentBook(),
		webhooks:     newWebhookHub(opts.Webhooks),
	}
	s.api = s.apiRoutes()
	s.control = s.controlRoutes()
	return s
}

// apiRoutes registers the PagerDuty REST endpoints. Every handler runs after
// authentication and rate limiting and finds its account with accountFrom, or is
// handed it by withObject.
func (s *Sim) apiRoutes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST /oauth/token", s.handleOAuthToken)

	m.HandleFunc("GET /abilities", s.handleListAbilities)
	m.HandleFunc("GET /abilities/{name}", s.handleTestAbility)

	m.HandleFunc("GET /escalation_policies", s.handleListEscalationPolicies)
	m.HandleFunc("GET /escalation_policies/{id}", withObject(policiesOf, "", s.handleGetEscalationPolicy))

	m.HandleFunc("POST /services", s.handleCreateService)
	m.HandleFunc("GET /services", s.handleListServices)
	m.HandleFunc("GET /services/{id}", withObject(servicesOf, "", s.handleGetService))
	m.HandleFunc("PUT /services/{id}", withObject(servicesOf, "service", s.handleUpdateService))
	m.HandleFunc("DELETE /services/{id}", withObject(servicesOf, "", s.handleDeleteService))
	m.HandleFunc("POST /services/{id}/integrations", withObject(servicesOf, "integration", s.handleCreateIntegration))
	m.HandleFunc("GET /services/{id}/integrations/{iid}", withObject(servicesOf, "", s.handleGetIntegration))

	m.HandleFunc("POST /alert_grouping_settings", withSettingsAPI(s.handleCreateSetting))
	m.HandleFunc("GET /alert_grouping_settings", withSettingsAPI(s.handleListSettings))
	m.HandleFunc("GET /alert_grouping_settings/{id}", withSettingsAPI(withObject(settingsOf, "", s.handleGetSetting)))
	m.HandleFunc("PUT /alert_grouping_settings/{id}", withSettingsAPI(withObject(settingsOf, "alert_grouping_setting", s.handleUpdateSetting)))
	m.HandleFunc("DELETE /alert_grouping_settings/{id}", withSettingsAPI(withObject(settingsOf, "", s.handleDeleteSetting)))

	s.dependencyRoutes(m) // service dependencies (dependencies.go)
	// On-calls, users, change events, standards, analytics for the Backstage card (card.go).
	s.cardRoutes(m)
	s.incidentRoutes(m) // incidents, Events API v2, webhook subscriptions (incidents.go)

	m.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { writeNotFound(w) })
	return m
}

// ServeHTTP serves the PagerDuty REST API, /oauth/token and the /_sim/ control API.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.control.ServeHTTP(w, r)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)

	rec := &statusRecorder{ResponseWriter: w}
	entry := Request{Time: s.now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
	acct := s.authenticate(r)
	if acct != nil {
		entry.Account = acct.id
	}
	record := sync.OnceFunc(func() {
		entry.Status = rec.status
		s.reqlog.add(entry)
		s.log.Debug().Str("account", entry.Account).Str("method", entry.Method).Str("path", entry.Path).
			Int("status", entry.Status).Str("fault", entry.Fault).Msg("request")
	})
	defer record()

	f, faulted := s.faults.pick(entry.Account, r.Method, r.URL.Path)
	if faulted {
		entry.Fault = string(f.Kind)
		if f.Kind == FaultDrop {
			// Logged before the connection closes, so whoever sees the failure
			// also finds the request in the log.
			record()
		}
		if !s.applyFault(rec, w, r, f, acct) {
			return
		}
	}
	if faulted && f.Kind == Fault5xxAfter {
		s.serveAPI(newDiscardWriter(rec.Header()), r, acct)
		writeError(rec, f.status(), codeInternal, msgInternal)
		return
	}
	s.serveAPI(rec, r, acct)
}

// serveAPI authenticates, rate-limits and dispatches one REST request.
func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request, acct *account) {
	if r.URL.Path == "/oauth/token" || isEventsAPI(r.URL.Path) {
		s.api.ServeHTTP(w, r)
		return
	}
	if acct == nil {
		writeError(w, http.StatusUnauthorized, codeAuthFailed, "Authentication failed")
		return
	}
	if !s.rateLimit(w, acct) {
		return
	}
	s.api.ServeHTTP(w, r.WithContext(withAccount(r.Context(), acct)))
}

// authenticate returns the account named by the request's credentials, or nil.
// API tokens must use the exact `Token token=<t>` form; bearer tokens must have been
// issued by /oauth/token and not have expired.
func (s *Sim) authenticate(r *http.Request) *account {
	h := r.Header.Get("Authorization")
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case strings.HasPrefix(h, "Token token="):
		return s.tokens[strings.TrimPrefix(h, "Token token=")]
	case strings.HasPrefix(h, "Bearer "):
		t, ok := s.oauthTokens[strings.TrimPrefix(h, "Bearer ")]
		if !ok || !s.now().Before(t.expires) {
			return nil
		}
		return s.accounts[t.account]
	}
	return nil
}

// account looks an account up by ID.
func (s *Sim) account(id string) *account {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.accounts[id]
}

// accountList returns the accounts in the order they were added.
func (s *Sim) accountList() []*account {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*account, 0, len(s.accountOrder))
	for _, id := range s.accountOrder {
		out = append(out, s.accounts[id])
	}
	return out
}

type ctxKey struct{}

func withAccount(ctx context.Context, a *account) context.Context {
	return context.WithValue(ctx, ctxKey{}, a)
}

// accountFrom returns the authenticated account; serveAPI guarantees one is present.
func accountFrom(ctx context.Context) *account {
	a, _ := ctx.Value(ctxKey{}).(*account)
	return a
}

// objectHandler serves a request about one object of the authenticated account a,
// with a.mu held; in holds the fields of the request body when the route reads one.
type objectHandler[T any] func(w http.ResponseWriter, r *http.Request, a *account, obj *T, in map[string]json.RawMessage)

// withObject serves a route about the object named by the {id} path value among the
// authenticated account's objects: it reads the `{"<bodyKey>":{…}}` body when bodyKey
// is set, locks the account, and runs h with the object, or answers 404 when there is
// none. The body is read before the lock, so a slow client holds no lock and a bad
// body is answered 400 even for an unknown id.
func withObject[T any](objects func(*account) map[string]*T, bodyKey string, h objectHandler[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := accountFrom(r.Context())
		var in map[string]json.RawMessage
		if bodyKey != "" {
			var derr *apiError
			if in, derr = decodeWrapped(r, bodyKey); derr != nil {
				writeAPIError(w, derr)
				return
			}
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		obj := objects(a)[r.PathValue("id")]
		if obj == nil {
			writeNotFound(w)
			return
		}
		h(w, r, a, obj, in)
	}
}

// The object maps withObject looks {id} up in.
func servicesOf(a *account) map[string]*service          { return a.services }
func settingsOf(a *account) map[string]*groupingSetting  { return a.settings }
func policiesOf(a *account) map[string]*escalationPolicy { return a.eps }

// statusRecorder remembers the status code written through it; 0 means no response.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush passes through so that streaming stays possible.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack passes through to the underlying connection.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("pdsim: response writer cannot hijack")
	}
	return h.Hijack()
}

// discardWriter runs a handler whose answer is thrown away (Fault5xxAfter). Headers it
// sets land in the shared header map, which is how rate-limit headers survive.
type discardWriter struct{ header http.Header }

func newDiscardWriter(h http.Header) *discardWriter { return &discardWriter{header: h} }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
