package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"
	"sigs.k8s.io/yaml"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/secret"
)

// env mirrors the environment variables one to one; Load turns it into a Config.
// The names are part of the service's contract (DESIGN.md section 3).
type env struct {
	HTTPAddr            string        `envconfig:"HTTP_ADDR" default:":8080"`
	HTTPMaxBodyBytes    int64         `envconfig:"HTTP_MAX_BODY_BYTES" default:"262144"`
	NATSURL             string        `envconfig:"NATS_URL"`
	NATSEmbeddedListen  string        `envconfig:"NATS_EMBEDDED_LISTEN" default:"127.0.0.1:4222"`
	DataDir             string        `envconfig:"DATA_DIR" default:"./data"`
	NATSReplicas        int           `envconfig:"NATS_REPLICAS" default:"1"`
	PDAPIToken          secret.Value  `envconfig:"PAGERDUTY_API_TOKEN"`
	PDOAuthClientID     string        `envconfig:"PAGERDUTY_OAUTH_CLIENT_ID"`
	PDOAuthClientSecret secret.Value  `envconfig:"PAGERDUTY_OAUTH_CLIENT_SECRET"`
	PDOAuthSubdomain    string        `envconfig:"PAGERDUTY_OAUTH_SUBDOMAIN"`
	PDOAuthRegion       string        `envconfig:"PAGERDUTY_OAUTH_REGION" default:"us"`
	PDOAuthTokenURL     string        `envconfig:"PAGERDUTY_OAUTH_TOKEN_URL" default:"https://identity.pagerduty.com/oauth/token"`
	PDAPIURL            string        `envconfig:"PAGERDUTY_API_URL" default:"https://api.pagerduty.com"`
	PDEventsURL         string        `envconfig:"PAGERDUTY_EVENTS_URL" default:"https://events.pagerduty.com"`
	PDAccountsFile      string        `envconfig:"PAGERDUTY_ACCOUNTS_FILE"`
	PDRateLimit         int           `envconfig:"PAGERDUTY_RATE_LIMIT" default:"900"`
	PDWebhookSecrets    string        `envconfig:"PAGERDUTY_WEBHOOK_SECRETS"`
	APITokens           string        `envconfig:"API_TOKENS"`
	BackstageURL        string        `envconfig:"BACKSTAGE_URL"`
	BackstageToken      secret.Value  `envconfig:"BACKSTAGE_TOKEN"`
	BackstagePluginID   string        `envconfig:"BACKSTAGE_PLUGIN_ID" default:"pagerduty"`
	CORSAllowedOrigins  string        `envconfig:"CORS_ALLOWED_ORIGINS"`
	CatalogPollInterval time.Duration `envconfig:"CATALOG_POLL_INTERVAL" default:"1m"`
	AuthDisabled        bool          `envconfig:"AUTH_DISABLED" default:"false"`
	ReadOnly            bool          `envconfig:"READ_ONLY" default:"false"`
	DepsyncInterval     time.Duration `envconfig:"DEPSYNC_INTERVAL" default:"1h"`
	ActionWaitTimeout   time.Duration `envconfig:"ACTION_WAIT_TIMEOUT" default:"50s"`
	WorkerConcurrency   int           `envconfig:"WORKER_CONCURRENCY" default:"8"`
	ShutdownTimeout     time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"25s"`
	LogLevel            string        `envconfig:"LOG_LEVEL" default:"info"`
	LogFormat           string        `envconfig:"LOG_FORMAT" default:"json"`
	CardCacheTTL        time.Duration `envconfig:"CARD_CACHE_TTL" default:"60s"`
	// Dependency sync.
	DepsyncMaxRemovalShare  float64 `envconfig:"DEPSYNC_MAX_REMOVAL_SHARE" default:"0.1"`
	DepsyncGuardMinRemovals int     `envconfig:"DEPSYNC_GUARD_MIN_REMOVALS" default:"10"`
	DepsyncBatchSize        int     `envconfig:"DEPSYNC_BATCH_SIZE" default:"100"`
}

// Config is the validated configuration of one pdworker process.
type Config struct {
	HTTP      HTTP
	NATS      NATS
	PagerDuty PagerDuty
	Auth      Auth
	Backstage Backstage
	Log       Log

	// ReadOnly refuses every write to PagerDuty with 403 (READ_ONLY).
	ReadOnly bool
	// DepsyncInterval is the period of the full dependency reconcile (DEPSYNC_INTERVAL).
	DepsyncInterval time.Duration
	// ActionWaitTimeout bounds how long an HTTP action call waits for its job's result
	// before answering 504 (ACTION_WAIT_TIMEOUT). The job itself goes on.
	ActionWaitTimeout time.Duration
	// WorkerConcurrency is how many jobs one consumer runs at once (WORKER_CONCURRENCY).
	WorkerConcurrency int
	// ShutdownTimeout bounds the whole shutdown sequence (SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration
	// CardCacheTTL is how long the Backstage card's PagerDuty reads are cached
	// (CARD_CACHE_TTL); webhook events about a service expire its entries sooner.
	CardCacheTTL time.Duration
	// Depsync tunes dependency sync beyond DEPSYNC_INTERVAL.
	Depsync Depsync
}

// Depsync tunes the dependency sync.
type Depsync struct {
	// MaxRemovalShare is the safety guard (DEPSYNC_MAX_REMOVAL_SHARE): a run that would
	// remove more than this share of the managed PagerDuty dependencies applies nothing.
	MaxRemovalShare float64
	// GuardMinRemovals: plans removing at most this many never trip the guard
	// (DEPSYNC_GUARD_MIN_REMOVALS).
	GuardMinRemovals int
	// BatchSize is the number of relationships per associate/disassociate call
	// (DEPSYNC_BATCH_SIZE).
	BatchSize int
}

// HTTP configures the HTTP server.
type HTTP struct {
	Addr         string   // HTTP_ADDR
	MaxBodyBytes int64    // HTTP_MAX_BODY_BYTES
	CORSOrigins  []string // CORS_ALLOWED_ORIGINS
}

// NATS says where JetStream is.
type NATS struct {
	// URL is empty for an embedded server, else one or more comma-separated URLs.
	URL            string
	EmbeddedListen string // NATS_EMBEDDED_LISTEN
	DataDir        string // DATA_DIR
	Replicas       int    // NATS_REPLICAS
	// AllowPortFallback lets the embedded server take a free port when
	// EmbeddedListen is taken (--simulate only).
	AllowPortFallback bool
}

// Embedded reports whether the process runs its own NATS server.
func (n NATS) Embedded() bool { return n.URL == "" }

// PagerDuty configures the PagerDuty accounts and the webhook receiver.
type PagerDuty struct {
	Accounts       []pagerduty.AccountConfig
	RateLimit      int            // PAGERDUTY_RATE_LIMIT, requests per minute per account
	WebhookSecrets []secret.Value // PAGERDUTY_WEBHOOK_SECRETS
}

// Auth configures who may call /api/pagerduty.
type Auth struct {
	APITokens []secret.Value // API_TOKENS
	Disabled  bool           // AUTH_DISABLED
	// BackstageURL enables Backstage user and plugin tokens (BACKSTAGE_URL).
	BackstageURL string
	PluginID     string // BACKSTAGE_PLUGIN_ID
}

// Backstage configures the catalog watcher.
type Backstage struct {
	URL          string       // BACKSTAGE_URL
	Token        secret.Value // BACKSTAGE_TOKEN
	PollInterval time.Duration
}

// Log configures logging.
type Log struct {
	Level  zerolog.Level
	Format string // json or console
}

// Options changes how Load judges the environment.
type Options struct {
	// Simulate is --simulate: PagerDuty credentials and API tokens are provided by the
	// caller afterwards, so their absence is not an error.
	Simulate bool
	// Command is a one-off command (pdworker sync) that serves no HTTP, so it needs no
	// way to authenticate callers.
	Command bool
}

// Load reads the environment (and PAGERDUTY_ACCOUNTS_FILE), validates it and returns
// the configuration. The error lists every problem, one line each, naming the variable
// and what it accepts.
func Load(opts Options) (*Config, error) {
	var e env
	if err := envconfig.Process("", &e); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			want := map[string]string{"bool": "true or false", "time.Duration": "a duration such as 30s, 5m or 1h", "int": "a whole number", "int64": "a whole number"}[pe.TypeName]
			if want == "" {
				want = pe.TypeName
			}
			if pe.Value == "" {
				return nil, &Error{Problems: []error{fmt.Errorf("%s: is set but empty: unset it to use the default, or give %s", pe.KeyName, want)}}
			}
			return nil, &Error{Problems: []error{fmt.Errorf("%s: %q is not %s", pe.KeyName, pe.Value, want)}}
		}
		return nil, fmt.Errorf("read environment: %w", err)
	}
	return e.build(opts)
}

func (e env) build(opts Options) (*Config, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	cfg := &Config{
		HTTP: HTTP{Addr: e.HTTPAddr, MaxBodyBytes: e.HTTPMaxBodyBytes, CORSOrigins: split(e.CORSAllowedOrigins)},
		NATS: NATS{URL: strings.TrimSpace(e.NATSURL), EmbeddedListen: e.NATSEmbeddedListen, DataDir: e.DataDir, Replicas: e.NATSReplicas, AllowPortFallback: opts.Simulate},
		PagerDuty: PagerDuty{
			RateLimit:      e.PDRateLimit,
			WebhookSecrets: secrets(e.PDWebhookSecrets),
		},
		Auth: Auth{
			APITokens:    secrets(e.APITokens),
			Disabled:     e.AuthDisabled,
			BackstageURL: strings.TrimRight(e.BackstageURL, "/"),
			PluginID:     e.BackstagePluginID,
		},
		Backstage:         Backstage{URL: strings.TrimRight(e.BackstageURL, "/"), Token: e.BackstageToken, PollInterval: e.CatalogPollInterval},
		ReadOnly:          e.ReadOnly,
		DepsyncInterval:   e.DepsyncInterval,
		ActionWaitTimeout: e.ActionWaitTimeout,
		WorkerConcurrency: e.WorkerConcurrency,
		ShutdownTimeout:   e.ShutdownTimeout,
	}

	if _, _, err := net.SplitHostPort(e.HTTPAddr); err != nil {
		bad("HTTP_ADDR: %q is not a host:port address (for example :8080)", e.HTTPAddr)
	}
	if e.HTTPMaxBodyBytes < 1024 {
		bad("HTTP_MAX_BODY_BYTES: must be at least 1024, got %d", e.HTTPMaxBodyBytes)
	}
	for _, u := range split(e.NATSURL) {
		if !validNATSURL(u) {
			bad("NATS_URL: %q is not a NATS URL (nats://host:port, tls://host:port, comma-separated for a cluster)", secret.RedactURL(u))
		}
	}
	if _, _, err := net.SplitHostPort(e.NATSEmbeddedListen); err != nil {
		bad("NATS_EMBEDDED_LISTEN: %q is not a host:port address (for example 127.0.0.1:4222)", e.NATSEmbeddedListen)
	}
	if strings.TrimSpace(e.DataDir) == "" {
		bad("DATA_DIR: must not be empty")
	}
	if e.NATSReplicas < 1 || e.NATSReplicas > 5 {
		bad("NATS_REPLICAS: must be between 1 and 5, got %d", e.NATSReplicas)
	}
	if e.PDRateLimit < 1 {
		bad("PAGERDUTY_RATE_LIMIT: must be a positive number of requests per minute, got %d", e.PDRateLimit)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"CATALOG_POLL_INTERVAL", e.CatalogPollInterval},
		{"DEPSYNC_INTERVAL", e.DepsyncInterval},
		{"ACTION_WAIT_TIMEOUT", e.ActionWaitTimeout},
		{"SHUTDOWN_TIMEOUT", e.ShutdownTimeout},
	} {
		if d.v <= 0 {
			bad("%s: must be a positive duration (for example 30s, 5m, 1h), got %s", d.name, d.v)
		}
	}
	if e.WorkerConcurrency < 1 || e.WorkerConcurrency > 256 {
		bad("WORKER_CONCURRENCY: must be between 1 and 256, got %d", e.WorkerConcurrency)
	}
	if e.BackstageURL != "" && !validHTTPURL(e.BackstageURL) {
		bad("BACKSTAGE_URL: %q is not an http(s) URL", secret.RedactURL(e.BackstageURL))
	}
	if e.BackstagePluginID == "" {
		bad("BACKSTAGE_PLUGIN_ID: must not be empty")
	}
	for _, o := range cfg.HTTP.CORSOrigins {
		if !validOrigin(o) {
			bad("CORS_ALLOWED_ORIGINS: %q is not an origin (scheme://host[:port], no path); \"*\" is not accepted", o)
		}
	}
	level, err := zerolog.ParseLevel(strings.ToLower(e.LogLevel))
	if err != nil || e.LogLevel == "" {
		bad("LOG_LEVEL: %q is not one of trace, debug, info, warn, error", e.LogLevel)
	}
	cfg.Log.Level = level
	switch e.LogFormat {
	case "json", "console":
		cfg.Log.Format = e.LogFormat
	default:
		bad("LOG_FORMAT: %q is not one of json, console", e.LogFormat)
	}

	accounts, accErrs := e.accounts(opts)
	errs = append(errs, accErrs...)
	cfg.PagerDuty.Accounts = accounts

	if !opts.Simulate && !opts.Command && !e.AuthDisabled && len(cfg.Auth.APITokens) == 0 && cfg.Auth.BackstageURL == "" {
		bad("API_TOKENS: no way to authenticate callers: set API_TOKENS (static bearer tokens), BACKSTAGE_URL (accept Backstage tokens), or AUTH_DISABLED=true for local development")
	}

	cfg.CardCacheTTL = e.CardCacheTTL
	if e.CardCacheTTL <= 0 {
		bad("CARD_CACHE_TTL: must be a positive duration (for example 30s, 1m), got %s", e.CardCacheTTL)
	}

	cfg.Depsync = Depsync{MaxRemovalShare: e.DepsyncMaxRemovalShare, GuardMinRemovals: e.DepsyncGuardMinRemovals, BatchSize: e.DepsyncBatchSize}
	if e.DepsyncMaxRemovalShare <= 0 || e.DepsyncMaxRemovalShare > 1 {
		bad("DEPSYNC_MAX_REMOVAL_SHARE: must be a share between 0 (exclusive) and 1, got %v", e.DepsyncMaxRemovalShare)
	}
	if e.DepsyncGuardMinRemovals < 0 {
		bad("DEPSYNC_GUARD_MIN_REMOVALS: must be 0 or more, got %d", e.DepsyncGuardMinRemovals)
	}
	if e.DepsyncBatchSize < 1 || e.DepsyncBatchSize > 1000 {
		bad("DEPSYNC_BATCH_SIZE: must be between 1 and 1000, got %d", e.DepsyncBatchSize)
	}

	if len(errs) > 0 {
		return nil, &Error{Problems: errs}
	}
	return cfg, nil
}

// accounts builds the PagerDuty account list, from PAGERDUTY_ACCOUNTS_FILE or from the
// single-account variables.
func (e env) accounts(opts Options) ([]pagerduty.AccountConfig, []error) {
	if e.PDAccountsFile != "" {
		if e.PDAPIToken != "" || e.PDOAuthClientID != "" {
			return nil, []error{errors.New("PAGERDUTY_ACCOUNTS_FILE: set either the accounts file or PAGERDUTY_API_TOKEN / PAGERDUTY_OAUTH_*, not both")}
		}
		accs, err := readAccountsFile(e.PDAccountsFile, e)
		if err != nil {
			return nil, []error{err}
		}
		return accs, validateAccounts(accs)
	}
	oauthSet := e.PDOAuthClientID != "" || e.PDOAuthClientSecret != "" || e.PDOAuthSubdomain != ""
	acc := pagerduty.AccountConfig{ID: "default", Default: true, APIURL: e.PDAPIURL, EventsURL: e.PDEventsURL, Token: e.PDAPIToken}
	switch {
	case e.PDAPIToken != "" && oauthSet:
		return nil, []error{errors.New("PAGERDUTY_API_TOKEN: set either an API token or PAGERDUTY_OAUTH_CLIENT_ID/SECRET/SUBDOMAIN, not both")}
	case oauthSet:
		acc.OAuth = &pagerduty.OAuthConfig{
			ClientID: e.PDOAuthClientID, ClientSecret: e.PDOAuthClientSecret,
			Subdomain: e.PDOAuthSubdomain, Region: e.PDOAuthRegion, TokenURL: e.PDOAuthTokenURL,
		}
	case e.PDAPIToken == "":
		if opts.Simulate {
			return nil, nil
		}
		return nil, []error{errors.New("PAGERDUTY_API_TOKEN: no PagerDuty credentials: set PAGERDUTY_API_TOKEN, or PAGERDUTY_OAUTH_CLIENT_ID + PAGERDUTY_OAUTH_CLIENT_SECRET + PAGERDUTY_OAUTH_SUBDOMAIN, or PAGERDUTY_ACCOUNTS_FILE (or run with --simulate for a demo)")}
	}
	accs := []pagerduty.AccountConfig{acc}
	return accs, validateAccounts(accs)
}

// accountsFile is the shape of PAGERDUTY_ACCOUNTS_FILE: {"accounts":[…]} in YAML or JSON.
type accountsFile struct {
	Accounts []pagerduty.AccountConfig `json:"accounts"`
}

func readAccountsFile(path string, e env) ([]pagerduty.AccountConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("PAGERDUTY_ACCOUNTS_FILE: cannot read %s: %w", path, errors.Unwrap(err))
	}
	var f accountsFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("PAGERDUTY_ACCOUNTS_FILE: %s is not a valid accounts file ({accounts: [{id, default, token | oauth, apiUrl, eventsUrl}]}): %w", path, err)
	}
	if len(f.Accounts) == 0 {
		return nil, fmt.Errorf("PAGERDUTY_ACCOUNTS_FILE: %s lists no accounts", path)
	}
	if len(f.Accounts) == 1 {
		f.Accounts[0].Default = true
	}
	for i := range f.Accounts {
		a := &f.Accounts[i]
		eu := a.OAuth != nil && a.OAuth.Region == "eu"
		if a.APIURL == "" {
			a.APIURL = pick(eu, "https://api.eu.pagerduty.com", e.PDAPIURL)
		}
		if a.EventsURL == "" {
			a.EventsURL = pick(eu, "https://events.eu.pagerduty.com", e.PDEventsURL)
		}
		if a.OAuth != nil {
			if a.OAuth.Region == "" {
				a.OAuth.Region = "us"
			}
			if a.OAuth.TokenURL == "" {
				a.OAuth.TokenURL = e.PDOAuthTokenURL
			}
		}
	}
	return f.Accounts, nil
}

func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// validateAccounts checks what can be checked without I/O. Messages name the account
// and the field, never a secret's value.
func validateAccounts(accs []pagerduty.AccountConfig) []error {
	var errs []error
	where := func(a pagerduty.AccountConfig) string {
		if len(accs) == 1 && a.ID == "default" {
			return "PAGERDUTY"
		}
		return fmt.Sprintf("PAGERDUTY_ACCOUNTS_FILE: account %q", a.ID)
	}
	seen := map[string]bool{}
	defaults := 0
	for _, a := range accs {
		w := where(a)
		if a.ID == "" {
			errs = append(errs, errors.New("PAGERDUTY_ACCOUNTS_FILE: every account needs an id"))
		}
		if seen[a.ID] {
			errs = append(errs, fmt.Errorf("%s: the id is used twice", w))
		}
		seen[a.ID] = true
		if a.Default {
			defaults++
		}
		if !validHTTPURL(a.APIURL) {
			errs = append(errs, fmt.Errorf("%s: API URL %q is not an http(s) URL (PAGERDUTY_API_URL / apiUrl)", w, secret.RedactURL(a.APIURL)))
		}
		if !validHTTPURL(a.EventsURL) {
			errs = append(errs, fmt.Errorf("%s: events URL %q is not an http(s) URL (PAGERDUTY_EVENTS_URL / eventsUrl)", w, secret.RedactURL(a.EventsURL)))
		}
		switch {
		case a.Token != "" && a.OAuth != nil:
			errs = append(errs, fmt.Errorf("%s: set either token or oauth, not both", w))
		case a.Token == "" && a.OAuth == nil:
			errs = append(errs, fmt.Errorf("%s: needs a token or oauth credentials", w))
		case a.OAuth != nil:
			o := a.OAuth
			if o.ClientID == "" || o.ClientSecret == "" || o.Subdomain == "" {
				errs = append(errs, fmt.Errorf("%s: OAuth needs a client id, a client secret and a subdomain (PAGERDUTY_OAUTH_CLIENT_ID, _CLIENT_SECRET, _SUBDOMAIN)", w))
			}
			if o.Region != "us" && o.Region != "eu" {
				errs = append(errs, fmt.Errorf("%s: OAuth region %q is not one of us, eu (PAGERDUTY_OAUTH_REGION)", w, o.Region))
			}
			if !validHTTPURL(o.TokenURL) {
				errs = append(errs, fmt.Errorf("%s: OAuth token URL %q is not an http(s) URL (PAGERDUTY_OAUTH_TOKEN_URL)", w, secret.RedactURL(o.TokenURL)))
			}
		}
	}
	if len(accs) > 1 && defaults != 1 {
		errs = append(errs, fmt.Errorf("PAGERDUTY_ACCOUNTS_FILE: exactly one account must have default: true, found %d", defaults))
	}
	return errs
}

// Error is a configuration that cannot start the service; it holds every problem found.
type Error struct{ Problems []error }

// Error prints one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual problems to errors.Is/As.
func (e *Error) Unwrap() []error { return e.Problems }

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func secrets(s string) []secret.Value {
	var out []secret.Value
	for _, p := range split(s) {
		out = append(out, secret.Value(p))
	}
	return out
}

func validHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func validNATSURL(s string) bool {
	if !strings.Contains(s, "://") {
		_, _, err := net.SplitHostPort(s)
		return err == nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
		return true
	}
	return false
}

func validOrigin(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		(u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.User == nil
}
