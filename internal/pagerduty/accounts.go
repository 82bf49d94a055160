package pagerduty

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Default EU URLs, used for accounts in the EU service region when no URL is given.
const (
	DefaultEUAPIURL    = "https://api.eu.pagerduty.com"
	DefaultEUEventsURL = "https://events.eu.pagerduty.com"
)

// Defaults applied by NewAccounts to zero Options fields.
const (
	DefaultRateLimit     = 900
	DefaultCallTimeout   = 30 * time.Second
	DefaultRetryMax      = 3
	DefaultRetryWaitMin  = 250 * time.Millisecond
	DefaultRetryWaitMax  = 5 * time.Second
	DefaultMaxRetryAfter = 5 * time.Second
)

// Options tune every account's client. Zero values take the defaults above.
type Options struct {
	// RateLimit is the client-side budget in requests per RateWindow per account
	// (PAGERDUTY_RATE_LIMIT, default 900 per minute), shared by everything in the process
	// that uses the account and applied to every HTTP attempt, retries and token fetches
	// included. No interval of RateWindow ever holds more than RateLimit request
	// starts; see budget.
	RateLimit int
	// RateWindow is the period RateLimit counts over: a minute (the default), as
	// PagerDuty's limits are per minute. Tests shorten it to see pacing within seconds.
	RateWindow time.Duration
	// CallTimeout is the deadline of one API call including its retries and, for list
	// calls, all of its pages (default 30s).
	CallTimeout time.Duration
	// RetryMax is the number of in-process retries after the first attempt (default 3;
	// negative disables retries).
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between retries
	// (defaults 250ms and 5s). A 429 without ratelimit-reset waits between RetryWaitMax/2
	// and RetryWaitMax.
	RetryWaitMin, RetryWaitMax time.Duration
	// MaxRetryAfter is the longest ratelimit-reset wait done in-process (default 5s). A
	// longer one ends the call with a retryable *APIError whose RetryAfter is that wait,
	// so the NATS layer delays the message instead of blocking a worker.
	MaxRetryAfter time.Duration
	// Transport is the base transport; nil means a cleanhttp pooled transport shared by
	// all accounts.
	Transport http.RoundTripper
	// Registerer receives the pdworker_pagerduty_* metrics; nil means no metrics.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() (Options, error) {
	if o.RateLimit < 0 || o.CallTimeout < 0 || o.RetryWaitMin < 0 || o.RetryWaitMax < 0 || o.MaxRetryAfter < 0 {
		return o, errors.New("pagerduty options: rate limit, timeouts and waits must not be negative")
	}
	if o.RateLimit == 0 {
		o.RateLimit = DefaultRateLimit
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	switch {
	case o.RetryMax == 0:
		o.RetryMax = DefaultRetryMax
	case o.RetryMax < 0:
		o.RetryMax = 0
	}
	if o.RetryWaitMin == 0 {
		o.RetryWaitMin = DefaultRetryWaitMin
	}
	if o.RetryWaitMax == 0 {
		o.RetryWaitMax = DefaultRetryWaitMax
	}
	if o.RetryWaitMax < o.RetryWaitMin {
		o.RetryWaitMax = o.RetryWaitMin
	}
	if o.MaxRetryAfter == 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.Transport == nil {
		o.Transport = cleanhttp.DefaultPooledTransport()
	}
	if o.RateWindow <= 0 {
		o.RateWindow = time.Minute
	}
	return o, nil
}

// Accounts holds one *Client per configured PagerDuty account. It is safe for
// concurrent use and immutable after NewAccounts.
type Accounts struct {
	clients []*Client // default first, then configuration order
	byID    map[string]*Client
}

// NewAccounts validates the account configurations, applies region defaults and builds
// one client per account, with its own rate budget, sharing opts. Validation errors name
// the account and the field, never a secret. Metrics are registered once here when
// opts.Registerer is set.
func NewAccounts(cfgs []AccountConfig, opts Options, log zerolog.Logger) (*Accounts, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cfgs, err = normalizeAccounts(cfgs)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register pagerduty metrics: %w", err)
	}
	log = log.With().Str("component", "pagerduty").Logger()
	a := &Accounts{byID: make(map[string]*Client, len(cfgs))}
	for _, cfg := range cfgs {
		c := newClient(cfg, opts, m, log.With().Str("account", cfg.ID).Logger())
		a.byID[cfg.ID] = c
		if cfg.Default {
			a.clients = append([]*Client{c}, a.clients...)
		} else {
			a.clients = append(a.clients, c)
		}
	}
	return a, nil
}

