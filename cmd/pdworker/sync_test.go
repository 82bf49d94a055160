package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/app"
	"github.com/pdworker/pdworker/internal/config"
	"github.com/pdworker/pdworker/internal/depsync"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
)

// `pdworker sync --dry-run` reaches the NATS of a running pdworker, prints the plan as
// JSON and writes nothing to PagerDuty, though the plan has a dependency to add.
func TestSyncDryRunCommand(t *testing.T) {
	seed := pdsim.DemoSeed()
	seed.Accounts[0].Services = []pdsim.ServiceSeed{
		{ID: "PCHKOUT", Name: "Checkout", EscalationPolicyID: "PACME01"},
		{ID: "PPAYMNT", Name: "Payments", EscalationPolicyID: "PACME02"},
	}
	sim := pdsim.New(pdsim.Options{})
	require.NoError(t, sim.Load(seed))
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	cfg := &config.Config{
		HTTP:            config.HTTP{Addr: "127.0.0.1:0", MaxBodyBytes: 1 << 16},
		NATS:            config.NATS{EmbeddedListen: "127.0.0.1:0", DataDir: t.TempDir(), Replicas: 1},
		PagerDuty:       config.PagerDuty{RateLimit: 900, Accounts: []pagerduty.AccountConfig{{ID: "default", Default: true, APIURL: simSrv.URL, EventsURL: simSrv.URL, Token: secret.Value(pdsim.DemoAcmeToken)}}},
		Auth:            config.Auth{Disabled: true, PluginID: "pagerduty"},
		DepsyncInterval: time.Hour,
		// The running service must not reconcile the seeded dependency itself before
		// the command plans it.
		ReadOnly:          true,
		ActionWaitTimeout: 10 * time.Second,
		WorkerConcurrency: 2,
		ShutdownTimeout:   10 * time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.New(ctx, cfg, app.Options{}, zerolog.Nop())
	require.NoError(t, err)
	a.Start()
	t.Cleanup(a.Stop)

	// The catalog says checkout depends on payments, and the catalog is the truth.
	nc, err := nats.Connect(a.NATSURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	store, err := mapping.NewStore(ctx, js)
	require.NoError(t, err)
	_, err = store.PutSetting(ctx, mapping.SettingDependencySyncStrategy, mapping.StrategyBackstage)
	require.NoError(t, err)
	_, err = store.PutEntity(ctx, mapping.Entity{Ref: "component:default/checkout", ServiceID: "PCHKOUT", DependsOn: []string{"component:default/payments"}})
	require.NoError(t, err)
	_, err = store.PutEntity(ctx, mapping.Entity{Ref: "component:default/payments", ServiceID: "PPAYMNT"})
	require.NoError(t, err)

	t.Setenv("NATS_URL", a.NATSURL())
	t.Setenv("PAGERDUTY_API_TOKEN", pdsim.DemoAcmeToken)
	t.Setenv("PAGERDUTY_API_URL", simSrv.URL)
	t.Setenv("LOG_LEVEL", "warn")
	t.Setenv("API_TOKENS", "")
	var stdout, stderr strings.Builder
	code := run(ctx, []string{"sync", "--dry-run"}, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	var rep depsync.Report
	require.NoError(t, json.Unmarshal([]byte(stdout.String()), &rep), stdout.String())
	assert.True(t, rep.DryRun)
	assert.Equal(t, "cli", rep.Trigger)
	require.Len(t, rep.Plan.Add, 1, stdout.String())
	assert.Equal(t, "PCHKOUT", rep.Plan.Add[0].Dependent)
	assert.Equal(t, "PPAYMNT", rep.Plan.Add[0].Supporting)
	assert.Empty(t, rep.Added)
	assert.Zero(t, sim.Count("POST", "")+sim.Count("PUT", "")+sim.Count("DELETE", ""), "a dry run writes nothing")
}
