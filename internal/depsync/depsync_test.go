package depsync_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/depsync"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pdsim"
)

// small builds: c0→c1, c0→c2, c1→c2 (acme, mapped); c3 is unmapped and depends on c0;
// PagerDuty already has c2→c1 (drift: catalog lacks it), PS00009→PS00000 (PS00009 is
// mapped to nothing) and PS00000→PS00008 (unmapped supporting service). Globex g0→g1
// is mapped in globex; acme c1 also declares a cross-account dependency on g0.
func small(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	e.component(t, 0, 1, 2)
	e.component(t, 1, 2)
	e.component(t, 2)
	_, err := e.store.PutEntity(ctx, mapping.Entity{Ref: "component:default/c00003", DependsOn: []string{compRef(0)}})
	require.NoError(t, err)
	_, err = e.store.PutEntity(ctx, mapping.Entity{Ref: compRef(1), ServiceID: svc(1), DependsOn: []string{compRef(2), globexRef(0)}})
	require.NoError(t, err)
	_, err = e.store.PutEntity(ctx, mapping.Entity{Ref: globexRef(0), ServiceID: gsvc(0), Account: "globex", DependsOn: []string{globexRef(1)}})
	require.NoError(t, err)
	_, err = e.store.PutEntity(ctx, mapping.Entity{Ref: globexRef(1), ServiceID: gsvc(1), Account: "globex"})
	require.NoError(t, err)
	e.associate(t, "acme", [2]string{svc(2), svc(1)}, [2]string{svc(9), svc(0)}, [2]string{svc(0), svc(8)})
}

func TestStrategies(t *testing.T) {
	tests := []struct {
		strategy   string
		wantAcme   []string
		wantGlobex []string
		wantOnly   int
		wantErrors int
	}{
		{strategy: mapping.StrategyDisabled,
			wantAcme: []string{"PS00002>PS00001", "PS00009>PS00000", "PS00000>PS00008"}},
		{strategy: mapping.StrategyPagerDuty,
			wantAcme: []string{"PS00002>PS00001", "PS00009>PS00000", "PS00000>PS00008"}},
		{strategy: mapping.StrategyBackstage,
			// Converged: exactly the catalog's edges among mapped services, and the edges
			// touching unmapped services untouched.
			wantAcme:   []string{"PS00000>PS00001", "PS00000>PS00002", "PS00001>PS00002", "PS00009>PS00000", "PS00000>PS00008"},
			wantGlobex: []string{"PG00000>PG00001"}},
		{strategy: mapping.StrategyBoth,
			// Union: nothing removed; the PagerDuty-only edge c2→c1 is reported, and the
			// catalog's c1→c2, which would close a cycle with it, is refused per edge.
			wantAcme:   []string{"PS00000>PS00001", "PS00000>PS00002", "PS00002>PS00001", "PS00009>PS00000", "PS00000>PS00008"},
			wantGlobex: []string{"PG00000>PG00001"}, wantOnly: 1, wantErrors: 1},
	}
	for _, tt := range tests {
		t.Run(tt.strategy, func(t *testing.T) {
			e := newEnv(t, 10, pdsim.Options{})
			small(t, e)
			e.strategy(t, tt.strategy)
			s := e.syncer(t, depsync.Config{GuardMinRemovals: 100})
			rep, err := s.Run(context.Background(), depsync.Request{}, "test")
			require.NoError(t, err)
			assert.Len(t, rep.Errors, tt.wantErrors)
			want := map[string]bool{}
			for _, x := range tt.wantAcme {
				want[x] = true
			}
			assert.Equal(t, want, e.pdEdges("acme"))
			wantG := map[string]bool{}
			for _, x := range tt.wantGlobex {
				wantG[x] = true
			}
			assert.Equal(t, wantG, e.pdEdges("globex"))
			assert.Len(t, rep.Plan.PagerDutyOnly, tt.wantOnly)
			if tt.strategy == mapping.StrategyBackstage || tt.strategy == mapping.StrategyBoth {
				assert.Contains(t, reasons(rep), "component:default/c00001 → component:default/g00000")
			}
		})
	}
}

func reasons(rep *depsync.Report) []string {
	var out []string
	for _, s := range rep.Skipped {
		out = append(out, s.EntityRef+" → "+s.TargetRef)
	}
	return out
}

func TestDryRunPlansWithoutWriting(t *testing.T) {
	e := newEnv(t, 10, pdsim.Options{})
	small(t, e)
	e.strategy(t, mapping.StrategyBackstage)
	before := e.pdEdges("acme")
	rep, err := e.syncer(t, depsync.Config{GuardMinRemovals: 100}).Run(context.Background(), depsync.Request{DryRun: true}, "test")
	require.NoError(t, err)
	assert.Len(t, rep.Plan.Add, 4) // three acme, one globex
	assert.Len(t, rep.Plan.Remove, 1)
	assert.Empty(t, rep.Added)
	assert.Zero(t, e.writes()-1, "only the set-up write")
	assert.Equal(t, before, e.pdEdges("acme"))
}

