package app

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
)

// TestTriggerUsesTheMappedIntegrationKey runs the server-side incident trigger through
// the whole service (HTTP, embedded NATS, the mapping store, the simulator): a service
// with a Backstage integration and an Events API integration triggers through the
// Backstage one until a mapping names the other's key; READ_ONLY refuses the trigger.
func TestTriggerUsesTheMappedIntegrationKey(t *testing.T) {
	seed := pdsim.Seed{Accounts: []pdsim.AccountSeed{{
		ID: "acme", Tokens: []string{"pd-token-acme"},
		EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PEPCHK1", Name: "Checkout EP"}},
		Services:           []pdsim.ServiceSeed{{ID: "PCHK001", Name: "Checkout", EscalationPolicyID: "PEPCHK1"}},
	}}}
	sim, simURL := simulator(t, pdsim.Options{RateLimit: 1 << 20}, seed)
	a := startApp(t, testConfig(t, simURL, seed, ""), fastOptions(), zerolog.Nop())

	r := call(t, a, http.MethodPost, "/api/pagerduty/services/PCHK001/integration/PRO19CT", testToken, nil, "")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	var backstageKey string
	require.NoError(t, json.Unmarshal(r.body, &backstageKey))
	// A second Events API integration, made at PagerDuty directly (as in its UI).
	accounts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{{ID: "acme", Default: true, APIURL: simURL, Token: secret.Value("pd-token-acme")}}, pagerduty.Options{}, zerolog.Nop())
	require.NoError(t, err)
	alertmanager, err := accounts.Default().CreateIntegration(context.Background(), "PCHK001", pagerduty.Integration{APIObject: pagerduty.APIObject{Type: "events_api_v2_inbound_integration"}, Name: "Alertmanager"})
	require.NoError(t, err)
	alertmanagerKey := alertmanager.IntegrationKey
	require.Len(t, alertmanagerKey, 32)
	require.NotEqual(t, backstageKey, alertmanagerKey)

	// trigger opens an incident with dedup key dedup and returns the simulator's copy.
	trigger := func(t *testing.T, a *App, dedup string) (response, *pdsim.IncidentState) {
		t.Helper()
		r := call(t, a, http.MethodPost, "/api/pagerduty/services/PCHK001/incidents", testToken, nil,
			`{"title":"Checkout is down","severity":"critical","dedupKey":"`+dedup+`"}`)
		for _, in := range sim.Incidents("acme") {
			if in.IncidentKey == dedup {
				return r, &in
			}
		}
		return r, nil
	}

	t.Run("no mapping: the Backstage integration", func(t *testing.T) {
		r, in := trigger(t, a, "unmapped")
		require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
		require.NotNil(t, in)
		assert.Equal(t, backstageKey, in.RoutingKey)
		assert.Equal(t, "PCHK001", in.ServiceID)
		assert.Equal(t, "api-token", in.Details["user"])
	})

	t.Run("mapped: the mapping's integration key", func(t *testing.T) {
		m := call(t, a, http.MethodPost, "/api/pagerduty/mapping/entity", testToken, nil,
			`{"entityRef":"component:default/checkout","serviceId":"PCHK001","integrationKey":"`+alertmanagerKey+`"}`)
		require.Equal(t, http.StatusOK, m.status, "%s", m.body)
		r, in := trigger(t, a, "mapped")
		require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
		require.NotNil(t, in)
		assert.Equal(t, alertmanagerKey, in.RoutingKey)
		assert.Equal(t, "PCHK001", in.ServiceID)
	})

	t.Run("READ_ONLY", func(t *testing.T) {
		cfg := testConfig(t, simURL, seed, "")
		cfg.ReadOnly = true
		ro := startApp(t, cfg, fastOptions(), zerolog.Nop())
		before := sim.Count(http.MethodPost, "/v2/enqueue")
		r, in := trigger(t, ro, "read-only")
		assert.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
		assert.Contains(t, r.errorMessage(t), "READ_ONLY")
		assert.Nil(t, in)
		assert.Equal(t, before, sim.Count(http.MethodPost, "/v2/enqueue"))
	})
}
