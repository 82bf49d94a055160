package pdsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"testing"

	pagerduty "github.com/PagerDuty/go-pagerduty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

var objectID = regexp.MustCompile(`^P[A-Z0-9]{6}$`)

func TestServiceLifecycleWithGoPagerDuty(t *testing.T) {
	sim, srv := newSim(t, pdsim.Options{})
	c := pdClient(srv, acme)
	ctx := t.Context()
	timeout := uint(0)

	// The body the Backstage scaffolder sends, through go-pagerduty: no "type", and
	// "teams": null inside escalation_policy.
	created, err := c.CreateServiceWithContext(ctx, pagerduty.Service{
		Name:          "checkout",
		Description:   "Checkout API",
		AlertCreation: "create_alerts_and_incidents",
		EscalationPolicy: pagerduty.EscalationPolicy{
			APIObject: pagerduty.APIObject{ID: "PACME01", Type: "escalation_policy_reference"},
		},
		AlertGroupingParameters:          &pagerduty.AlertGroupingParameters{Type: "time", Config: &pagerduty.AlertGroupParamsConfig{Timeout: &timeout}},
		AutoPauseNotificationsParameters: &pagerduty.AutoPauseNotificationsParameters{Enabled: true, Timeout: 300},
	})
	require.NoError(t, err)
	assert.Regexp(t, objectID, created.ID)
	assert.Equal(t, "service", created.Type)
	assert.Equal(t, "https://acme.pagerduty.com/service-directory/"+created.ID, created.HTMLURL)
	assert.Equal(t, srv.URL+"/services/"+created.ID, created.Self)
	assert.NotEmpty(t, created.CreateAt)
	assert.Equal(t, "PACME01", created.EscalationPolicy.ID)
	assert.Equal(t, "Platform On-Call", created.EscalationPolicy.Summary)
	require.NotNil(t, created.AlertGroupingParameters)
	assert.Equal(t, "time", created.AlertGroupingParameters.Type)
	assert.Equal(t, uint(0), *created.AlertGroupingParameters.Config.Timeout)
	assert.Equal(t, uint(300), created.AutoPauseNotificationsParameters.Timeout)

	got, err := c.GetServiceWithContext(ctx, created.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, "Checkout API", got.Description)

	got.Description = "Checkout API v2"
	got.EscalationPolicy.ID = "PACME02"
	updated, err := c.UpdateServiceWithContext(ctx, *got)
	require.NoError(t, err)
	assert.Equal(t, "Checkout API v2", updated.Description)
	assert.Equal(t, "PACME02", updated.EscalationPolicy.ID)
	assert.Equal(t, "time", updated.AlertGroupingParameters.Type, "echoed parameters stay valid")

	state := sim.Services("acme")
	require.Len(t, state, 1)
	assert.Equal(t, "PACME02", state[0].EscalationPolicyID)

	require.NoError(t, c.DeleteServiceWithContext(ctx, created.ID))
	_, err = c.GetServiceWithContext(ctx, created.ID, nil)
	e := apiError(t, err)
	assert.True(t, e.NotFound())
	assert.Equal(t, 2100, e.APIError.ErrorObject.Code)
	assert.Empty(t, sim.Services("acme"))

	err = c.DeleteServiceWithContext(ctx, created.ID)
	assert.True(t, apiError(t, err).NotFound())
}

func TestCreateServiceValidation(t *testing.T) {
	_, srv := newSim(t, pdsim.Options{})
	c := pdClient(srv, acme)
	createService(t, c, "Payments")
	ep := func(id string) pagerduty.EscalationPolicy {
		return pagerduty.EscalationPolicy{APIObject: pagerduty.APIObject{ID: id, Type: "escalation_policy_reference"}}
	}

	tests := []struct {
		name    string
		svc     pagerduty.Service
		wantErr string
	}{
		{
			name:    "duplicate name, other case",
			svc:     pagerduty.Service{Name: "payments", EscalationPolicy: ep("PACME01")},
			wantErr: "HTTP response failed with status code 400, message: Invalid Input Provided (code: 2001): Name has already been taken",
		},
		{
			name:    "unknown escalation policy",
			svc:     pagerduty.Service{Name: "search", EscalationPolicy: ep("PNOSUCH")},
			wantErr: "HTTP response failed with status code 400, message: Invalid Input Provided (code: 2001): Escalation Policy not found",
		},
		{
			name:    "missing escalation policy",
			svc:     pagerduty.Service{Name: "search"},
			wantErr: "HTTP response failed with status code 400, message: Invalid Input Provided (code: 2001): Escalation Policy not found",
		},
		{
			name:    "escalation policy of another account",
			svc:     pagerduty.Service{Name: "search", EscalationPolicy: ep("PGLBX01")},
			wantErr: "HTTP response failed with status code 400, message: Invalid Input Provided (code: 2001): Escalation Policy not found",
		},
		{
			name:    "missing name and policy",
			svc:     pagerduty.Service{},
			wantErr: "HTTP response failed with status code 400, message: Invalid Input Provided (code: 2001): Escalation Policy not found (and 1 more error...)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateServiceWithContext(t.Context(), tt.svc)
			require.Error(t, err)
			assert.Equal(t, tt.wantErr, err.Error())
			assert.Equal(t, http.StatusBadRequest, apiError(t, err).StatusCode)
		})
	}

	t.Run("rename onto a taken name", func(t *testing.T) {
		other := createService(t, c, "Search")
		other.Name = "PAYMENTS"
		_, err := c.UpdateServiceWithContext(t.Context(), *other)
		assert.Contains(t, err.Error(), "Name has already been taken")
	})

	t.Run("bad body", func(t *testing.T) {
		resp, body := call(t, srv, http.MethodPost, "/services", acme, `{"name":"unwrapped"}`)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Equal(t, 2001, decodeError(t, body).Error.Code)
		assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
	})

	t.Run("unknown service on update", func(t *testing.T) {
		resp, body := call(t, srv, http.MethodPut, "/services/PNOSUCH", acme, `{"service":{"name":"x"}}`)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		assert.JSONEq(t, `{"error":{"message":"Not Found","code":2100}}`, string(body))
	})
}

