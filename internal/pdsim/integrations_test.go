package pdsim_test

import (
	"net/http"
	"testing"

	pagerduty "github.com/PagerDuty/go-pagerduty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

func TestIntegrations(t *testing.T) {
	sim, srv := newSim(t, pdsim.Options{})
	c := pdClient(srv, acme)
	svc := createService(t, c, "checkout")

	created, err := c.CreateIntegrationWithContext(t.Context(), svc.ID, pagerduty.Integration{
		Name: "Backstage", Vendor: &pagerduty.APIObject{ID: pdsim.VendorBackstage, Type: "vendor_reference"},
	})
	require.NoError(t, err)
	assert.Regexp(t, objectID, created.ID)
	assert.Equal(t, "app_event_transform_inbound_integration", created.Type)
	assert.Equal(t, "Backstage", created.Summary)
	assert.Len(t, created.IntegrationKey, 32)
	assert.Equal(t, svc.ID, created.Service.ID)
	assert.Equal(t, "Backstage", created.Vendor.Summary)
	assert.Equal(t, srv.URL+"/services/"+svc.ID+"/integrations/"+created.ID, created.Self)

	got, err := c.GetIntegrationWithContext(t.Context(), svc.ID, created.ID, pagerduty.GetIntegrationOptions{})
	require.NoError(t, err)
	assert.Equal(t, created.IntegrationKey, got.IntegrationKey)

	state := sim.Services("acme")[0].Integrations
	require.Len(t, state, 1)
	assert.Equal(t, pdsim.VendorBackstage, state[0].VendorID)
	assert.Equal(t, created.IntegrationKey, state[0].IntegrationKey)

	tests := []struct {
		name       string
		path, body string
		wantStatus int
	}{
		{"events v2 by type", "/services/" + svc.ID + "/integrations", `{"integration":{"type":"events_api_v2_inbound_integration","name":"alerts"}}`, http.StatusCreated},
		{"no type and no vendor", "/services/" + svc.ID + "/integrations", `{"integration":{"name":"x"}}`, http.StatusBadRequest},
		{"unknown vendor", "/services/" + svc.ID + "/integrations", `{"integration":{"vendor":{"id":"PNOSUCH"}}}`, http.StatusBadRequest},
		{"unknown service", "/services/PNOSUCH/integrations", `{"integration":{"vendor":{"id":"PRO19CT"}}}`, http.StatusNotFound},
		{"get unknown integration", "/services/" + svc.ID + "/integrations/PNOSUCH", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := http.MethodPost
			if tt.body == "" {
				method = http.MethodGet
			}
			resp, b := call(t, srv, method, tt.path, acme, tt.body)
			assert.Equal(t, tt.wantStatus, resp.StatusCode, string(b))
		})
	}
}