// Client returns the client of account id; "" means the default account. An unknown id
// gives an error matching errors.Is(err, ErrUnknownAccount).
func (a *Accounts) Client(id string) (*Client, error) {
	if id == "" {
		return a.Default(), nil
	}
	c, ok := a.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownAccount, id)
	}
	return c, nil
}

// Default returns the default account's client.
func (a *Accounts) Default() *Client { return a.clients[0] }

// All returns every client, the default first, then in configuration order.
func (a *Accounts) All() []*Client { return append([]*Client(nil), a.clients...) }

var (
	accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	subdomainPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
)

// normalizeAccounts validates cfgs and returns copies with defaults filled in: OAuth
// region and token URL, EU URLs for EU accounts, US URLs otherwise, Default set on a
// single account.
func normalizeAccounts(cfgs []AccountConfig) ([]AccountConfig, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("no pagerduty account configured")
	}
	out := make([]AccountConfig, len(cfgs))
	var errs []error
	seen := map[string]bool{}
	var defaults []string
	for i, cfg := range cfgs {
		name := fmt.Sprintf("pagerduty account %q", cfg.ID)
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
		}
		switch {
		case cfg.ID == "":
			name = fmt.Sprintf("pagerduty account #%d", i+1)
			fail("id is empty")
		case !accountIDPattern.MatchString(cfg.ID):
			fail("id must be letters, digits, '.', '_' or '-'")
		case seen[cfg.ID]:
			fail("id is used by more than one account")
		}
		seen[cfg.ID] = true
		if len(cfgs) == 1 {
			cfg.Default = true
		}
		if cfg.Default {
			defaults = append(defaults, cfg.ID)
		}

		region := ""
		switch {
		case cfg.Token.IsZero() && cfg.OAuth == nil:
			fail("neither token nor oauth is set; set exactly one")
		case !cfg.Token.IsZero() && cfg.OAuth != nil:
			fail("both token and oauth are set; set exactly one")
		case cfg.OAuth != nil:
			o := *cfg.OAuth
			o.Region = strings.ToLower(strings.TrimSpace(o.Region))
			if o.Region == "" {
				o.Region = "us"
			}
			region = o.Region
			if o.Region != "us" && o.Region != "eu" {
				fail("oauth.region %q is not one of us, eu", o.Region)
			}
			if o.ClientID == "" {
				fail("oauth.clientId is empty")
			}
			if o.ClientSecret.IsZero() {
				fail("oauth.clientSecret is empty")
			}
			if !subdomainPattern.MatchString(o.Subdomain) {
				fail("oauth.subdomain %q is not a subdomain label (the <subdomain> of <subdomain>.pagerduty.com)", o.Subdomain)
			}
			if o.TokenURL == "" {
				o.TokenURL = DefaultOAuthTokenURL
			}
			if err := checkURL(o.TokenURL); err != nil {
				fail("oauth.tokenUrl: %v", err)
			}
			cfg.OAuth = &o
		}

		if cfg.APIURL == "" {
			cfg.APIURL = DefaultAPIURL
			if region == "eu" {
				cfg.APIURL = DefaultEUAPIURL
			}
		}
		cfg.APIURL = strings.TrimRight(cfg.APIURL, "/")
		if err := checkURL(cfg.APIURL); err != nil {
			fail("apiUrl: %v", err)
		}
		if cfg.EventsURL == "" {
			cfg.EventsURL = DefaultEventsURL
			if region == "eu" || isEUHost(cfg.APIURL) {
				cfg.EventsURL = DefaultEUEventsURL
			}
		}
		cfg.EventsURL = strings.TrimRight(cfg.EventsURL, "/")
		if err := checkURL(cfg.EventsURL); err != nil {
			fail("eventsUrl: %v", err)
		}
		out[i] = cfg
	}
	switch {
	case len(defaults) == 0:
		errs = append(errs, errors.New("pagerduty accounts: none is marked default; mark exactly one"))
	case len(defaults) > 1:
		errs = append(errs, fmt.Errorf("pagerduty accounts: %s are all marked default; mark exactly one", strings.Join(quoteAll(defaults), ", ")))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// checkURL accepts absolute http(s) URLs without credentials, query or fragment. Its
// errors never repeat the URL, which could hold credentials.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an http:// or https:// URL")
	case u.Host == "":
		return errors.New("has no host")
	case u.User != nil:
		return errors.New("must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("must not have a query or fragment")
	}
	return nil
}

func isEUHost(apiURL string) bool {
	u, err := url.Parse(apiURL)
	return err == nil && strings.EqualFold(u.Hostname(), "api.eu.pagerduty.com")
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
