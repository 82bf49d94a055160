package pagerduty_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/secret"
)

// pagedServices serves GET /services with PagerDuty's offset pagination over names that
// contain the query, and records the queries it saw.
type pagedServices struct {
	mu      sync.Mutex
	names   []string
	queries []string
}

func (p *pagedServices) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queries = append(p.queries, r.URL.RawQuery)
	q := r.URL.Query()
	var match []map[string]any
	for i, n := range p.names {
		if strings.Contains(strings.ToLower(n), strings.ToLower(q.Get("query"))) {
			svc := map[string]any{"id": fmt.Sprintf("PSVC%03d", i), "name": n}
			if q.Get("include[]") == "integrations" {
				svc["integrations"] = []map[string]any{{"id": "PINT001", "integration_key": "k" + strconv.Itoa(i), "vendor": map[string]any{"id": pagerduty.VendorBackstage}}}
			}
			match = append(match, svc)
		}
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	limit = min(max(limit, 1), 3) // a small server page size forces several pages
	offset, _ := strconv.Atoi(q.Get("offset"))
	end := min(offset+limit, len(match))
	page := match[min(offset, len(match)):end]
	writeJSON(w, 200, map[string]any{"services": page, "limit": limit, "offset": offset, "more": end < len(match)})
}

func TestFindServiceByName(t *testing.T) {
	p := &pagedServices{names: []string{"checkout-api", "checkout", "checkout-web", "checkout-db", "Checkout-Legacy", "checkout-worker", "billing"}}
	f := newFixture(t, p)
	ctx := context.Background()

	svc, err := f.client.FindServiceByName(ctx, "checkout")
	require.NoError(t, err)
	require.NotNil(t, svc)
	assert.Equal(t, "PSVC001", svc.ID)
	require.Len(t, svc.Integrations, 1)
	assert.Equal(t, "k1", svc.Integrations[0].IntegrationKey)

	svc, err = f.client.FindServiceByName(ctx, "checkout-worker")
	require.NoError(t, err, "found on a later page")
	require.NotNil(t, svc)
	assert.Equal(t, "PSVC005", svc.ID)

	svc, err = f.client.FindServiceByName(ctx, "checkout-legacy")
	require.NoError(t, err)
	require.NotNil(t, svc, "a single case-insensitive match is accepted")
	assert.Equal(t, "Checkout-Legacy", svc.Name)

	svc, err = f.client.FindServiceByName(ctx, "check")
	require.NoError(t, err)
	assert.Nil(t, svc, "substring matches are not the service")

	p.mu.Lock()
	assert.Contains(t, p.queries[0], "query=checkout")
	assert.Contains(t, p.queries[0], "include%5B%5D=integrations")
	p.mu.Unlock()

	all, err := f.client.ListServices(ctx, "")
	require.NoError(t, err)
	assert.Len(t, all, len(p.names), "every page")
}

func TestListEscalationPoliciesEveryPage(t *testing.T) {
	var limits []string
	var mu sync.Mutex
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		limits = append(limits, r.URL.Query().Get("limit"))
		mu.Unlock()
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		var eps []map[string]any
		for i := offset; i < min(offset+100, 250); i++ {
			eps = append(eps, map[string]any{"id": fmt.Sprintf("PEP%04d", i), "name": fmt.Sprintf("ep-%d", i)})
		}
		writeJSON(w, 200, map[string]any{"escalation_policies": eps, "limit": 100, "offset": offset, "more": offset+100 < 250})
	}))
	eps, err := f.client.ListEscalationPolicies(context.Background(), "")
	require.NoError(t, err)
	assert.Len(t, eps, 250)
	assert.Equal(t, "PEP0249", eps[249].ID)
	assert.Equal(t, []string{"100", "100", "100"}, limits)
}

// groupingPD is a small Alert Grouping Settings endpoint with after-cursor pages of two.
type groupingPD struct {
	mu        sync.Mutex
	settings  []pagerduty.AlertGroupingSetting
	entitled  bool
	quirk404  bool // answer a list with no match by 404 without a JSON body
	deleted   []string
	lastQuery string
}

