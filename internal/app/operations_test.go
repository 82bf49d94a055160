package app

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/pdsim"
)

// A call that outlives ACTION_WAIT_TIMEOUT answers 504; the job goes on, and the same
// Idempotency-Key later returns its result.
func TestSlowJobAnswers504ThenTheResult(t *testing.T) {
	seed := testSeed()
	sim, url := simulator(t, pdsim.Options{}, seed)
	sim.InjectFault(pdsim.Fault{Method: http.MethodPost, PathPrefix: "/services", Kind: pdsim.FaultLatency, Latency: 1500 * time.Millisecond, Count: 1})
	cfg := testConfig(t, url, seed, "")
	cfg.ActionWaitTimeout = 300 * time.Millisecond
	a := startApp(t, cfg, fastOptions(), zerolog.Nop())

	body := `{"name":"slow","description":"d","escalationPolicyId":"PAIOPS1"}`
	first := create(t, a, "slow-1", body)
	require.Equal(t, http.StatusGatewayTimeout, first.status, "%s", first.body)
	assert.Contains(t, first.errorMessage(t), "same Idempotency-Key")
	jobID := first.header.Get("Pdworker-Job-Id")
	require.NotEmpty(t, jobID)

	var done response
	require.Eventually(t, func() bool {
		done = create(t, a, "slow-1", body)
		return done.status == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond)
	assert.Equal(t, jobID, done.header.Get("Pdworker-Job-Id"))
	require.Len(t, sim.Services("aiops"), 1)
	assert.Equal(t, sim.Services("aiops")[0].ID, done.json(t)["serviceId"])
}

func TestHealthReadinessAndNATSOutage(t *testing.T) {
	seed := testSeed()
	sim, url := simulator(t, pdsim.Options{}, seed)
	a := startApp(t, testConfig(t, url, seed, ""), fastOptions(), zerolog.Nop())

	assert.Equal(t, http.StatusOK, call(t, a, http.MethodGet, "/healthz", "", nil, "").status)
	ready := call(t, a, http.MethodGet, "/readyz", "", nil, "")
	assert.Equal(t, http.StatusOK, ready.status, "%s", ready.body)
	for _, name := range []string{"pdworker_http_requests_total", "pdworker_consumer_pending", "pdworker_pagerduty_ratelimit_wait_seconds_total", "go_goroutines"} {
		assert.Eventually(t, func() bool {
			metrics := call(t, a, http.MethodGet, "/metrics", "", nil, "")
			return metrics.status == http.StatusOK && strings.Contains(string(metrics.body), name)
		}, 5*time.Second, 50*time.Millisecond, "/metrics has %s", name)
	}

	// NATS goes away: readiness says so and actions answer 503 without touching PagerDuty.
	a.embedded.Shutdown()
	require.Eventually(t, func() bool {
		return call(t, a, http.MethodGet, "/readyz", "", nil, "").status == http.StatusServiceUnavailable
	}, 10*time.Second, 50*time.Millisecond)
	resp := create(t, a, "", `{"name":"no-nats","description":"d","escalationPolicyId":"PAIOPS1"}`)
	require.Equal(t, http.StatusServiceUnavailable, resp.status, "%s", resp.body)
	assert.True(t, strings.HasPrefix(resp.errorMessage(t), "NATS is unavailable"), resp.errorMessage(t))
	assert.Equal(t, 0, writes(sim))
}

// Stop returns once the NATS connection has drained and closed, not while the drain
// still runs in the background of a process about to exit.
func TestStopDrainsTheNATSConnection(t *testing.T) {
	seed := testSeed()
	_, url := simulator(t, pdsim.Options{}, seed)
	embedded, _, _ := natstest.StartListening(t)
	a := startApp(t, testConfig(t, url, seed, embedded.ClientURL()), fastOptions(), zerolog.Nop())
	a.Stop()
	assert.True(t, a.nc.IsClosed(), "draining: %v", a.nc.IsDraining())
}
