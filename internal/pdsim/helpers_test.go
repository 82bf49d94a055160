package pdsim_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	pagerduty "github.com/PagerDuty/go-pagerduty"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

const (
	acme   = pdsim.DemoAcmeToken
	globex = pdsim.DemoGlobexToken
)

// newSim starts a simulator with the demo seed behind a real HTTP server.
func newSim(t *testing.T, opts pdsim.Options) (*pdsim.Sim, *httptest.Server) {
	t.Helper()
	return newSimAt(t, opts, nil)
}

// newSimAt is newSim with a settable clock (nil: real time).
func newSimAt(t *testing.T, opts pdsim.Options, clk *clockwork.FakeClock) (*pdsim.Sim, *httptest.Server) {
	t.Helper()
	sim := pdsim.New(opts)
	if clk != nil {
		sim.SetClock(clk.Now)
	}
	require.NoError(t, sim.Load(pdsim.DemoSeed()))
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

func pdClient(srv *httptest.Server, token string) *pagerduty.Client {
	return pagerduty.NewClient(token, pagerduty.WithAPIEndpoint(srv.URL))
}

// apiError extracts go-pagerduty's error type.
func apiError(t *testing.T, err error) pagerduty.APIError {
	t.Helper()
	var e pagerduty.APIError
	require.True(t, errors.As(err, &e), "want pagerduty.APIError, got %v", err)
	return e
}

// call sends a raw request with an API token (none when token is "") and returns the
// response with its body read.
func call(t *testing.T, srv *httptest.Server, method, path, token, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/vnd.pagerduty+json;version=2")
	if token != "" {
		req.Header.Set("Authorization", "Token token="+token)
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

// errorBody is PagerDuty's error shape.
type errorBody struct {
	Error struct {
		Message string   `json:"message"`
		Code    int      `json:"code"`
		Errors  []string `json:"errors"`
	} `json:"error"`
}

func decodeError(t *testing.T, b []byte) errorBody {
	t.Helper()
	var e errorBody
	require.NoError(t, json.Unmarshal(b, &e), string(b))
	return e
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, json.NewEncoder(&buf).Encode(v))
	return buf.String()
}

// createService creates a service on acme's first escalation policy.
func createService(t *testing.T, c *pagerduty.Client, name string) *pagerduty.Service {
	t.Helper()
	svc, err := c.CreateServiceWithContext(t.Context(), pagerduty.Service{
		Name: name, EscalationPolicy: pagerduty.EscalationPolicy{APIObject: pagerduty.APIObject{ID: "PACME01", Type: "escalation_policy_reference"}},
	})
	require.NoError(t, err)
	return svc
}

// newClock is a settable time source for the simulator.
func newClock() *clockwork.FakeClock {
	return clockwork.NewFakeClockAt(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// newServer serves an already loaded simulator.
func newServer(t *testing.T, sim *pdsim.Sim) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return srv
}