func TestListServices(t *testing.T) {
	_, srv := newSim(t, pdsim.Options{})
	c := pdClient(srv, acme)
	for i := 30; i >= 1; i-- {
		createService(t, c, fmt.Sprintf("svc-%02d", i))
	}
	billing := createService(t, c, "Billing Gateway")
	in, err := c.CreateIntegrationWithContext(t.Context(), billing.ID, pagerduty.Integration{
		Name: "Backstage", Vendor: &pagerduty.APIObject{ID: pdsim.VendorBackstage, Type: "vendor_reference"},
	})
	require.NoError(t, err)

	t.Run("every page through go-pagerduty, sorted by name", func(t *testing.T) {
		all, err := c.ListServicesPaginated(t.Context(), pagerduty.ListServiceOptions{Limit: 7})
		require.NoError(t, err)
		require.Len(t, all, 31)
		assert.Equal(t, "Billing Gateway", all[0].Name)
		assert.Equal(t, "svc-01", all[1].Name)
		assert.Equal(t, "svc-30", all[30].Name)
	})

	type listBody struct {
		Services []pagerduty.Service `json:"services"`
		Limit    int                 `json:"limit"`
		Offset   int                 `json:"offset"`
		Total    *int                `json:"total"`
		More     bool                `json:"more"`
	}
	list := func(t *testing.T, query string) (int, listBody, []byte) {
		resp, body := call(t, srv, http.MethodGet, "/services?"+query, acme, "")
		var lb listBody
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.Unmarshal(body, &lb))
		}
		return resp.StatusCode, lb, body
	}

	tests := []struct {
		name      string
		query     string
		wantNames []string
		wantCount int
		wantMore  bool
		wantTotal *int
		wantLimit int
	}{
		{name: "defaults", query: "", wantCount: 25, wantMore: true, wantLimit: 25},
		{name: "last page with total", query: "limit=10&offset=25&total=true", wantCount: 6, wantTotal: ptr(31), wantLimit: 10},
		{name: "limit capped at 100", query: "limit=500", wantCount: 31, wantLimit: 100},
		{name: "query is a case-insensitive substring", query: "query=GATE", wantNames: []string{"Billing Gateway"}, wantCount: 1, wantLimit: 25},
		{name: "query matches an integration key", query: "query=" + in.IntegrationKey, wantNames: []string{"Billing Gateway"}, wantCount: 1, wantLimit: 25},
		{name: "name is exact", query: "name=svc-1", wantCount: 0, wantLimit: 25},
		{name: "name match", query: "name=svc-10", wantNames: []string{"svc-10"}, wantCount: 1, wantLimit: 25},
		{name: "descending", query: "sort_by=name:desc&limit=2", wantNames: []string{"svc-30", "svc-29"}, wantCount: 2, wantMore: true, wantLimit: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, lb, body := list(t, tt.query)
			require.Equal(t, http.StatusOK, status, string(body))
			assert.Len(t, lb.Services, tt.wantCount)
			assert.Equal(t, tt.wantMore, lb.More)
			assert.Equal(t, tt.wantTotal, lb.Total)
			assert.Equal(t, tt.wantLimit, lb.Limit)
			for i, n := range tt.wantNames {
				assert.Equal(t, n, lb.Services[i].Name)
			}
		})
	}

	t.Run("offset plus limit beyond 10000", func(t *testing.T) {
		status, _, body := list(t, "offset=9950&limit=100")
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, 2001, decodeError(t, body).Error.Code)
	})

	t.Run("include integrations", func(t *testing.T) {
		_, lb, _ := list(t, "query=Billing&include%5B%5D=integrations")
		require.Len(t, lb.Services[0].Integrations, 1)
		got := lb.Services[0].Integrations[0]
		assert.Equal(t, in.IntegrationKey, got.IntegrationKey)
		assert.Equal(t, pdsim.VendorBackstage, got.Vendor.ID)

		_, lb, _ = list(t, "query=Billing")
		assert.Empty(t, lb.Services[0].Integrations[0].IntegrationKey, "references carry no key")
		assert.Equal(t, "app_event_transform_inbound_integration_reference", lb.Services[0].Integrations[0].Type)

		svc, err := c.GetServiceWithContext(t.Context(), billing.ID, &pagerduty.GetServiceOptions{Includes: []string{"integrations"}})
		require.NoError(t, err)
		assert.Equal(t, in.IntegrationKey, svc.Integrations[0].IntegrationKey)
	})

	t.Run("accounts are separate", func(t *testing.T) {
		all, err := pdClient(srv, globex).ListServicesPaginated(t.Context(), pagerduty.ListServiceOptions{})
		require.NoError(t, err)
		assert.Empty(t, all)
	})
}