func TestGuardStopsMassRemoval(t *testing.T) {
	e := newEnv(t, 40, pdsim.Options{})
	ctx := context.Background()
	for i := range 20 {
		e.component(t, i, i+20)
		e.component(t, i+20)
	}
	e.strategy(t, mapping.StrategyBackstage)
	s := e.syncer(t, depsync.Config{MaxRemovalShare: 0.25, GuardMinRemovals: 5})
	_, err := s.Run(ctx, depsync.Request{}, "test")
	require.NoError(t, err)
	require.Len(t, e.pdEdges("acme"), 20)

	// The catalog loses half its dependsOn (say, a broken import).
	for i := range 10 {
		e.component(t, i)
	}
	writes := e.writes()
	rep, err := s.Run(ctx, depsync.Request{}, "test")
	require.NoError(t, err)
	require.NotNil(t, rep.Guard)
	assert.Equal(t, 10, rep.Guard.Removals)
	assert.Equal(t, 20, rep.Guard.Existing)
	assert.Contains(t, rep.Message, "nothing was applied")
	assert.Equal(t, writes, e.writes(), "no write at all")
	assert.Len(t, e.pdEdges("acme"), 20)

	rep, err = s.Run(ctx, depsync.Request{Force: true}, "test")
	require.NoError(t, err)
	assert.Nil(t, rep.Guard)
	assert.Len(t, e.pdEdges("acme"), 10)
}

func TestRefusedEdgesReportedOnceAndNotRetried(t *testing.T) {
	e := newEnv(t, 10, pdsim.Options{})
	ctx := context.Background()
	// A cycle in the catalog: c0 → c1 → c0, plus an unrelated edge c2 → c3.
	e.component(t, 0, 1)
	e.component(t, 1, 0)
	e.component(t, 2, 3)
	e.component(t, 3)
	e.strategy(t, mapping.StrategyBackstage)
	s := e.syncer(t, depsync.Config{})
	rep, err := s.Run(ctx, depsync.Request{}, "test")
	require.NoError(t, err)
	require.Len(t, rep.Errors, 1)
	assert.Equal(t, 400, rep.Errors[0].Status)
	assert.Equal(t, 2002, rep.Errors[0].Code)
	assert.Contains(t, rep.Errors[0].Message, "circular")
	assert.Len(t, rep.Added, 2, "the rest of the batch still lands")

	writes := e.writes()
	rep, err = s.Run(ctx, depsync.Request{}, "test")
	require.NoError(t, err)
	assert.Empty(t, rep.Errors)
	assert.Equal(t, writes, e.writes(), "a refused edge is not retried while the entity is unchanged")
	assert.NotEmpty(t, rep.Skipped)
}

func TestStormsSlowButFinish(t *testing.T) {
	e := newEnv(t, 200, pdsim.Options{})
	for i := range 200 {
		e.component(t, i, (i+1)%200, (i+2)%200, (i+3)%200)
	}
	// The last three would wrap around and close cycles: they depend on nothing.
	for i := 197; i < 200; i++ {
		e.component(t, i)
	}
	e.strategy(t, mapping.StrategyBackstage)
	e.sim.InjectFault(pdsim.Fault{PathPrefix: "/service_dependencies", Kind: pdsim.Fault429, Probability: 0.3, ResetSeconds: 0})
	e.sim.InjectFault(pdsim.Fault{PathPrefix: "/service_dependencies", Kind: pdsim.Fault5xx, Status: 503, Probability: 0.2})
	s := e.syncer(t, depsync.Config{BatchSize: 20})
	rep, err := s.Run(context.Background(), depsync.Request{}, "test")
	require.NoError(t, err)
	assert.Empty(t, rep.Errors)
	assert.Len(t, e.pdEdges("acme"), 197*3)
	e.sim.ClearFaults()
	rep, err = s.Run(context.Background(), depsync.Request{Refresh: true}, "test")
	require.NoError(t, err)
	assert.Empty(t, rep.Plan.Add)
	assert.Empty(t, rep.Plan.Remove)
}

