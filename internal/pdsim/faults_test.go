package pdsim_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	pagerduty "github.com/PagerDuty/go-pagerduty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

const createBody = `{"service":{"name":"faulted","escalation_policy":{"id":"PACME01","type":"escalation_policy_reference"}}}`

func TestFaultKinds(t *testing.T) {
	tests := []struct {
		name        string
		fault       pdsim.Fault
		wantStatus  int
		wantBody    string
		wantHeaders map[string]string
		wantCreated bool
	}{
		{
			name:        "429 with headers",
			fault:       pdsim.Fault{Kind: pdsim.Fault429, ResetSeconds: 7},
			wantStatus:  http.StatusTooManyRequests,
			wantBody:    `{"error":{"message":"Rate Limit Exceeded","code":2020}}`,
			wantHeaders: map[string]string{"ratelimit-reset": "7", "ratelimit-remaining": "0", "ratelimit-limit": "960", "Content-Type": "application/json; charset=utf-8"},
		},
		{
			name:        "bare 429",
			fault:       pdsim.Fault{Kind: pdsim.Fault429Bare},
			wantStatus:  http.StatusTooManyRequests,
			wantHeaders: map[string]string{"ratelimit-reset": "", "ratelimit-limit": "", "Content-Type": ""},
		},
		{
			name:       "5xx default",
			fault:      pdsim.Fault{Kind: pdsim.Fault5xx},
			wantStatus: http.StatusInternalServerError,
			wantBody:   `{"error":{"message":"An internal error has occurred. PagerDuty team has been notified.","code":2000}}`,
		},
		{
			name:       "5xx with status",
			fault:      pdsim.Fault{Kind: pdsim.Fault5xx, Status: http.StatusServiceUnavailable},
			wantStatus: http.StatusServiceUnavailable,
		},
		{
			name:        "5xx after the write",
			fault:       pdsim.Fault{Kind: pdsim.Fault5xxAfter},
			wantStatus:  http.StatusBadGateway,
			wantBody:    `{"error":{"message":"An internal error has occurred. PagerDuty team has been notified.","code":2000}}`,
			wantCreated: true,
		},
		{
			name:        "latency then normal service",
			fault:       pdsim.Fault{Kind: pdsim.FaultLatency, Latency: 10 * time.Millisecond},
			wantStatus:  http.StatusCreated,
			wantCreated: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, srv := newSim(t, pdsim.Options{})
			require.Positive(t, sim.InjectFault(tt.fault))
			resp, b := call(t, srv, http.MethodPost, "/services", acme, createBody)
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			if tt.wantBody != "" {
				assert.JSONEq(t, tt.wantBody, string(b))
			}
			for k, v := range tt.wantHeaders {
				assert.Equal(t, v, resp.Header.Get(k), k)
			}
			if tt.fault.Kind == pdsim.Fault429Bare {
				assert.Empty(t, b)
			}
			assert.Equal(t, tt.wantCreated, len(sim.Services("acme")) == 1)
			assert.Zero(t, sim.RateLimited(), "injected 429s are not the limiter's")

			reqs := sim.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, string(tt.fault.Kind), reqs[0].Fault)
			assert.Equal(t, tt.wantStatus, reqs[0].Status)
			assert.Equal(t, "acme", reqs[0].Account)
		})
	}
}

func TestFaultDrop(t *testing.T) {
	sim, srv := newSim(t, pdsim.Options{})
	sim.InjectFault(pdsim.Fault{Kind: pdsim.FaultDrop, Method: http.MethodPost, PathPrefix: "/services"})

	_, err := pdClient(srv, acme).CreateServiceWithContext(t.Context(), pagerduty.Service{
		Name: "dropped", EscalationPolicy: pagerduty.EscalationPolicy{APIObject: pagerduty.APIObject{ID: "PACME01"}},
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "error calling the API endpoint")
	assert.Empty(t, sim.Services("acme"), "a dropped create creates nothing")
	reqs := sim.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, 0, reqs[0].Status)
	assert.Equal(t, "drop", reqs[0].Fault)
}

