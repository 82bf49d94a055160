package pdsim_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

func TestRateLimit(t *testing.T) {
	clk := newClock()
	sim, srv := newSimAt(t, pdsim.Options{RateLimit: 5}, clk)

	for i := range 5 {
		resp, _ := call(t, srv, http.MethodGet, "/abilities", acme, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "5", resp.Header.Get("ratelimit-limit"))
		assert.Equal(t, strconv.Itoa(4-i), resp.Header.Get("ratelimit-remaining"))
		assert.Equal(t, "60", resp.Header.Get("ratelimit-reset"))
	}

	clk.Advance(20 * time.Second)
	resp, b := call(t, srv, http.MethodGet, "/abilities", acme, "")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.JSONEq(t, `{"error":{"message":"Rate Limit Exceeded","code":2020}}`, string(b))
	assert.Equal(t, "0", resp.Header.Get("ratelimit-remaining"))
	assert.Equal(t, "40", resp.Header.Get("ratelimit-reset"))
	assert.Equal(t, 1, sim.RateLimited())

	_, err := pdClient(srv, acme).ListAbilitiesWithContext(t.Context())
	assert.True(t, apiError(t, err).RateLimited())
	assert.Equal(t, 2, sim.RateLimited())

	resp, _ = call(t, srv, http.MethodGet, "/abilities", globex, "")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "each account has its own budget")

	resp, _ = call(t, srv, http.MethodGet, "/_sim/healthz", "", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the control API is not limited")

	clk.Advance(40 * time.Second)
	resp, _ = call(t, srv, http.MethodGet, "/abilities", acme, "")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a new window opens")
	assert.Equal(t, "4", resp.Header.Get("ratelimit-remaining"))
	assert.Equal(t, 2, sim.RateLimited())

	resp, _ = call(t, srv, http.MethodGet, "/abilities", "wrong", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("ratelimit-limit"), "no account, no budget")
}
