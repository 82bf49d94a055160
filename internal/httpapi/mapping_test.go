package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/httpapi"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/secret"
)

// TestMappingRoutesRefuseBadIDsWith400: a service id that the PagerDuty client refuses
// to put in a request path is the caller's mistake, so the mapping and dependency
// routes answer 400 in the plugin's {"errors":[…]} shape, not 502, and PagerDuty is
// not called.
func TestMappingRoutesRefuseBadIDsWith400(t *testing.T) {
	_, _, js := natstest.Start(t)
	store, err := mapping.NewStore(context.Background(), js)
	require.NoError(t, err)
	var pdCalls atomic.Int32
	pd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		pdCalls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(pd.Close)
	accounts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{
		{ID: "default", Default: true, APIURL: pd.URL, EventsURL: pd.URL, Token: secret.Value("pd-token")},
	}, pagerduty.Options{}, zerolog.Nop())
	require.NoError(t, err)
	srv := httptest.NewServer(httpapi.New(httpapi.Config{MaxBodyBytes: 64 << 10}, httpapi.Deps{
		Auth:     httpapi.NewAuthenticator(httpapi.AuthConfig{Tokens: []secret.Value{staticToken}}, zerolog.Nop()),
		Gatherer: prometheus.NewRegistry(),
		Mapping:  httpapi.MappingDeps{Store: store, Accounts: accounts},
	}, zerolog.Nop()))
	t.Cleanup(srv.Close)

	tests := []struct {
		name, method, path, body string
	}{
		{"list dependencies", http.MethodGet, "/api/pagerduty/dependencies/service/a%20b", ""},
		{"map to an entity", http.MethodPost, "/api/pagerduty/mapping/entity", `{"serviceId":"a b","entityRef":"component:default/a"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+staticToken)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", body)
			var got struct {
				Errors []string `json:"errors"`
			}
			require.NoError(t, json.Unmarshal(body, &got), "%s", body)
			require.Len(t, got.Errors, 1)
			assert.Contains(t, got.Errors[0], `invalid id "a b"`)
		})
	}
	assert.Zero(t, pdCalls.Load(), "nothing reached PagerDuty")
}
