package card

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/pdworker/pdworker/internal/pagerduty"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultTTL      = 60 * time.Second
	DefaultErrorTTL = 5 * time.Second
	DefaultStaleFor = time.Hour
	DefaultDeadline = 10 * time.Second
)

// Route names, used in cache keys and metrics.
const (
	RouteService            = "service"
	RouteServiceByKey       = "service_by_integration_key"
	RouteServices           = "services"
	RouteIncidents          = "incidents"
	RouteChangeEvents       = "change_events"
	RouteStandards          = "standards"
	RouteMetrics            = "metrics"
	RouteOnCallUsers        = "oncall_users"
	RouteEscalationPolicies = "escalation_policies"
)

// changeEventsLimit is how many change events the card shows.
const changeEventsLimit = 5

// metricsWindow is the period the insights tiles cover.
const metricsWindow = 30 * 24 * time.Hour

// Config tunes the cache.
type Config struct {
	// TTL is how long an answer is served without asking PagerDuty again (default 60s).
	TTL time.Duration
	// ErrorTTL is how long a failure is remembered, so that a failing PagerDuty is not
	// asked again by every viewer (default 5s).
	ErrorTTL time.Duration
	// StaleFor is how old an answer may be and still be served, flagged stale, while
	// PagerDuty fails (default 1h).
	StaleFor time.Duration
	// Deadline bounds every read (default 10s).
	Deadline time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	c.TTL = cmp.Or(c.TTL, DefaultTTL)
	c.ErrorTTL = cmp.Or(c.ErrorTTL, DefaultErrorTTL)
	c.StaleFor = cmp.Or(c.StaleFor, DefaultStaleFor)
	c.Deadline = cmp.Or(c.Deadline, DefaultDeadline)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// IntegrationKeyFunc returns the integration key mapped to a service (for example from
// the mapping store), or "" when none is mapped.
type IntegrationKeyFunc func(ctx context.Context, account, serviceID string) (string, error)

// Cards reads and caches the card's data. It is safe for concurrent use.
type Cards struct {
	accounts  *pagerduty.Accounts
	cfg       Config
	cache     *cache
	metrics   *metrics
	log       zerolog.Logger
	mappedKey IntegrationKeyFunc
	writes    singleflight.Group
}

// New returns Cards reading through accounts. mappedKey may be nil; the trigger then
// uses the service's Backstage integration.
func New(accounts *pagerduty.Accounts, mappedKey IntegrationKeyFunc, cfg Config, reg prometheus.Registerer, log zerolog.Logger) *Cards {
	cfg = cfg.withDefaults()
	m := newMetrics(reg)
	return &Cards{
		accounts: accounts, cfg: cfg, cache: newCache(cfg, m), metrics: m, mappedKey: mappedKey,
		log: log.With().Str("component", "card").Logger(),
	}
}

// Deadline is the bound on every read.
func (c *Cards) Deadline() time.Duration { return c.cfg.Deadline }

func key(parts ...string) string { return strings.Join(parts, "\x00") }

// Service returns a service with integrations and escalation policy included.
func (c *Cards) Service(ctx context.Context, account, serviceID string) (json.RawMessage, Meta, error) {
	return serviceRead(ctx, c, RouteService, account, serviceID, func(ctx context.Context, pd *pagerduty.Client) (json.RawMessage, error) {
		return pd.GetServiceJSON(ctx, serviceID)
	})
}

// serviceRead answers a route about one service of account from the cache, or through
// fetch; the entry is expired by events about the service.
func serviceRead[T any](ctx context.Context, c *Cards, route, account, serviceID string, fetch func(ctx context.Context, pd *pagerduty.Client) (T, error)) (T, Meta, error) {
	var zero T
	pd, err := c.accounts.Client(account)
	if err != nil {
		return zero, Meta{}, err
	}
	v, m, err := c.cache.get(ctx, route, key(route, pd.Account(), serviceID), serviceID,
		func(ctx context.Context) (any, string, error) {
			x, err := fetch(ctx, pd)
			return x, "", err
		})
	if err != nil {
		return zero, Meta{}, err
	}
	x, _ := v.(T)
	return x, m, nil
}

// clients returns the client of account, or every client when account is "".
func (c *Cards) clients(account string) ([]*pagerduty.Client, error) {
	if account == "" {
		return c.accounts.All(), nil
	}
	pd, err := c.accounts.Client(account)
	if err != nil {
		return nil, err
	}
	return []*pagerduty.Client{pd}, nil
}

// ServiceByIntegrationKey returns the service that owns the integration key, looked up
// in account, or in every account when account is "". found is false when none does.
func (c *Cards) ServiceByIntegrationKey(ctx context.Context, account, integrationKey string) (svc json.RawMessage, m Meta, err error) {
	clients, err := c.clients(account)
	if err != nil {
		return nil, Meta{}, err
	}
	for _, pd := range clients {
		v, meta, err := c.cache.get(ctx, RouteServiceByKey, key(RouteServiceByKey, pd.Account(), integrationKey), "",
			func(ctx context.Context) (any, string, error) {
				s, err := pd.FindServiceByIntegrationKey(ctx, integrationKey)
				if err != nil || s == nil {
					return json.RawMessage(nil), "", err
				}
				return s, serviceIDOf(s), nil
			})
		if err != nil {
			return nil, Meta{}, err
		}
		if s := raw(v); len(s) > 0 {
			return s, meta, nil
		}
		m = meta
	}
	return nil, m, nil
}

// Services returns every service of account, or of every account when account is "",
// each with an "account" field naming its account.
func (c *Cards) Services(ctx context.Context, account string) ([]json.RawMessage, Meta, error) {
	clients, err := c.clients(account)
	if err != nil {
		return nil, Meta{}, err
	}
	out := []json.RawMessage{}
	var meta Meta
	for _, pd := range clients {
		v, m, err := c.cache.get(ctx, RouteServices, key(RouteServices, pd.Account()), "",
			func(ctx context.Context) (any, string, error) {
				list, err := pd.ListServicesJSON(ctx)
				if err != nil {
					return nil, "", err
				}
				withAccount := make([]json.RawMessage, 0, len(list))
				for _, s := range list {
					withAccount = append(withAccount, setField(s, "account", pd.Account()))
				}
				return withAccount, "", nil
			})
		if err != nil {
			return nil, Meta{}, err
		}
		out = append(out, v.([]json.RawMessage)...)
		meta.Stale = meta.Stale || m.Stale
	}
	return out, meta, nil
}

// Incidents returns a service's open (triggered or acknowledged) incidents, whatever
// their age.
func (c *Cards) Incidents(ctx context.Context, account, serviceID string) ([]json.RawMessage, Meta, error) {
	return serviceRead(ctx, c, RouteIncidents, account, serviceID, func(ctx context.Context, pd *pagerduty.Client) ([]json.RawMessage, error) {
		return pd.ListOpenIncidents(ctx, serviceID)
	})
}

// ChangeEvents returns a service's latest change events (at most 5).
func (c *Cards) ChangeEvents(ctx context.Context, account, serviceID string) ([]json.RawMessage, Meta, error) {
	return serviceRead(ctx, c, RouteChangeEvents, account, serviceID, func(ctx context.Context, pd *pagerduty.Client) ([]json.RawMessage, error) {
		return pd.ListChangeEvents(ctx, serviceID, changeEventsLimit)
	})
}

// Standards returns a service's standards scores as PagerDuty's body.
func (c *Cards) Standards(ctx context.Context, account, serviceID string) (json.RawMessage, Meta, error) {
	return serviceRead(ctx, c, RouteStandards, account, serviceID, func(ctx context.Context, pd *pagerduty.Client) (json.RawMessage, error) {
		return pd.GetStandardsScores(ctx, serviceID)
	})
}

// Metrics returns a service's incident metrics over the last 30 days (PagerDuty's data
// array).
func (c *Cards) Metrics(ctx context.Context, account, serviceID string) (json.RawMessage, Meta, error) {
	return serviceRead(ctx, c, RouteMetrics, account, serviceID, func(ctx context.Context, pd *pagerduty.Client) (json.RawMessage, error) {
		end := c.cfg.Now()
		return pd.ServiceIncidentMetrics(ctx, serviceID, end.Add(-metricsWindow), end)
	})
}

// OnCallUsers returns the users on call at the lowest escalation level of the
// policies, across every page, sorted by name, each user once.
func (c *Cards) OnCallUsers(ctx context.Context, account string, escalationPolicyIDs []string) ([]json.RawMessage, Meta, error) {
	pd, err := c.accounts.Client(account)
	if err != nil {
		return nil, Meta{}, err
	}
	ids := slices.Clone(escalationPolicyIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	v, m, err := c.cache.get(ctx, RouteOnCallUsers, key(append([]string{RouteOnCallUsers, pd.Account()}, ids...)...), "",
		func(ctx context.Context) (any, string, error) {
			ocs, err := pd.ListOnCalls(ctx, ids)
			if err != nil {
				return nil, "", err
			}
			return lowestLevelUsers(ocs), "", nil
		})
	if err != nil {
		return nil, Meta{}, err
	}
	return v.([]json.RawMessage), m, nil
}

// lowestLevelUsers keeps the users of the lowest escalation level present, sorted by
// name, each once.
func lowestLevelUsers(ocs []pagerduty.OnCall) []json.RawMessage {
	out := []json.RawMessage{}
	if len(ocs) == 0 {
		return out
	}
	lowest := slices.MinFunc(ocs, func(a, b pagerduty.OnCall) int { return cmp.Compare(a.EscalationLevel, b.EscalationLevel) }).EscalationLevel
	var keep []pagerduty.OnCall
	for _, oc := range ocs {
		if oc.EscalationLevel == lowest && len(oc.User) > 0 {
			keep = append(keep, oc)
		}
	}
	slices.SortStableFunc(keep, func(a, b pagerduty.OnCall) int {
		return cmp.Or(cmp.Compare(a.UserName, b.UserName), cmp.Compare(a.UserID, b.UserID))
	})
	seen := map[string]bool{}
	for _, oc := range keep {
		if seen[oc.UserID] {
			continue
		}
		seen[oc.UserID] = true
		out = append(out, oc.User)
	}
	return out
}

// PolicyOption is one entry of the template dropdown: {"label","value"}.
type PolicyOption struct {
	Label string `json:"label"`
	Value string `json:"value"`
	// account sorts the list.
	account, name string
}

// EscalationPolicies returns the escalation policies of account, or of every account
// when account is "", labelled "(<account>) <name>" for accounts other than "default",
// sorted by account, then name.
func (c *Cards) EscalationPolicies(ctx context.Context, account string) ([]PolicyOption, Meta, error) {
	clients, err := c.clients(account)
	if err != nil {
		return nil, Meta{}, err
	}
	out := []PolicyOption{}
	var meta Meta
	for _, pd := range clients {
		v, m, err := c.cache.get(ctx, RouteEscalationPolicies, key(RouteEscalationPolicies, pd.Account()), "",
			func(ctx context.Context) (any, string, error) {
				eps, err := pd.ListEscalationPolicies(ctx, "")
				if err != nil {
					return nil, "", err
				}
				opts := make([]PolicyOption, 0, len(eps))
				for _, ep := range eps {
					label := ep.Name
					if pd.Account() != "default" {
						label = "(" + pd.Account() + ") " + ep.Name
					}
					opts = append(opts, PolicyOption{Label: label, Value: ep.ID, account: pd.Account(), name: ep.Name})
				}
				return opts, "", nil
			})
		if err != nil {
			return nil, Meta{}, err
		}
		out = append(out, v.([]PolicyOption)...)
		meta.Stale = meta.Stale || m.Stale
	}
	slices.SortStableFunc(out, func(a, b PolicyOption) int {
		return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.name, b.name))
	})
	return out, meta, nil
}