func TestEscalationPolicies(t *testing.T) {
	sim := pdsim.New(pdsim.Options{})
	require.NoError(t, sim.Load(pdsim.LargeSeed(500)))
	require.NoError(t, sim.Load(pdsim.DemoSeed()))
	srv := newServer(t, sim)

	t.Run("500 policies over pages of 100, sorted by name", func(t *testing.T) {
		var names []string
		for offset := 0; ; offset += 100 {
			resp, body := call(t, srv, http.MethodGet, fmt.Sprintf("/escalation_policies?limit=100&offset=%d", offset), pdsim.LargeSeedToken, "")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var page pagerduty.ListEscalationPoliciesResponse
			require.NoError(t, json.Unmarshal(body, &page))
			for _, ep := range page.EscalationPolicies {
				names = append(names, ep.Name)
			}
			if !page.More {
				break
			}
		}
		require.Len(t, names, 500)
		assert.IsIncreasing(t, names)
		assert.Equal(t, "Escalation Policy 00001", names[0])
	})

	c := pdClient(srv, acme)
	t.Run("query through go-pagerduty", func(t *testing.T) {
		resp, err := c.ListEscalationPoliciesWithContext(t.Context(), pagerduty.ListEscalationPoliciesOptions{Query: "pay"})
		require.NoError(t, err)
		require.Len(t, resp.EscalationPolicies, 1)
		assert.Equal(t, "PACME02", resp.EscalationPolicies[0].ID)
		assert.Equal(t, "https://acme.pagerduty.com/escalation_policies/PACME02", resp.EscalationPolicies[0].HTMLURL)
	})

	t.Run("get lists the services using it", func(t *testing.T) {
		svc := createService(t, c, "uses-platform")
		ep, err := c.GetEscalationPolicyWithContext(t.Context(), "PACME01", nil)
		require.NoError(t, err)
		assert.Equal(t, "Platform On-Call", ep.Name)
		require.Len(t, ep.Services, 1)
		assert.Equal(t, svc.ID, ep.Services[0].ID)

		_, err = c.GetEscalationPolicyWithContext(t.Context(), "PGLBX01", nil)
		assert.True(t, apiError(t, err).NotFound(), "another account's policy is not found")
	})
}

func TestAbilities(t *testing.T) {
	_, srv := newSim(t, pdsim.Options{})
	resp, err := pdClient(srv, acme).ListAbilitiesWithContext(t.Context())
	require.NoError(t, err)
	assert.Contains(t, resp.Abilities, pdsim.AbilityIntelligentGrouping)
	assert.Contains(t, resp.Abilities, pdsim.AbilityTimeBasedGrouping)

	resp, err = pdClient(srv, globex).ListAbilitiesWithContext(t.Context())
	require.NoError(t, err)
	assert.NotContains(t, resp.Abilities, pdsim.AbilityIntelligentGrouping)

	tests := []struct {
		token, ability string
		wantStatus     int
	}{
		{acme, pdsim.AbilityTimeBasedGrouping, http.StatusNoContent},
		{globex, pdsim.AbilityTimeBasedGrouping, http.StatusPaymentRequired},
		{globex, "teams", http.StatusNoContent},
		{acme, "no_such_ability", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.ability, func(t *testing.T) {
			err := pdClient(srv, tt.token).TestAbilityWithContext(t.Context(), tt.ability)
			if tt.wantStatus == http.StatusNoContent {
				require.NoError(t, err)
				return
			}
			assert.Equal(t, tt.wantStatus, apiError(t, err).StatusCode)
		})
	}
}

func ptr[T any](v T) *T { return &v }
