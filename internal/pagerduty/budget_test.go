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
// 503, through a budget of 10 requests per (shortened) 1-second window, and checks that
// no window of that length ever holds more than 10 of the budget's grants (it grants 10
// at the earliest 1.11 s apart: burst 1, refill 9 per window), and that every request
// the server saw, retries included, was granted. The server's arrival times are not
// held to the window: scheduling and network delays between a grant and its arrival
// are outside the budget's control and may bunch arrivals by any amount on a busy
// machine.
func TestBudgetBoundsEveryWindow(t *testing.T) {
	const (
		perWindow = 10
		window    = time.Second
		calls     = 20
	)
	var mu sync.Mutex
	var arrivals int
	var granted []time.Time
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals++
		n := arrivals
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
	f.client.OnBudgetGrant(func(at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		granted = append(granted, at)
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
	require.Greater(t, arrivals, 2*perWindow, "enough traffic to span several windows")
	assert.Equal(t, arrivals, len(granted), "every request, retries included, went through the budget")
	sort.Slice(granted, func(i, j int) bool { return granted[i].Before(granted[j]) })
	maxInWindow := 0
	for i, start := range granted {
		n := 0
		for _, at := range granted[i:] {
			if at.Sub(start) > window {
				break
			}
			n++
		}
		maxInWindow = max(maxInWindow, n)
	}
	assert.LessOrEqual(t, maxInWindow, perWindow, "grants in the busiest closed %s window", window)
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
