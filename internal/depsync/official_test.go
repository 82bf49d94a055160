package depsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/pdworker/pdworker/internal/depsync"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/pdsim"
)

var long = flag.Bool("long", false, "also replay the official pattern at 5,000 components and measure the first reconcile's wall time at the default rate limits (minutes)")

// callCounts are the PagerDuty calls the simulator saw.
type callCounts struct{ reads, writes int }

func (c callCounts) String() string {
	return fmt.Sprintf("%d (%d reads + %d writes)", c.reads+c.writes, c.reads, c.writes)
}

func countCalls(sim *pdsim.Sim) callCounts {
	return callCounts{
		reads:  sim.Count(http.MethodGet, ""),
		writes: sim.Count(http.MethodPost, "") + sim.Count(http.MethodPut, "") + sim.Count(http.MethodDelete, ""),
	}
}

// officialLoop replays one catalog processing loop of the official entity processor
// with the backstage strategy (anchor reference sections 7 and 8) against the
// simulator, counting only PagerDuty calls: for every Component with a service id, R8's
// listing of every PagerDuty service (50 per page, integrations included), the
// dependency read of R3, then one associate call (R2) with the ids the catalog has
// and PagerDuty lacks and one disassociate call (R1) with the ids PagerDuty has and
// the catalog lacks. Backstage-side calls (settings, mapping rows, R4 per dependsOn)
// cost PagerDuty nothing and are not replayed. Components are processed eight at a
// time, like a processing loop's parallel workers. With every > 1 only every every-th
// component (in ref order) is processed: a sample, for catalogs where a full loop
// takes the simulator too long.
func officialLoop(t testing.TB, e *env, token string, every int) {
	t.Helper()
	ctx := context.Background()
	v, err := e.store.View(ctx)
	require.NoError(t, err)
	var ents []mapping.Entity
	for _, en := range v.Entities {
		if en.ServiceID != "" {
			ents = append(ents, en)
		}
	}
	slices.SortFunc(ents, func(a, b mapping.Entity) int { return strings.Compare(a.Ref, b.Ref) })
	do := func(ctx context.Context, method, path string, body any, out any) error {
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, err := http.NewRequestWithContext(ctx, method, e.url+path, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Token token="+token)
		req.Header.Set("Accept", "application/vnd.pagerduty+json;version=2")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %d", method, path, resp.StatusCode)
		}
		if out != nil {
			return json.NewDecoder(resp.Body).Decode(out)
		}
		return nil
	}
	type rel struct {
		Supporting struct {
			ID string `json:"id"`
		} `json:"supporting_service"`
		Dependent struct {
			ID string `json:"id"`
		} `json:"dependent_service"`
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, en := range ents {
		if i%every != 0 {
			continue
		}
		g.Go(func() error {
			// R8: every service of the account, 50 per page.
			for offset := 0; ; offset += 50 {
				var page struct {
					More bool `json:"more"`
				}
				if err := do(gctx, http.MethodGet, fmt.Sprintf("/services?time_zone=UTC&limit=50&offset=%d&include[]=integrations", offset), nil, &page); err != nil {
					return err
				}
				if !page.More {
					break
				}
			}
			// R3: PagerDuty's side.
			var deps struct {
				Relationships []rel `json:"relationships"`
			}
			if err := do(gctx, http.MethodGet, "/service_dependencies/technical_services/"+en.ServiceID, nil, &deps); err != nil {
				return err
			}
			have := map[string]bool{}
			for _, r := range deps.Relationships {
				if r.Dependent.ID == en.ServiceID {
					have[r.Supporting.ID] = true
				}
			}
			want := map[string]bool{}
			for _, d := range en.DependsOn {
				if sid := v.Entities[d].ServiceID; sid != "" {
					want[sid] = true
				}
			}
			write := func(op string, ids map[string]bool, skip map[string]bool) error {
				var rels []pagerduty.Dependency
				for id := range ids {
					if !skip[id] {
						rels = append(rels, pagerduty.ServiceDependency(en.ServiceID, id))
					}
				}
				if len(rels) == 0 {
					return nil
				}
				return do(gctx, http.MethodPost, "/service_dependencies/"+op, map[string]any{"relationships": rels}, nil)
			}
			if err := write("associate", want, have); err != nil {
				return err
			}
			return write("disassociate", have, want)
		})
	}
	require.NoError(t, g.Wait())
}

// TestCallsSideBySide counts PagerDuty calls, in one run, for ours and for the official
// processor's replayed loop: the first full reconcile, a reconcile with no change, and
// one entity's dependsOn changed; 200 components (1,000 and 5,000 with -long). It prints
// the BENCHMARKS.md rows (grep '^|').
func TestCallsSideBySide(t *testing.T) {
	type size struct{ n, every int }
	sizes := []size{{200, 1}}
	if *long {
		// A full replayed loop at 5,000 components makes about 505,000 simulator calls
		// (over 20 minutes here): every tenth component is replayed instead.
		sizes = []size{{1000, 1}, {5000, 10}}
	}
	ctx := context.Background()
	var rows []string
	for _, sz := range sizes {
		n := sz.n
		ours := newEnv(t, n, pdsim.Options{})
		buildCatalog(t, ours, n)
		ours.strategy(t, mapping.StrategyBackstage)
		s := ours.syncer(t, depsync.Config{})
		official := newEnv(t, n, pdsim.Options{})
		buildCatalog(t, official, n)

		step := func(name string, runOurs func() *depsync.Report) {
			ours.sim.ResetRequests()
			official.sim.ResetRequests()
			rep := runOurs()
			require.Empty(t, rep.Errors)
			start := time.Now()
			officialLoop(t, official, "tok-acme", sz.every)
			t.Logf("%d components, %s: official loop replayed in %s", n, name, time.Since(start).Round(time.Millisecond))
			off := countCalls(official.sim).String()
			if sz.every > 1 {
				c := countCalls(official.sim)
				// Every component makes the same reads, so the sample's reads scale
				// exactly; writes are reported as made by the sample.
				off = fmt.Sprintf("%d reads per loop (%d measured over %d of the %d components, every %dth, ×%d) + %d writes made by the sample", c.reads*sz.every, c.reads, (n+sz.every-1)/sz.every, n, sz.every, sz.every, c.writes)
			}
			rows = append(rows, fmt.Sprintf("| %d / %d | %s | %s | %s |", n, 3*n, name, countCalls(ours.sim), off))
		}
		step("first full reconcile", func() *depsync.Report {
			rep, err := s.Run(ctx, depsync.Request{}, "test")
			require.NoError(t, err)
			return rep
		})
		if sz.every == 1 {
			require.Equal(t, ours.pdEdges("acme"), official.pdEdges("acme"), "both converge to the same PagerDuty dependencies")
		}
		step("no change", func() *depsync.Report {
			rep, err := s.Run(ctx, depsync.Request{}, "test")
			require.NoError(t, err)
			return rep
		})
		ours.component(t, 10, n/2, 11)
		official.component(t, 10, n/2, 11)
		step("one entity's dependsOn changed", func() *depsync.Report {
			// The catalog consumer marks the changed entity; its reconcile covers only it.
			rep, err := s.Run(ctx, depsync.Request{EntityRefs: []string{compRef(10)}}, "test")
			require.NoError(t, err)
			return rep
		})
		if sz.every == 1 {
			require.Equal(t, ours.pdEdges("acme"), official.pdEdges("acme"))
		}
	}
	fmt.Println("| Catalog (components / dependsOn edges) | Run | pdworker: PagerDuty calls | Official processor, one loop replayed: PagerDuty calls |")
	fmt.Println("|---|---|---|---|")
	for _, r := range rows {
		fmt.Println(r)
	}
}

// TestFirstReconcileWallTime measures the first full reconcile of 5,000 components and
// 15,000 dependsOn edges at the simulator's default rate limit (960/min) with the
// client's default budget (-long only: it takes about six minutes).
func TestFirstReconcileWallTime(t *testing.T) {
	if !*long {
		t.Skip("takes minutes; run with -long")
	}
	const n = 5000
	e := newEnvWith(t, n, pdsim.Options{RateLimit: pdsim.DefaultRateLimit}, pagerduty.Options{})
	buildCatalog(t, e, n)
	e.strategy(t, mapping.StrategyBackstage)
	s := e.syncer(t, depsync.Config{})
	start := time.Now()
	rep, err := s.Run(context.Background(), depsync.Request{}, "test")
	elapsed := time.Since(start)
	require.NoError(t, err)
	require.Empty(t, rep.Errors)
	limited := 0
	for _, r := range e.sim.Requests() {
		if r.Status == http.StatusTooManyRequests {
			limited++
		}
	}
	require.Len(t, e.pdEdges("acme"), 3*n, "converged")
	fmt.Printf("| %d / %d | %s | %d | %d | %d |\n", n, 3*n, elapsed.Round(time.Second), rep.PagerDutyReads, rep.PagerDutyWrites, limited)
}