// Invalidate expires every cached answer about a service, in every account.
func (c *Cards) Invalidate(serviceID string) {
	if serviceID == "" {
		return
	}
	n := c.cache.invalidate(serviceID)
	c.metrics.invalidations.Inc()
	c.log.Debug().Str("service_id", serviceID).Int("entries", n).Msg("card cache invalidated")
}

// ServiceOfFunc returns the PagerDuty service a webhook delivery (the v3 envelope, as
// stored on pagerduty.webhook.*) concerns, or "" when none.
type ServiceOfFunc func(body []byte) (string, error)

// WebhookSubjects is what Subscribe listens to: every stored PagerDuty webhook event.
const WebhookSubjects = "pagerduty.webhook.>"

// Subscribe expires cached answers when a webhook event about their service is
// published. It is a plain (not JetStream) subscription, so that every replica sees
// every event; the caller unsubscribes (or drains the connection) when done.
func (c *Cards) Subscribe(nc *nats.Conn, serviceOf ServiceOfFunc) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(WebhookSubjects, func(m *nats.Msg) {
		id, err := serviceOf(m.Data)
		if err != nil {
			c.log.Debug().Err(err).Str("subject", m.Subject).Msg("webhook event not understood; cache left alone")
			return
		}
		c.Invalidate(id)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", WebhookSubjects, err)
	}
	return sub, nil
}

