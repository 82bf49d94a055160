package httpapi_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/card"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/secret"
)

var (
	cardLoad       = flag.Duration("cardload", 0, "run the card-view load comparison for this long per row (BENCHMARKS.md)")
	cardLoadLimits = flag.String("cardload-limits", "960", `simulator rate limits (requests per minute per account) to run the comparison under, comma-separated; "off" lifts the limit`)
)

// liftedRateLimit stands for "no rate limit" in the simulator.
const liftedRateLimit = 1 << 30

// TestCardViewLoad measures, for 1, 10 and 200 concurrent viewers loading the full
// card in a loop, the PagerDuty calls per card view and the p50/p99 latency of a view:
// through pdworker (cached, single-flight) and in the official backend's pattern (the
// same 7 PagerDuty calls per view, uncached, straight to the simulator), under each
// simulator rate limit of -cardload-limits.
func TestCardViewLoad(t *testing.T) {
	if *cardLoad == 0 {
		t.Skip("run with -cardload=10s")
	}
	var limits []int
	for _, l := range strings.Split(*cardLoadLimits, ",") {
		if l = strings.TrimSpace(l); l == "off" {
			limits = append(limits, liftedRateLimit)
			continue
		}
		n, err := strconv.Atoi(l)
		require.NoError(t, err, "-cardload-limits")
		limits = append(limits, n)
	}
	fmt.Printf("| simulator limit | viewers | backend | card views | PagerDuty calls | calls per view | PagerDuty 429s | view p50 | view p99 |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, limit := range limits {
		limitName := strconv.Itoa(limit) + "/min"
		if limit == liftedRateLimit {
			limitName = "off"
		}
		cardViewLoadRows(t, limit, limitName)
	}
}

// cardViewLoadRows prints the rows of TestCardViewLoad for one simulator rate limit.
func cardViewLoadRows(t *testing.T, limit int, limitName string) {
	for _, viewers := range []int{1, 10, 200} {
		for _, official := range []bool{false, true} {
			e := newEnv(t, envOptions{cache: card.Config{TTL: 60 * time.Second}, simRateLimit: limit})
			pd := officialClient(t, e.simURL)
			e.sim.ResetRequests()
			var mu sync.Mutex
			var lat []time.Duration
			var failed atomic.Int64
			start := time.Now()
			var wg sync.WaitGroup
			for range viewers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Since(start) < *cardLoad {
						began := time.Now()
						var ok bool
						if official {
							ok = officialView(pd)
						} else {
							ok = oursView(e)
						}
						if !ok {
							failed.Add(1)
						}
						mu.Lock()
						lat = append(lat, time.Since(began))
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			slices.Sort(lat)
			calls, limited := 0, 0
			for _, r := range e.sim.Requests() {
				calls++
				if r.Status == http.StatusTooManyRequests {
					limited++
				}
			}
			name := "pdworker (cached)"
			if official {
				name = "official pattern (7 uncached)"
			}
			fmt.Printf("| %s | %d | %s | %d | %d | %.3f | %d | %s | %s |\n", limitName, viewers, name, len(lat), calls,
				float64(calls)/float64(len(lat)), limited, pct(lat, 50), pct(lat, 99))
		}
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[(len(d)-1)*p/100].Round(10 * time.Microsecond)
}

// oursView loads the card through pdworker, as the frontend does.
func oursView(e *env) bool {
	ok := true
	for _, p := range []string{
		"/api/pagerduty/services/PSVC001/standards", "/api/pagerduty/services/PSVC001/metrics",
		"/api/pagerduty/services/PSVC001", "/api/pagerduty/oncall-users?escalation_policy_ids[]=PEP0001",
		"/api/pagerduty/services/PSVC001/incidents", "/api/pagerduty/services/PSVC001/change-events",
		"/api/pagerduty/services/PSVC001",
	} {
		req, _ := http.NewRequest(http.MethodGet, e.url+p, nil)
		req.Header.Set("Authorization", "Bearer "+staticToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		ok = ok && resp.StatusCode == http.StatusOK
	}
	return ok
}

// officialClient talks to the simulator without pdworker's budget or retries, as the
// official backend does.
func officialClient(t testing.TB, simURL string) *pagerduty.Client {
	accounts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{
		{ID: "default", Default: true, APIURL: simURL, EventsURL: simURL, Token: secret.Value("pd-default")},
	}, pagerduty.Options{RateLimit: 1_000_000, RetryMax: -1}, zerolog.Nop())
	require.NoError(t, err)
	return accounts.Default()
}

// officialView makes the official backend's 7 PagerDuty calls for one card view.
func officialView(pd *pagerduty.Client) bool {
	ctx := context.Background()
	now := time.Now()
	_, e1 := pd.GetServiceJSON(ctx, "PSVC001")
	_, e2 := pd.GetStandardsScores(ctx, "PSVC001")
	_, e3 := pd.ServiceIncidentMetrics(ctx, "PSVC001", now.Add(-30*24*time.Hour), now)
	_, e4 := pd.GetServiceJSON(ctx, "PSVC001")
	_, e5 := pd.ListOnCalls(ctx, []string{"PEP0001"})
	_, e6 := pd.ListOpenIncidents(ctx, "PSVC001")
	_, e7 := pd.ListChangeEvents(ctx, "PSVC001", 5)
	return e1 == nil && e2 == nil && e3 == nil && e4 == nil && e5 == nil && e6 == nil && e7 == nil
}
