package pagerduty_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
)

// newSimAccounts starts the team's PagerDuty simulator with its demo seed and returns
// accounts for acme (token), globex (token, no AIOps) and acme over scoped OAuth.
func newSimAccounts(t *testing.T) (*pdsim.Sim, *pagerduty.Accounts) {
	t.Helper()
	sim := pdsim.New(pdsim.Options{Seed: 1, Log: zerolog.Nop()})
	require.NoError(t, sim.Load(pdsim.DemoSeed()))
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	accts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{
		{ID: "acme", Default: true, APIURL: srv.URL, Token: secret.Value(pdsim.DemoAcmeToken)},
		{ID: "globex", APIURL: srv.URL, Token: secret.Value(pdsim.DemoGlobexToken)},
		{ID: "acme-oauth", APIURL: srv.URL, OAuth: &pagerduty.OAuthConfig{
			ClientID: pdsim.DemoAcmeOAuthClientID, ClientSecret: secret.Value(pdsim.DemoAcmeOAuthSecret),
			Subdomain: "acme", Region: "us", TokenURL: srv.URL + "/oauth/token",
		}},
	}, testOptions(prometheus.NewRegistry()), zerolog.Nop())
	require.NoError(t, err)
	return sim, accts
}

func TestSimulatorServiceLifecycle(t *testing.T) {
	sim, accts := newSimAccounts(t)
	ctx := context.Background()
	acme := accts.Default()

	abilities, err := acme.ListAbilities(ctx)
	require.NoError(t, err)
	assert.Contains(t, abilities, pdsim.AbilityIntelligentGrouping)

	eps, err := acme.ListEscalationPolicies(ctx, "")
	require.NoError(t, err)
	require.NotEmpty(t, eps)
	ep, err := acme.GetEscalationPolicy(ctx, eps[0].ID)
	require.NoError(t, err)
	assert.Equal(t, eps[0].Name, ep.Name)

	svc, err := acme.CreateService(ctx, pagerduty.Service{
		Name:             "checkout",
		Description:      "Checkout API",
		AlertCreation:    "create_alerts_and_incidents",
		EscalationPolicy: pagerduty.EscalationPolicy{APIObject: pagerduty.APIObject{ID: ep.ID, Type: "escalation_policy_reference"}},
	})
	require.NoError(t, err)
	require.NotEmpty(t, svc.ID)

	in, err := acme.CreateIntegration(ctx, svc.ID, pagerduty.Integration{
		Name:   "Backstage",
		Vendor: &pagerduty.APIObject{ID: pagerduty.VendorBackstage, Type: "vendor_reference"},
	})
	require.NoError(t, err)
	assert.Len(t, in.IntegrationKey, 32)

	window := 300
	setting, err := acme.CreateAlertGroupingSetting(ctx, pagerduty.AlertGroupingSetting{
		Name:     "checkout grouping",
		Type:     "content_based",
		Config:   pagerduty.AlertGroupingSettingConfig{TimeWindow: &window, Aggregate: "all", Fields: []string{"source", "summary"}},
		Services: []pagerduty.ServiceRef{{ID: svc.ID}},
	})
	require.NoError(t, err)
	require.NotEmpty(t, setting.ID)
	listed, err := acme.ListAlertGroupingSettings(ctx, []string{svc.ID})
	require.NoError(t, err)
	require.Len(t, listed, 1)
	assert.Equal(t, setting.ID, listed[0].ID)

	_, err = acme.CreateService(ctx, pagerduty.Service{
		Name:             "checkout",
		EscalationPolicy: pagerduty.EscalationPolicy{APIObject: pagerduty.APIObject{ID: ep.ID, Type: "escalation_policy_reference"}},
	})
	require.Error(t, err)
	assert.True(t, pagerduty.IsNameTaken(err), "duplicate name: %v", err)

	found, err := acme.FindServiceByName(ctx, "checkout")
	require.NoError(t, err)
	require.NotNil(t, found)
	assert.Equal(t, svc.ID, found.ID)
	require.NotEmpty(t, found.Integrations)
	assert.Equal(t, in.IntegrationKey, found.Integrations[0].IntegrationKey)

	state := sim.Services("acme")
	require.Len(t, state, 1)
	assert.Equal(t, setting.ID, state[0].AlertGroupingSettingID)
	assert.Len(t, state[0].Integrations, 1)

	require.NoError(t, acme.DeleteAlertGroupingSetting(ctx, setting.ID))
	require.NoError(t, acme.DeleteService(ctx, svc.ID))
	_, err = acme.GetService(ctx, svc.ID)
	assert.True(t, pagerduty.IsNotFound(err), "%v", err)
}

func TestSimulatorEntitlementAndOAuth(t *testing.T) {
	sim, accts := newSimAccounts(t)
	ctx := context.Background()

	globex, err := accts.Client("globex")
	require.NoError(t, err)
	assert.Equal(t, pagerduty.DefaultEventsURL, globex.EventsURL(), "an explicit API URL keeps the US events default")
	_, err = globex.CreateAlertGroupingSetting(ctx, pagerduty.AlertGroupingSetting{Type: "intelligent", Services: []pagerduty.ServiceRef{{ID: "PNONE01"}}})
	assert.True(t, pagerduty.IsEntitlement(err), "%v", err)

	oauth, err := accts.Client("acme-oauth")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := oauth.ListAbilities(ctx)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Equal(t, 1, sim.TokensIssued(pdsim.DemoAcmeOAuthClientID))
}

func TestSimulatorFaults(t *testing.T) {
	sim, accts := newSimAccounts(t)
	ctx := context.Background()
	acme := accts.Default()

	sim.InjectFault(pdsim.Fault{Method: http.MethodGet, PathPrefix: "/abilities", Kind: pdsim.Fault429Bare, Count: 1})
	sim.InjectFault(pdsim.Fault{Method: http.MethodGet, PathPrefix: "/abilities", Kind: pdsim.Fault5xx, Status: 503, Count: 1})
	_, err := acme.ListAbilities(ctx)
	require.NoError(t, err, "a bare 429 and a 503 are retried in-process")
	assert.Equal(t, 3, sim.Count(http.MethodGet, "/abilities"))

	sim.ClearFaults()
	sim.InjectFault(pdsim.Fault{Method: http.MethodGet, PathPrefix: "/abilities", Kind: pdsim.Fault429, ResetSeconds: 30})
	_, err = acme.ListAbilities(ctx)
	require.Error(t, err)
	var ae *pagerduty.APIError
	require.ErrorAs(t, err, &ae)
	assert.True(t, ae.Temporary())
	assert.Equal(t, 30*time.Second, ae.RetryAfter())

	sim.ClearFaults()
	sim.InjectFault(pdsim.Fault{Method: http.MethodGet, PathPrefix: "/abilities", Kind: pdsim.FaultDrop, Count: 1})
	_, err = acme.ListAbilities(ctx)
	require.NoError(t, err, "a dropped connection is retried")
}