func TestFaultMatching(t *testing.T) {
	t.Run("every third, twice", func(t *testing.T) {
		sim, srv := newSim(t, pdsim.Options{})
		sim.InjectFault(pdsim.Fault{Kind: pdsim.Fault5xx, Every: 3, Count: 2})
		var got []int
		for range 10 {
			resp, _ := call(t, srv, http.MethodGet, "/abilities", acme, "")
			got = append(got, resp.StatusCode)
		}
		assert.Equal(t, []int{200, 200, 500, 200, 200, 500, 200, 200, 200, 200}, got)
	})

	t.Run("account, method and path", func(t *testing.T) {
		sim, srv := newSim(t, pdsim.Options{})
		sim.InjectFault(pdsim.Fault{Kind: pdsim.Fault5xx, Account: "globex", Method: http.MethodGet, PathPrefix: "/services"})
		tests := []struct {
			method, path, token string
			want                int
		}{
			{http.MethodGet, "/services", globex, 500},
			{http.MethodGet, "/services/PXXXXXX", globex, 500},
			{http.MethodGet, "/services", acme, 200},
			{http.MethodGet, "/abilities", globex, 200},
			{http.MethodPost, "/services", globex, 400},
			{http.MethodGet, "/services", "", 401},
		}
		for _, tt := range tests {
			resp, _ := call(t, srv, tt.method, tt.path, tt.token, "{}")
			assert.Equal(t, tt.want, resp.StatusCode, "%s %s %s", tt.method, tt.path, tt.token)
		}
	})

	t.Run("probability is seeded", func(t *testing.T) {
		run := func() []int {
			sim, srv := newSim(t, pdsim.Options{Seed: 42})
			sim.InjectFault(pdsim.Fault{Kind: pdsim.Fault5xx, Probability: 0.5})
			var faulted []int
			for i := range 40 {
				if resp, _ := call(t, srv, http.MethodGet, "/abilities", acme, ""); resp.StatusCode == 500 {
					faulted = append(faulted, i)
				}
			}
			return faulted
		}
		first := run()
		assert.NotEmpty(t, first)
		assert.Less(t, len(first), 40)
		assert.Equal(t, first, run(), "the same seed faults the same requests")
	})

	t.Run("faults before authentication", func(t *testing.T) {
		sim, srv := newSim(t, pdsim.Options{})
		sim.InjectFault(pdsim.Fault{Kind: pdsim.Fault429Bare})
		resp, _ := call(t, srv, http.MethodGet, "/abilities", "wrong-token", "")
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		sim.ClearFaults()
		resp, _ = call(t, srv, http.MethodGet, "/abilities", "wrong-token", "")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})

	t.Run("invalid faults are refused", func(t *testing.T) {
		sim := pdsim.New(pdsim.Options{})
		for _, f := range []pdsim.Fault{
			{Kind: "explode"},
			{Kind: pdsim.Fault5xx, Status: 404},
			{Kind: pdsim.Fault5xx, Probability: 2},
			{Kind: pdsim.FaultLatency, Every: -1},
		} {
			assert.Zero(t, sim.InjectFault(f), f)
		}
		assert.Equal(t, 1, sim.InjectFault(pdsim.Fault{Kind: pdsim.FaultDrop}))
	})
}

func TestFaultLatencyRespectsClientContext(t *testing.T) {
	sim := pdsim.New(pdsim.Options{})
	require.NoError(t, sim.Load(pdsim.DemoSeed()))
	sim.InjectFault(pdsim.Fault{Kind: pdsim.FaultLatency, Latency: time.Hour})
	// The client leaves only once its request is in the simulator's hands: leaving
	// earlier would never reach the handler, and there would be nothing to log.
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		select {
		case <-arrived:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err := pdClient(srv, acme).CreateServiceWithContext(ctx, pagerduty.Service{
		Name: "slow", EscalationPolicy: pagerduty.EscalationPolicy{APIObject: pagerduty.APIObject{ID: "PACME01"}},
	})
	require.ErrorContains(t, err, "context canceled", "go-pagerduty flattens the cause into its message")

	require.Eventually(t, func() bool { return len(sim.Requests()) == 1 }, 10*time.Second, 5*time.Millisecond,
		"the handler gives up when the client leaves")
	assert.Equal(t, 0, sim.Requests()[0].Status)
	assert.Empty(t, sim.Services("acme"))
}
