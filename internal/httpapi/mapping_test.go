package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMappingRoutesRefuseBadIDsWith400: a service id that the PagerDuty client refuses
// to put in a request path is the caller's mistake, so the mapping and dependency
// routes answer 400 in the plugin's {"errors":[…]} shape, not 502, and PagerDuty is
// not called.
func TestMappingRoutesRefuseBadIDsWith400(t *testing.T) {
	e := newEnv(t, envOptions{mapping: true})

	tests := []struct {
		name, method, path, body string
	}{
		{"list dependencies", http.MethodGet, "/api/pagerduty/dependencies/service/a%20b", ""},
		{"map to an entity", http.MethodPost, "/api/pagerduty/mapping/entity", `{"serviceId":"a b","entityRef":"component:default/a"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.do(t, tt.method, tt.path, staticToken, tt.body)
			assert.Equal(t, http.StatusBadRequest, got.status, "%s", got.body)
			var body struct {
				Errors []string `json:"errors"`
			}
			require.NoError(t, json.Unmarshal(got.body, &body), "%s", got.body)
			require.Len(t, body.Errors, 1)
			assert.Contains(t, body.Errors[0], `invalid id "a b"`)
		})
	}
	assert.Empty(t, e.sim.Requests(), "nothing reached PagerDuty")
}