// ErrNoIntegrationKey means a service has neither a mapped integration key nor an
// Events API integration to trigger incidents through.
var ErrNoIntegrationKey = errors.New("the service has no integration key to trigger incidents with")

// ErrReadOnly refuses writes when the service runs read-only.
var ErrReadOnly = errors.New("READ_ONLY is set: this service does not write to PagerDuty")

// EnsureIntegration returns the key of the service's integration of vendorID, creating
// one ("Backstage") when the service has none. Concurrent calls for one service and
// vendor in this process create at most one integration.
func (c *Cards) EnsureIntegration(ctx context.Context, account, serviceID, vendorID string) (string, error) {
	pd, err := c.accounts.Client(account)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Deadline)
	defer cancel()
	ch := c.writes.DoChan(key("integration", pd.Account(), serviceID, vendorID), func() (any, error) {
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Deadline)
		defer wcancel()
		svc, err := pd.GetService(wctx, serviceID, "integrations")
		if err != nil {
			return "", err
		}
		if key, ok := pagerduty.IntegrationKeyOf(svc, vendorID); ok {
			return key, nil
		}
		in, err := pd.CreateIntegration(wctx, serviceID, pagerduty.Integration{
			Name:    "Backstage",
			Service: &pagerduty.APIObject{ID: serviceID, Type: "service_reference"},
			Vendor:  &pagerduty.APIObject{ID: vendorID, Type: "vendor_reference"},
		})
		if err != nil {
			return "", err
		}
		c.Invalidate(serviceID)
		return in.IntegrationKey, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("create integration on service %s: %w", serviceID, ErrDeadline)
	}
}

