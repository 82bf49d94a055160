package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

// BenchmarkPagerDutyCallsPerService counts the PagerDuty requests one created service
// costs on the warm happy path, for pdworker and for the call sequence of PagerDuty's
// own scaffolder action (abilities, every escalation-policy page of the account, the
// service, the integration), against an account with 500 escalation policies.
//
//	go test ./internal/app -run '^$' -bench PagerDutyCallsPerService -benchtime 200x
func BenchmarkPagerDutyCallsPerService(b *testing.B) {
	seed := pdsim.LargeSeed(500)
	for _, grouping := range []string{"none", "intelligent"} {
		b.Run("pdworker/grouping="+grouping, func(b *testing.B) {
			sim, url := simulator(b, pdsim.Options{RateLimit: 1 << 30}, seed)
			cfg := testConfig(b, url, seed, "")
			cfg.PagerDuty.RateLimit = 1 << 30
			a := startApp(b, cfg, fastOptions(), zerolog.Nop())
			// Warm: the owners of the escalation policies and the account's abilities
			// are known, as they are a minute after start.
			for ep := 1; ep <= 9; ep++ {
				warm := create(b, a, "", fmt.Sprintf(`{"name":"warm-up-%d","description":"d","escalationPolicyId":"PE0000%d","alertGrouping":"%s"}`, ep, ep, grouping))
				require.Equal(b, http.StatusOK, warm.status, "%s", warm.body)
			}
			sim.ResetRequests()
			b.ResetTimer()
			for i := range b.N {
				r := create(b, a, "", fmt.Sprintf(`{"name":"svc-%d","description":"d","escalationPolicyId":"PE0000%d","alertGrouping":"%s"}`, i, 1+i%9, grouping))
				require.Equal(b, http.StatusOK, r.status, "%s", r.body)
			}
			b.StopTimer()
			b.ReportMetric(float64(len(sim.Requests()))/float64(b.N), "pd-calls/op")
		})
		b.Run("official-flow/grouping="+grouping, func(b *testing.B) {
			sim, url := simulator(b, pdsim.Options{RateLimit: 1 << 30}, seed)
			b.ResetTimer()
			for i := range b.N {
				officialCreate(b, url, pdsim.LargeSeedToken, fmt.Sprintf("svc-%d", i), "PE00001", grouping)
			}
			b.StopTimer()
			b.ReportMetric(float64(len(sim.Requests()))/float64(b.N), "pd-calls/op")
		})
	}
}

// officialCreate replays the requests PagerDuty's own scaffolder action makes for one
// service (reference: backstage-plugin-anchor.md section 6).
func officialCreate(b *testing.B, url, token, name, policyID, grouping string) {
	b.Helper()
	do := func(method, path string, body any, out any) {
		var rd *bytes.Reader
		if body != nil {
			raw, err := json.Marshal(body)
			require.NoError(b, err)
			rd = bytes.NewReader(raw)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, err := http.NewRequest(method, url+path, rd)
		require.NoError(b, err)
		req.Header.Set("Authorization", "Token token="+token)
		req.Header.Set("Accept", "application/vnd.pagerduty+json;version=2")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(b, err)
		defer resp.Body.Close()
		require.Less(b, resp.StatusCode, 300, "%s %s", method, path)
		if out != nil {
			require.NoError(b, json.NewDecoder(resp.Body).Decode(out))
		}
	}
	var abilities struct{ Abilities []string }
	do(http.MethodGet, "/abilities", nil, &abilities)
	for offset := 0; ; offset += 50 {
		var page struct{ More bool }
		do(http.MethodGet, fmt.Sprintf("/escalation_policies?total=true&sort_by=name&offset=%d&limit=50", offset), nil, &page)
		if !page.More {
			break
		}
	}
	svc := map[string]any{
		"type": "service", "name": name, "description": "d", "alert_creation": "create_alerts_and_incidents",
		"escalation_policy": map[string]any{"id": policyID, "type": "escalation_policy_reference"},
	}
	if grouping == "intelligent" {
		svc["alert_grouping_parameters"] = map[string]any{"type": "intelligent"}
	}
	var created struct{ Service struct{ ID string } }
	do(http.MethodPost, "/services", map[string]any{"service": svc}, &created)
	do(http.MethodPost, "/services/"+created.Service.ID+"/integrations", map[string]any{"integration": map[string]any{
		"name": "Backstage", "service": map[string]any{"id": created.Service.ID, "type": "service_reference"},
		"vendor": map[string]any{"id": "PRO19CT", "type": "vendor_reference"},
	}}, nil)
}

// BenchmarkActionLatency measures pdworker's pagerduty:service:create over HTTP — NATS
// job, checkpoints, PagerDuty calls, result — with 16 concurrent callers and the
// simulator at zero added latency, next to the floor: the simulator's own round trip
// for a service create with the same concurrency. The client budget is lifted so that
// the figures show pdworker's own cost, not PagerDuty's rate limit.
//
//	go test ./internal/app -run '^$' -bench ActionLatency -benchtime 2000x
func BenchmarkActionLatency(b *testing.B) {
	const callers = 16
	seed := testSeed()
	b.Run("pdworker", func(b *testing.B) {
		_, url := simulator(b, pdsim.Options{RateLimit: 1 << 30}, seed)
		cfg := testConfig(b, url, seed, "")
		cfg.PagerDuty.RateLimit = 1 << 30
		cfg.WorkerConcurrency = callers
		a := startApp(b, cfg, fastOptions(), zerolog.Nop())
		require.Equal(b, http.StatusOK, create(b, a, "", `{"name":"warm","description":"d","escalationPolicyId":"PAIOPS1"}`).status)
		measure(b, callers, func(i int) error {
			r := create(b, a, "", fmt.Sprintf(`{"name":"lat-%d","description":"d","escalationPolicyId":"PAIOPS1"}`, i))
			if r.status != http.StatusOK {
				return fmt.Errorf("status %d: %s", r.status, r.body)
			}
			return nil
		})
	})
	b.Run("simulator-floor", func(b *testing.B) {
		_, url := simulator(b, pdsim.Options{RateLimit: 1 << 30}, seed)
		measure(b, callers, func(i int) error {
			body := fmt.Sprintf(`{"service":{"name":"floor-%d","description":"d","escalation_policy":{"id":"PAIOPS1","type":"escalation_policy_reference"}}}`, i)
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/services", bytes.NewReader([]byte(body)))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Token token=pd-token-aiops")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	})
}

// measure runs op b.N times from `callers` goroutines and reports p50, p99 and
// throughput.
func measure(b *testing.B, callers int, op func(i int) error) {
	b.Helper()
	var (
		next      atomic.Int64
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
		wg        sync.WaitGroup
		firstErr  atomic.Value
	)
	b.ResetTimer()
	start := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				d := time.Since(t0)
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}
