package depsync_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/depsync"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
)

// env is a real embedded NATS, the simulator over HTTP with accounts "acme" (default)
// and "globex", each with n services PS00000…, and a mapping store.
type env struct {
	sim      *pdsim.Sim
	url      string // the simulator's base URL
	js       jetstream.JetStream
	store    *mapping.Store
	accounts *pagerduty.Accounts
}

func svc(i int) string       { return fmt.Sprintf("PS%05d", i) }
func gsvc(i int) string      { return fmt.Sprintf("PG%05d", i) }
func compRef(i int) string   { return fmt.Sprintf("component:default/c%05d", i) }
func globexRef(i int) string { return fmt.Sprintf("component:default/g%05d", i) }

func newEnv(t testing.TB, n int, simOpts pdsim.Options) *env {
	t.Helper()
	return newEnvWith(t, n, simOpts, pagerduty.Options{RateLimit: 1 << 20, CallTimeout: 10 * time.Second, RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, MaxRetryAfter: 50 * time.Millisecond})
}

// newEnvWith is newEnv with the PagerDuty client's options (its rate budget) chosen.
func newEnvWith(t testing.TB, n int, simOpts pdsim.Options, pdOpts pagerduty.Options) *env {
	t.Helper()
	if simOpts.RateLimit == 0 {
		simOpts.RateLimit = 1 << 30
	}
	sim := pdsim.New(simOpts)
	for _, a := range []struct{ id, prefix string }{{"acme", "PS"}, {"globex", "PG"}} {
		seed := pdsim.AccountSeed{ID: a.id, Subdomain: a.id, Region: "us", Tokens: []string{"tok-" + a.id},
			EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PEP" + a.prefix, Name: "EP"}}}
		for i := range n {
			seed.Services = append(seed.Services, pdsim.ServiceSeed{ID: fmt.Sprintf("%s%05d", a.prefix, i), Name: fmt.Sprintf("%s service %d", a.id, i), EscalationPolicyID: "PEP" + a.prefix})
		}
		require.NoError(t, sim.AddAccount(seed))
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	accts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{
		{ID: "acme", Default: true, APIURL: srv.URL, EventsURL: srv.URL, Token: secret.Value("tok-acme")},
		{ID: "globex", APIURL: srv.URL, EventsURL: srv.URL, Token: secret.Value("tok-globex")},
	}, pdOpts, zerolog.Nop())
	require.NoError(t, err)
	_, _, js := natstest.Start(t)
	store, err := mapping.NewStore(context.Background(), js)
	require.NoError(t, err)
	return &env{sim: sim, url: srv.URL, js: js, store: store, accounts: accts}
}

func (e *env) syncer(t testing.TB, cfg depsync.Config) *depsync.Syncer {
	t.Helper()
	if cfg.RetryWait == 0 {
		cfg.RetryWait = 10 * time.Millisecond
	}
	s, err := depsync.New(context.Background(), e.js, e.store, e.accounts, cfg, zerolog.Nop())
	require.NoError(t, err)
	return s
}

func (e *env) strategy(t testing.TB, v string) {
	t.Helper()
	_, err := e.store.PutSetting(context.Background(), mapping.SettingDependencySyncStrategy, v)
	require.NoError(t, err)
}

// component stores an acme component c<i> annotated with service PS<i>.
func (e *env) component(t testing.TB, i int, deps ...int) {
	t.Helper()
	var refs []string
	for _, d := range deps {
		refs = append(refs, compRef(d))
	}
	_, err := e.store.PutEntity(context.Background(), mapping.Entity{Ref: compRef(i), ServiceID: svc(i), DependsOn: refs, Etag: fmt.Sprint(time.Now().UnixNano())})
	require.NoError(t, err)
}

// pdEdges returns the account's dependencies as "dependent>supporting".
func (e *env) pdEdges(account string) map[string]bool {
	out := map[string]bool{}
	for _, d := range e.sim.Dependencies(account) {
		out[d.Dependent+">"+d.Supporting] = true
	}
	return out
}

// associate creates dependencies directly on the simulator (PagerDuty-side drift).
func (e *env) associate(t testing.TB, account string, pairs ...[2]string) {
	t.Helper()
	c, err := e.accounts.Client(account)
	require.NoError(t, err)
	var deps []pagerduty.Dependency
	for _, p := range pairs {
		deps = append(deps, pagerduty.ServiceDependency(p[0], p[1]))
	}
	_, err = c.AssociateDependencies(context.Background(), deps)
	require.NoError(t, err)
}

func (e *env) writes() int {
	return e.sim.Count("POST", "/service_dependencies/")
}
