package pagerduty_test

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/secret"
)

// TestBudgetBoundsEveryWindow sends concurrent calls, some of which are retried after a
// 503, through a budget of 10 requests per (shortened) 1-second window, and checks on
// the server side that no window of that length ever saw more than 10 requests. The
// budget grants 10 starts at the earliest 1.11 s apart (burst 1, refill 9 per window),
// which leaves 110 ms for delivery jitter between grant and arrival.
func TestBudgetBoundsEveryWindow(t *testing.T) {
	const (
		perWindow = 10
		window    = time.Second
		calls     = 20
	)
	var mu sync.Mutex
	var arrivals []time.Time
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		n := len(arrivals)
		mu.Unlock()
		if n%4 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		abilitiesOK(w)
	})
	f := newFixture(t, h, func(o *pagerduty.Options) {
		o.RateWindow = window
		o.RateLimit = perWindow
		o.CallTimeout = 30 * time.Second
	})

	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for range calls / 6 {
				_, err := f.client.ListAbilities(context.Background())
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].Before(arrivals[j]) })
	require.Greater(t, len(arrivals), 2*perWindow, "enough traffic to span several windows")
	maxInWindow := 0
	for i, start := range arrivals {
		n := 0
		for _, at := range arrivals[i:] {
			if at.Sub(start) >= window {
				break
			}
			n++
		}
		maxInWindow = max(maxInWindow, n)
	}
	assert.LessOrEqual(t, maxInWindow, perWindow, "requests in the busiest %s window", window)
	assert.Positive(t, metricValue(t, f.reg, "pdworker_pagerduty_ratelimit_wait_seconds_total", map[string]string{"account": "acme"}),
		"calls were paced by the budget")
	assert.Positive(t, metricValue(t, f.reg, "pdworker_pagerduty_retries_total", map[string]string{"reason": "server_error"}),
		"retries went through the budget too")
}

// TestBudgetSharedByTokenFetch checks that an OAuth token fetch takes budget like any
// other request: with a budget of exactly two grants, the fetch and the first API call
// use them and the second call cannot start before its deadline.
func TestBudgetSharedByTokenFetch(t *testing.T) {
	p := newOAuthPD(86400)
	srvURL := startServer(t, p)
	opts := testOptions(prometheus.NewRegistry())
	opts.RateLimit = 2 // burst 1 + 1 refilled per (10 s) window
	opts.RateWindow = 10 * time.Second
	opts.CallTimeout = 8 * time.Second
	accts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{{
		ID: "acme", APIURL: srvURL,
		OAuth: &pagerduty.OAuthConfig{ClientID: testClientID, ClientSecret: secret.Value(testClientSecret), Subdomain: "acme", TokenURL: srvURL + "/oauth/token"},
	}}, opts, zerolog.Nop())
	require.NoError(t, err)

	_, err = accts.Default().ListAbilities(context.Background())
	// The fetch took the burst; the API call waited for the refill (≤ 10 s > 8 s
	// deadline, so it fails fast as budget-exhausted instead).
	require.Error(t, err)
	assert.True(t, pagerduty.IsRetryable(err))
	assert.Contains(t, err.Error(), "client-side rate budget exhausted")
	fetches, apiCalls, _ := p.counts()
	assert.Equal(t, 1, fetches)
	assert.Zero(t, apiCalls)
}