// Trigger is an incident to open from Backstage.
type Trigger struct {
	Title       string
	Description string
	// Severity is critical, error (default), warning or info.
	Severity string
	// DedupKey makes repeated triggers one incident; generated when empty.
	DedupKey string
	// User is who asked (a Backstage user or plugin, or "api-token"); it goes into the
	// event's custom_details.user.
	User string
	// Source names where the trigger came from (default "backstage").
	Source string
}

// Severities the Events API accepts.
var Severities = []string{"critical", "error", "warning", "info"}

// TriggerIncident sends a trigger event for a service through its mapped integration
// key, else its Backstage (PRO19CT) integration, else any Events API v2 integration;
// the key never leaves the server. It returns the dedup key used.
func (c *Cards) TriggerIncident(ctx context.Context, account, serviceID string, t Trigger) (string, error) {
	pd, err := c.accounts.Client(account)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Deadline)
	defer cancel()
	routingKey, err := c.routingKey(ctx, pd, serviceID)
	if err != nil {
		return "", err
	}
	if t.DedupKey == "" {
		t.DedupKey = newDedupKey()
	}
	details := map[string]any{"service_id": serviceID}
	if t.Description != "" {
		details["description"] = t.Description
	}
	if t.User != "" {
		details["user"] = t.User
	}
	res, err := pd.SendEvent(ctx, pagerduty.Event{
		RoutingKey: routingKey, EventAction: "trigger", DedupKey: t.DedupKey, Client: "Backstage",
		Payload: &pagerduty.EventPayload{
			Summary: t.Title, Source: cmp.Or(t.Source, "backstage"), Severity: cmp.Or(t.Severity, "error"),
			Class: "manual trigger", CustomDetails: details,
		},
	})
	if err != nil {
		return "", err
	}
	c.Invalidate(serviceID)
	return cmp.Or(res.DedupKey, t.DedupKey), nil
}

func (c *Cards) routingKey(ctx context.Context, pd *pagerduty.Client, serviceID string) (string, error) {
	if c.mappedKey != nil {
		k, err := c.mappedKey(ctx, pd.Account(), serviceID)
		if err != nil {
			return "", fmt.Errorf("look up the mapped integration key: %w", err)
		}
		if k != "" {
			return k, nil
		}
	}
	svc, err := pd.GetService(ctx, serviceID, "integrations")
	if err != nil {
		return "", err
	}
	var fallback string
	for _, in := range svc.Integrations {
		switch {
		case in.IntegrationKey == "":
		case in.Vendor != nil && in.Vendor.ID == pagerduty.VendorBackstage:
			return in.IntegrationKey, nil
		case in.Type == "events_api_v2_inbound_integration" && fallback == "":
			fallback = in.IntegrationKey
		}
	}
	if fallback == "" {
		return "", ErrNoIntegrationKey
	}
	return fallback, nil
}

func newDedupKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "backstage-" + hex.EncodeToString(b)
}

func raw(v any) json.RawMessage {
	r, _ := v.(json.RawMessage)
	return r
}

// serviceIDOf reads the id of a service object.
func serviceIDOf(s json.RawMessage) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(s, &v)
	return v.ID
}

// setField returns the JSON object obj with field set to value.
func setField(obj json.RawMessage, field, value string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return obj
	}
	b, _ := json.Marshal(value)
	m[field] = b
	out, err := json.Marshal(m)
	if err != nil {
		return obj
	}
	return out
}