func (g *groupingPD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.entitled {
		writePDError(w, 402, 2014, "Missing Account Ability")
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/alert_grouping_settings":
		var in struct {
			Setting pagerduty.AlertGroupingSetting `json:"alert_grouping_setting"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Setting.Type == "" {
			writePDError(w, 400, 2001, "Invalid Input Provided")
			return
		}
		s := in.Setting
		s.ID = fmt.Sprintf("PAGS%03d", len(g.settings))
		s.CreatedAt = "2026-01-01T00:00:00Z"
		g.settings = append(g.settings, s)
		writeJSON(w, 201, map[string]any{"alert_grouping_setting": s})
	case r.Method == http.MethodGet && r.URL.Path == "/alert_grouping_settings":
		g.lastQuery = r.URL.RawQuery
		want := r.URL.Query()["service_ids[]"]
		var match []pagerduty.AlertGroupingSetting
		for _, s := range g.settings {
			for _, ref := range s.Services {
				if len(want) == 0 || contains(want, ref.ID) {
					match = append(match, s)
					break
				}
			}
		}
		if len(match) == 0 && g.quirk404 {
			w.WriteHeader(404)
			return
		}
		start := 0
		if a := r.URL.Query().Get("after"); a != "" {
			start, _ = strconv.Atoi(strings.TrimPrefix(a, "cursor-"))
		}
		end := min(start+2, len(match))
		var after any
		if end < len(match) {
			after = fmt.Sprintf("cursor-%d", end)
		}
		writeJSON(w, 200, map[string]any{"alert_grouping_settings": match[start:end], "after": after, "limit": 2})
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/alert_grouping_settings/"):
		g.deleted = append(g.deleted, strings.TrimPrefix(r.URL.Path, "/alert_grouping_settings/"))
		w.WriteHeader(204)
	default:
		writePDError(w, 404, 2100, "Not Found")
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestAlertGroupingSettings(t *testing.T) {
	g := &groupingPD{entitled: true}
	f := newFixture(t, g)
	ctx := context.Background()

	window := 300
	for i := range 5 {
		created, err := f.client.CreateAlertGroupingSetting(ctx, pagerduty.AlertGroupingSetting{
			Name:     fmt.Sprintf("grouping %d", i),
			Type:     "content_based",
			Config:   pagerduty.AlertGroupingSettingConfig{TimeWindow: &window, Aggregate: "all", Fields: []string{"source", "summary"}},
			Services: []pagerduty.ServiceRef{{ID: fmt.Sprintf("PSVC%03d", i)}},
		})
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("PAGS%03d", i), created.ID)
		require.NotNil(t, created.Config.TimeWindow)
		assert.Equal(t, 300, *created.Config.TimeWindow)
	}

	all, err := f.client.ListAlertGroupingSettings(ctx, nil)
	require.NoError(t, err)
	assert.Len(t, all, 5, "three pages followed through the after cursor")

	some, err := f.client.ListAlertGroupingSettings(ctx, []string{"PSVC001", "PSVC003"})
	require.NoError(t, err)
	require.Len(t, some, 2)
	assert.Contains(t, g.lastQuery, "service_ids%5B%5D=PSVC001&service_ids%5B%5D=PSVC003")

	none, err := f.client.ListAlertGroupingSettings(ctx, []string{"PNOPE00"})
	require.NoError(t, err)
	assert.Empty(t, none)

	g.mu.Lock()
	g.quirk404 = true
	g.mu.Unlock()
	none, err = f.client.ListAlertGroupingSettings(ctx, []string{"PNOPE00"})
	require.NoError(t, err, "404 without a JSON error object means no settings")
	assert.Empty(t, none)

	require.NoError(t, f.client.DeleteAlertGroupingSetting(ctx, "PAGS004"))
	assert.Equal(t, []string{"PAGS004"}, g.deleted)

	_, err = f.client.CreateAlertGroupingSetting(ctx, pagerduty.AlertGroupingSetting{})
	assert.Equal(t, pagerduty.ClassPermanent, pagerduty.ClassOf(err))

	g.mu.Lock()
	g.entitled = false
	g.mu.Unlock()
	_, err = f.client.CreateAlertGroupingSetting(ctx, pagerduty.AlertGroupingSetting{Type: "time"})
	assert.True(t, pagerduty.IsEntitlement(err))
	assert.Equal(t, "pagerduty create alert grouping setting (account acme): 402 Missing Account Ability (code 2014)", err.Error())
	_, err = f.client.ListAlertGroupingSettings(ctx, nil)
	assert.True(t, pagerduty.IsEntitlement(err))

	assert.Equal(t, 5.0, metricValue(t, f.reg, "pdworker_pagerduty_requests_total", map[string]string{"route": "POST /alert_grouping_settings", "status": "201"}))
	assert.Equal(t, 1.0, metricValue(t, f.reg, "pdworker_pagerduty_requests_total", map[string]string{"route": "DELETE /alert_grouping_settings/{id}", "status": "204"}))
}

func TestListAlertGroupingSettingsNotFoundWithJSON(t *testing.T) {
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writePDError(w, 404, 2100, "Not Found")
	}))
	_, err := f.client.ListAlertGroupingSettings(context.Background(), []string{"PSVC001"})
	assert.True(t, pagerduty.IsNotFound(err), "a real JSON 404 is still an error")
}

func TestRoutesAndPaths(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/integrations"):
			writeJSON(w, 201, map[string]any{"integration": map[string]any{"id": "PINT001", "integration_key": "0123456789abcdef0123456789abcdef"}})
		case r.Method == http.MethodDelete:
			w.WriteHeader(204)
		default:
			writePDError(w, 404, 2100, "Not Found")
		}
	}))
	ctx := context.Background()
	in, err := f.client.CreateIntegration(ctx, "PSVC001", pagerduty.Integration{
		Name: "Backstage", Vendor: &pagerduty.APIObject{ID: pagerduty.VendorBackstage, Type: "vendor_reference"},
	})
	require.NoError(t, err)
	assert.Len(t, in.IntegrationKey, 32)
	require.NoError(t, f.client.DeleteService(ctx, "PSVC001"))
	_, err = f.client.GetEscalationPolicy(ctx, "PEP0001")
	assert.True(t, pagerduty.IsNotFound(err))
	assert.Equal(t, "pagerduty get escalation policy PEP0001 (account acme): 404 Not Found (code 2100)", err.Error())

	_, err = f.client.GetService(ctx, "../abilities")
	assert.Equal(t, pagerduty.ClassPermanent, pagerduty.ClassOf(err), "ids that would change the path are refused")

	mu.Lock()
	assert.Equal(t, []string{
		"POST /services/PSVC001/integrations Token token=" + testToken,
		"DELETE /services/PSVC001 Token token=" + testToken,
		"GET /escalation_policies/PEP0001 Token token=" + testToken,
	}, seen)
	mu.Unlock()
	for route, status := range map[string]string{
		"POST /services/{id}/integrations": "201",
		"DELETE /services/{id}":            "204",
		"GET /escalation_policies/{id}":    "404",
	} {
		assert.Equal(t, 1.0, metricValue(t, f.reg, "pdworker_pagerduty_requests_total", map[string]string{"account": "acme", "route": route, "status": status}), route)
		assert.Equal(t, 1.0, metricValue(t, f.reg, "pdworker_pagerduty_request_duration_seconds", map[string]string{"account": "acme", "route": route}), route)
	}
}

// The Events API's own error body (not PagerDuty's REST error object) reaches the
// caller, with the routing key masked, whatever the key.
func TestSendEventInvalidEvent(t *testing.T) {
	const key = "R0UT1NGKEY0123456789abcdef012345"
	events := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e pagerduty.Event
		_ = json.NewDecoder(r.Body).Decode(&e)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status": "invalid event", "message": "Event object is invalid",
			"errors": []string{"routing_key '" + e.RoutingKey + "' is not valid"},
		})
	}))
	accts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{{ID: "acme", APIURL: events, EventsURL: events, Token: secret.Value(testToken)}},
		testOptions(nil), zerolog.Nop())
	require.NoError(t, err)
	for _, tc := range []struct{ name, key, detail string }{
		{"key masked", key, "routing_key '[redacted]' is not valid"},
		{"no key", "", "routing_key '' is not valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := accts.Default().SendEvent(context.Background(), pagerduty.Event{RoutingKey: tc.key, EventAction: "trigger"})
			var ae *pagerduty.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, pagerduty.ClassPermanent, ae.Class)
			assert.Equal(t, "Event object is invalid", ae.Message)
			assert.Equal(t, []string{tc.detail}, ae.Errors)
			assert.NotContains(t, err.Error(), key)
		})
	}
}