func TestPeriodicJobRunsOnOneReplicaAtATime(t *testing.T) {
	e := newEnv(t, 50, pdsim.Options{})
	for i := range 49 {
		e.component(t, i, i+1)
	}
	e.component(t, 49)
	e.strategy(t, mapping.StrategyBackstage)
	cfg := depsync.Config{Interval: time.Hour}
	a := e.syncer(t, depsync.Config{Interval: cfg.Interval, Holder: "replica-a"})
	b := e.syncer(t, depsync.Config{Interval: cfg.Interval, Holder: "replica-b"})

	var mu sync.Mutex
	var reports []*depsync.Report
	var wg sync.WaitGroup
	for _, s := range []*depsync.Syncer{a, b, a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := s.Tick(context.Background())
			assert.NoError(t, err)
			if rep != nil {
				mu.Lock()
				reports = append(reports, rep)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, reports, 1, "one periodic run per period across replicas")
	assert.Len(t, e.pdEdges("acme"), 49)
}

// TestScale is the must-hold at 5,000 components and 15,000 dependsOn edges (1,000
// with -short).
func TestScale(t *testing.T) {
	n := 5000
	if testing.Short() {
		n = 1000
	}
	e := newEnv(t, n, pdsim.Options{})
	buildCatalog(t, e, n)
	e.strategy(t, mapping.StrategyBackstage)
	s := e.syncer(t, depsync.Config{})
	ctx := context.Background()

	rep, err := s.Run(ctx, depsync.Request{}, "test")
	require.NoError(t, err)
	require.Empty(t, rep.Errors)
	desired := map[string]bool{}
	v, err := e.store.View(ctx)
	require.NoError(t, err)
	for _, en := range v.Entities {
		for _, d := range en.DependsOn {
			desired[en.ServiceID+">"+v.Entities[d].ServiceID] = true
		}
	}
	assert.Equal(t, desired, e.pdEdges("acme"), "the first reconcile converges")
	t.Logf("first reconcile: %d reads, %d writes, %d edges", rep.PagerDutyReads, rep.PagerDutyWrites, len(desired))

	before := e.writes()
	rep, err = s.Run(ctx, depsync.Request{}, "test")
	require.NoError(t, err)
	assert.Equal(t, before, e.writes(), "no change, no PagerDuty writes")
	assert.Zero(t, rep.PagerDutyWrites)

	// One entity's dependsOn changes: only its edges change.
	e.component(t, 10, 500, 11)
	snapshot := e.pdEdges("acme")
	rep, err = s.Run(ctx, depsync.Request{EntityRefs: []string{compRef(10)}}, "test")
	require.NoError(t, err)
	after := e.pdEdges("acme")
	var changed []string
	for k := range snapshot {
		if !after[k] {
			changed = append(changed, "-"+k)
		}
	}
	for k := range after {
		if !snapshot[k] {
			changed = append(changed, "+"+k)
		}
	}
	assert.ElementsMatch(t, []string{"+PS00010>PS00500", "-PS00010>PS00012", "-PS00010>PS00013"}, changed)
	assert.Equal(t, 1, rep.PagerDutyReads)
	assert.Equal(t, 2, rep.PagerDutyWrites)
}

// buildCatalog stores n acme components where c(i) depends on c(i+1), c(i+2), c(i+3)
// (an acyclic chain) and c0 also on c10…c15: 3n edges in all.
func buildCatalog(t testing.TB, e *env, n int) {
	t.Helper()
	for i := range n {
		var deps []int
		for k := 1; k <= 3 && i+k < n; k++ {
			deps = append(deps, i+k)
		}
		if i == 0 {
			deps = append(deps, 10, 11, 12, 13, 14, 15)
		}
		e.component(t, i, deps...)
	}
}

// TestPeriodicRunReleasesItsRenewedLease: a periodic run long enough for its lease to
// be renewed still gives the lease up when it ends, so that the reconcile of changed
// entities (which shares the lease) runs at once instead of waiting for it to expire.
func TestPeriodicRunReleasesItsRenewedLease(t *testing.T) {
	e := newEnv(t, 2, pdsim.Options{})
	e.component(t, 0, 1)
	e.component(t, 1)
	e.strategy(t, mapping.StrategyBackstage)
	// One tick a second and a lease of two seconds, renewed every two thirds of one.
	s := e.syncer(t, depsync.Config{Interval: 12 * time.Second, ReadSlices: 12})
	s.SetMinLease(0)
	e.sim.InjectFault(pdsim.Fault{Kind: pdsim.FaultLatency, Latency: 1500 * time.Millisecond, Method: http.MethodGet, PathPrefix: "/service_dependencies"})
	ctx := context.Background()

	rep, err := s.Tick(ctx)
	require.NoError(t, err)
	require.NotNil(t, rep, "the first tick is due")
	require.Empty(t, rep.Errors)
	e.sim.ClearFaults()

	require.NoError(t, s.MarkChanged(ctx, compRef(0)))
	rep, err = s.RunChanged(ctx)
	require.NoError(t, err)
	require.NotNil(t, rep, "the lease is free once the periodic run has ended")
	assert.Equal(t, "catalog", rep.Trigger)
	assert.Equal(t, 1, rep.Services)
	rep, err = s.RunChanged(ctx)
	require.NoError(t, err)
	assert.Nil(t, rep, "the mark was cleared by the run that handled it")
}
