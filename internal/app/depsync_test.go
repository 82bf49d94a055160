package app

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/depsync"
	"github.com/pdworker/pdworker/internal/mapping"
)

// A dry run — `depsync.run {"dryRun":true}` on NATS, or `pdworker sync --dry-run`
// (app.Sync) — shows the plan and writes nothing; a real run then applies that plan.
func TestDryRunShowsThePlanAndWritesNothing(t *testing.T) {
	e := newCatalogEnv(t)
	ctx := context.Background()
	_, js := natsClient(t, e.app.NATSURL())

	// Reports are read from the stream, so none is missed however early it came.
	cons, err := js.OrderedConsumer(ctx, events.StreamDepsync, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectDepsyncReport}})
	require.NoError(t, err)
	reports := make(chan jetstream.Msg, 8)
	cc, err := cons.Consume(func(m jetstream.Msg) { reports <- m })
	require.NoError(t, err)
	t.Cleanup(cc.Stop)
	// The periodic reconcile runs once at start; let it pass first. The snapshots then
	// go straight into the store, so no catalog change triggers a reconcile of its
	// own: only the runs below plan or write.
	waitReport(t, reports, func(r depsync.Report) bool { return r.Trigger == "periodic" })
	store, err := mapping.NewStore(ctx, js)
	require.NoError(t, err)
	_, err = store.PutSetting(ctx, mapping.SettingDependencySyncStrategy, mapping.StrategyBackstage)
	require.NoError(t, err)
	_, err = store.PutEntity(ctx, mapping.Entity{Ref: "component:default/checkout", ServiceID: acmeService(1), DependsOn: []string{"component:default/payments"}})
	require.NoError(t, err)
	_, err = store.PutEntity(ctx, mapping.Entity{Ref: "component:default/payments", ServiceID: acmeService(2)})
	require.NoError(t, err)
	want := depsync.Edge{Account: "acme", Dependent: acmeService(1), Supporting: acmeService(2)}

	run := func(dry bool) depsync.Report {
		t.Helper()
		body, _ := json.Marshal(depsync.Request{DryRun: dry})
		_, err := js.Publish(ctx, "depsync.run", body)
		require.NoError(t, err)
		return waitReport(t, reports, func(r depsync.Report) bool { return r.Trigger == "request" && r.DryRun == dry })
	}
	edgeKey := func(es []depsync.Edge) []string {
		var out []string
		for _, x := range es {
			out = append(out, x.Account+":"+x.Dependent+">"+x.Supporting)
		}
		return out
	}

	rep := run(true)
	assert.True(t, rep.DryRun)
	assert.Equal(t, edgeKey([]depsync.Edge{want}), edgeKey(rep.Plan.Add))
	assert.Empty(t, rep.Added)
	assert.Zero(t, e.sim.Count(http.MethodPost, "/service_dependencies"), "a dry run writes nothing")

	cfg := testConfig(t, "http://unused", testSeed(), e.app.NATSURL())
	cfg.PagerDuty.Accounts = e.app.cfg.PagerDuty.Accounts
	cli, err := Sync(ctx, cfg, depsync.Request{DryRun: true}, zerolog.Nop())
	require.NoError(t, err)
	assert.Equal(t, "cli", cli.Trigger)
	assert.Equal(t, edgeKey([]depsync.Edge{want}), edgeKey(cli.Plan.Add))
	assert.Zero(t, e.sim.Count(http.MethodPost, "/service_dependencies"), "pdworker sync --dry-run writes nothing")
	assert.Empty(t, e.edges("acme"))

	assert.Equal(t, 1.0, metric(t, e.app, `pdworker_depsync_runs_total{outcome="dry_run",trigger="request"}`))

	applied := run(false)
	assert.Equal(t, edgeKey([]depsync.Edge{want}), edgeKey(applied.Added))
	assert.Equal(t, []string{acmeService(1) + ">" + acmeService(2)}, e.edges("acme"))
	assert.Equal(t, 1.0, metric(t, e.app, `pdworker_depsync_edges_total{op="added"}`))
}

// waitReport returns the first depsync.report that matches.
func waitReport(t *testing.T, reports chan jetstream.Msg, match func(depsync.Report) bool) depsync.Report {
	t.Helper()
	for {
		select {
		case m := <-reports:
			var rep depsync.Report
			require.NoError(t, json.Unmarshal(m.Data(), &rep))
			if match(rep) {
				return rep
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no matching depsync.report")
		}
	}
}
