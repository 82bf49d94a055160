package actions_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/actions"
	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
)

// The three kinds of account the grouping fallback chain distinguishes.
func testSeed() pdsim.Seed {
	return pdsim.Seed{Accounts: []pdsim.AccountSeed{
		{ID: "aiops", Tokens: []string{"tok-aiops"}, Abilities: pdsim.AIOpsAbilities(), AlertGroupingSettingsAPI: true,
			EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PAIOPS1", Name: "AIOps EP"}, {ID: "PAIOPS2", Name: "Other EP"}}},
		{ID: "legacy", Tokens: []string{"tok-legacy"}, Abilities: pdsim.AIOpsAbilities(), AlertGroupingSettingsAPI: false,
			EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PLEGACY", Name: "Legacy EP"}}},
		{ID: "basic", Tokens: []string{"tok-basic"}, Abilities: pdsim.StandardAbilities(),
			EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PBASIC1", Name: "Basic EP"}}},
	}}
}

type env struct {
	sim    *pdsim.Sim
	action *actions.ServiceCreate
	jobs   *events.Jobs
}

// newEnv starts the simulator and a job store; tune, if given, adjusts the client options.
func newEnv(t *testing.T, readOnly bool, tune ...func(*pagerduty.Options)) *env {
	t.Helper()
	sim := pdsim.New(pdsim.Options{})
	require.NoError(t, sim.Load(testSeed()))
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	var accs []pagerduty.AccountConfig
	for i, a := range testSeed().Accounts {
		accs = append(accs, pagerduty.AccountConfig{ID: a.ID, Default: i == 0, APIURL: srv.URL, EventsURL: srv.URL, Token: secret.Value(a.Tokens[0])})
	}
	opts := pagerduty.Options{RateLimit: 6000, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}
	for _, f := range tune {
		f(&opts)
	}
	accounts, err := pagerduty.NewAccounts(accs, opts, zerolog.Nop())
	require.NoError(t, err)
	_, _, js := natstest.Start(t)
	jobs, err := events.NewJobs(context.Background(), js)
	require.NoError(t, err)
	return &env{
		sim:    sim,
		jobs:   jobs,
		action: actions.NewServiceCreate(accounts, jobs, actions.ServiceCreateConfig{ReadOnly: readOnly}, zerolog.Nop()),
	}
}

func (e *env) run(t *testing.T, jobID string, in actions.ServiceCreateInput) (actions.ServiceCreateOutput, error) {
	t.Helper()
	raw, err := json.Marshal(in)
	require.NoError(t, err)
	out, err := e.action.Run(context.Background(), jobID, raw)
	var o actions.ServiceCreateOutput
	if err == nil {
		require.NoError(t, json.Unmarshal(out, &o))
	}
	return o, err
}

// calls counts the requests with exactly this method and path.
func (e *env) calls(method, path string) int {
	n := 0
	for _, r := range e.sim.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// writes counts the requests that change PagerDuty.
func (e *env) writes() int {
	return e.sim.Count("POST", "") + e.sim.Count("PUT", "") + e.sim.Count("DELETE", "")
}

func TestCreateAppliesGroupingThroughTheBestMechanism(t *testing.T) {
	cases := []struct {
		name, ep, grouping       string
		wantAccount, wantApplied string
		wantWarning              string
		settings, params         bool
	}{
		{"settings API", "PAIOPS1", "intelligent", "aiops", "intelligent", "", true, false},
		{"settings API, newer type", "PAIOPS1", "content_based_intelligent", "aiops", "content_based_intelligent", "", true, false},
		{"service-level fallback", "PLEGACY", "time", "legacy", "time", "alert_grouping_parameters", false, true},
		{"newer type without settings API", "PLEGACY", "content_based_intelligent", "legacy", "none", "needs the Alert Grouping Settings API", false, false},
		{"no abilities", "PBASIC1", "content_based", "basic", "none", "lacks the alert grouping abilities", false, false},
		{"none asked", "PBASIC1", "", "basic", "none", "", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, false)
			out, err := e.run(t, "job-"+tc.wantAccount, actions.ServiceCreateInput{Name: "checkout", Description: "Checkout API", EscalationPolicyID: tc.ep, AlertGrouping: tc.grouping})
			require.NoError(t, err)

			svcs := e.sim.Services(tc.wantAccount)
			require.Len(t, svcs, 1, "exactly one service")
			svc := svcs[0]
			require.Len(t, svc.Integrations, 1, "exactly one integration")
			assert.Equal(t, pagerduty.VendorBackstage, svc.Integrations[0].VendorID)

			assert.Equal(t, svc.ID, out.ServiceID)
			assert.Equal(t, svc.Integrations[0].IntegrationKey, out.IntegrationKey)
			assert.Contains(t, out.ServiceURL, "/service-directory/"+svc.ID)
			assert.Equal(t, tc.wantAccount, out.Account)
			assert.Equal(t, tc.wantApplied, out.AlertGrouping)
			assert.True(t, out.Created)
			if tc.wantWarning == "" {
				assert.Empty(t, out.Warnings)
			} else {
				require.Len(t, out.Warnings, 1)
				assert.Contains(t, out.Warnings[0], tc.wantWarning)
			}
			if tc.settings {
				settings := e.sim.AlertGroupingSettings(tc.wantAccount)
				require.Len(t, settings, 1)
				assert.Equal(t, tc.grouping, settings[0].Type)
				assert.Equal(t, []string{svc.ID}, settings[0].ServiceIDs)
			}
			if tc.params {
				require.NotNil(t, svc.AlertGroupingParameters)
			} else {
				assert.Nil(t, svc.AlertGroupingParameters)
			}
		})
	}
}

func TestWarmHappyPathCostsOnlyTheWrites(t *testing.T) {
	e := newEnv(t, false)
	_, err := e.run(t, "warm-1", actions.ServiceCreateInput{Name: "first", Description: "d", EscalationPolicyID: "PAIOPS1", AlertGrouping: "intelligent"})
	require.NoError(t, err)
	e.sim.ResetRequests()

	_, err = e.run(t, "warm-2", actions.ServiceCreateInput{Name: "second", Description: "d", EscalationPolicyID: "PAIOPS1", AlertGrouping: "intelligent"})
	require.NoError(t, err)
	assert.Equal(t, 1, e.calls("POST", "/services"), "one service create")
	assert.Equal(t, 1, e.calls("POST", "/alert_grouping_settings"), "one grouping write")
	assert.Equal(t, 3, len(e.sim.Requests()), "service + grouping + integration, no reads: %+v", e.sim.Requests())

	e.sim.ResetRequests()
	_, err = e.run(t, "warm-3", actions.ServiceCreateInput{Name: "third", Description: "d", EscalationPolicyID: "PAIOPS1"})
	require.NoError(t, err)
	assert.Equal(t, 2, len(e.sim.Requests()), "service + integration only: %+v", e.sim.Requests())
}

func TestFinishedJobRerunWritesNothing(t *testing.T) {
	e := newEnv(t, false)
	in := actions.ServiceCreateInput{Name: "resumable", Description: "d", EscalationPolicyID: "PAIOPS1", AlertGrouping: "time"}
	first, err := e.run(t, "job-rerun", in)
	require.NoError(t, err)
	writes := e.writes()

	// The same job again (a redelivered message) answers from its checkpoint.
	again, err := e.run(t, "job-rerun", in)
	require.NoError(t, err)
	assert.Equal(t, first, again)
	assert.Equal(t, writes, e.writes(), "a finished job writes nothing again")
	assert.Len(t, e.sim.Services("aiops"), 1)
}

func TestCrashAfterServiceCreatedBeforeIntegration(t *testing.T) {
	e := newEnv(t, false)
	// The integration call is cut off: the service exists, the integration not.
	e.sim.InjectFault(pdsim.Fault{Method: "POST", PathPrefix: "/services/", Kind: pdsim.FaultDrop, Count: 1})
	in := actions.ServiceCreateInput{Name: "crashy", Description: "d", EscalationPolicyID: "PAIOPS1"}
	_, err := e.run(t, "job-crash", in)
	require.Error(t, err)
	assert.True(t, pagerduty.IsRetryable(err), "a dropped connection is retryable: %v", err)
	require.Len(t, e.sim.Services("aiops"), 1)
	assert.Empty(t, e.sim.Services("aiops")[0].Integrations)

	out, err := e.run(t, "job-crash", in)
	require.NoError(t, err)
	svcs := e.sim.Services("aiops")
	require.Len(t, svcs, 1, "one service")
	require.Len(t, svcs[0].Integrations, 1, "one integration")
	assert.True(t, out.Created)
	assert.Equal(t, svcs[0].Integrations[0].IntegrationKey, out.IntegrationKey)
}

func TestAnswerLostAfterWritesIsNotRepeated(t *testing.T) {
	e := newEnv(t, false)
	in := actions.ServiceCreateInput{Name: "lost-answers", Description: "d", EscalationPolicyID: "PAIOPS1"}

	// PagerDuty creates the service but the answer is lost.
	e.sim.InjectFault(pdsim.Fault{Method: "POST", PathPrefix: "/services", Kind: pdsim.Fault5xxAfter, Count: 1})
	_, err := e.run(t, "job-lost", in)
	require.Error(t, err)
	require.True(t, pagerduty.IsRetryable(err), "%v", err)
	require.Len(t, e.sim.Services("aiops"), 1)

	// The rerun finds that service; then PagerDuty creates the integration and the
	// answer is lost again.
	e.sim.InjectFault(pdsim.Fault{Method: "POST", PathPrefix: "/services/", Kind: pdsim.Fault5xxAfter, Count: 1})
	_, err = e.run(t, "job-lost", in)
	require.Error(t, err)
	require.True(t, pagerduty.IsRetryable(err), "%v", err)
	require.Len(t, e.sim.Services("aiops")[0].Integrations, 1)

	// The third run finds the integration instead of creating another.
	out, err := e.run(t, "job-lost", in)
	require.NoError(t, err)
	svcs := e.sim.Services("aiops")
	require.Len(t, svcs, 1, "one service")
	require.Len(t, svcs[0].Integrations, 1, "one integration")
	assert.Equal(t, svcs[0].Integrations[0].IntegrationKey, out.IntegrationKey)
	assert.True(t, out.Created, "the service was created by this job, not adopted")
	assert.Empty(t, out.Warnings)
}

// PagerDuty keeps one alert grouping setting per service: a rerun after the setting's
// answer was lost finds it instead of failing on a second create.
func TestGroupingAnswerLostIsNotRepeated(t *testing.T) {
	e := newEnv(t, false)
	in := actions.ServiceCreateInput{Name: "grouped", Description: "d", EscalationPolicyID: "PAIOPS1", AlertGrouping: "intelligent"}

	e.sim.InjectFault(pdsim.Fault{Method: "POST", PathPrefix: "/alert_grouping_settings", Kind: pdsim.Fault5xxAfter, Count: 1})
	_, err := e.run(t, "job-grouping-lost", in)
	require.Error(t, err)
	require.True(t, pagerduty.IsRetryable(err), "%v", err)
	require.Len(t, e.sim.AlertGroupingSettings("aiops"), 1)

	out, err := e.run(t, "job-grouping-lost", in)
	require.NoError(t, err)
	assert.Equal(t, "intelligent", out.AlertGrouping)
	assert.Empty(t, out.Warnings)
	assert.True(t, out.Created)
	assert.Equal(t, 1, e.calls("POST", "/alert_grouping_settings"), "the setting is not created twice")
	settings := e.sim.AlertGroupingSettings("aiops")
	require.Len(t, settings, 1)
	assert.Equal(t, []string{out.ServiceID}, settings[0].ServiceIDs)
	svcs := e.sim.Services("aiops")
	require.Len(t, svcs, 1)
	assert.Len(t, svcs[0].Integrations, 1)
}

// A PagerDuty call that outlives its deadline says nothing about the request: the job
// fails for now (to be run again), not for good.
func TestTimedOutCallIsRetried(t *testing.T) {
	e := newEnv(t, false, func(o *pagerduty.Options) { o.CallTimeout = 300 * time.Millisecond })
	in := actions.ServiceCreateInput{Name: "slow", Description: "d", EscalationPolicyID: "PAIOPS1"}

	e.sim.InjectFault(pdsim.Fault{Method: "POST", PathPrefix: "/services", Kind: pdsim.FaultLatency, Latency: time.Minute, Count: 1})
	_, err := e.run(t, "job-slow", in)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	_, permanent := actions.AsError(err)
	assert.False(t, permanent, "a timeout is not a permanent failure: %v", err)

	out, err := e.run(t, "job-slow", in)
	require.NoError(t, err)
	assert.True(t, out.Created)
	svcs := e.sim.Services("aiops")
	require.Len(t, svcs, 1, "one service")
	assert.Equal(t, svcs[0].ID, out.ServiceID)
}

func TestSameNamedService(t *testing.T) {
	e := newEnv(t, false)
	_, err := e.run(t, "owner", actions.ServiceCreateInput{Name: "shared", Description: "d", EscalationPolicyID: "PAIOPS1"})
	require.NoError(t, err)

	t.Run("same escalation policy is adopted", func(t *testing.T) {
		out, err := e.run(t, "adopter", actions.ServiceCreateInput{Name: "shared", Description: "d", EscalationPolicyID: "PAIOPS1", AlertGrouping: "intelligent"})
		require.NoError(t, err)
		assert.False(t, out.Created)
		require.NotEmpty(t, out.Warnings)
		assert.Contains(t, out.Warnings[0], "adopted the existing service")
		svcs := e.sim.Services("aiops")
		require.Len(t, svcs, 1)
		assert.Len(t, svcs[0].Integrations, 1, "the existing Backstage integration is reused")
		assert.Equal(t, svcs[0].Integrations[0].IntegrationKey, out.IntegrationKey)
	})
	t.Run("another escalation policy is a conflict", func(t *testing.T) {
		_, err := e.run(t, "conflict", actions.ServiceCreateInput{Name: "shared", Description: "d", EscalationPolicyID: "PAIOPS2"})
		ae, ok := actions.AsError(err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, actions.CodeConflict, ae.Code)
		assert.Contains(t, ae.Message, "/service-directory/")
		assert.Len(t, e.sim.Services("aiops"), 1)
	})
}

func TestBadRequestsCreateNothing(t *testing.T) {
	e := newEnv(t, false)
	ro := newEnv(t, true)
	cases := []struct {
		name string
		e    *env
		in   actions.ServiceCreateInput
		code string
	}{
		{"unknown account", e, actions.ServiceCreateInput{Name: "a", Description: "d", EscalationPolicyID: "PAIOPS1", Account: "nope"}, actions.CodeUnknownAccount},
		{"unknown escalation policy", e, actions.ServiceCreateInput{Name: "a", Description: "d", EscalationPolicyID: "PNOPE99"}, actions.CodeUnknownEscalationPolicy},
		{"policy of another account", e, actions.ServiceCreateInput{Name: "a", Description: "d", EscalationPolicyID: "PBASIC1", Account: "aiops"}, actions.CodeUnknownEscalationPolicy},
		{"read-only", ro, actions.ServiceCreateInput{Name: "a", Description: "d", EscalationPolicyID: "PAIOPS1"}, actions.CodeReadOnly},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.e.run(t, "bad-"+tc.code, tc.in)
			ae, ok := actions.AsError(err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, tc.code, ae.Code)
			assert.Equal(t, 0, tc.e.writes(), "nothing written to PagerDuty")
		})
	}
}

func TestAccountResolution(t *testing.T) {
	e := newEnv(t, false)
	out, err := e.run(t, "resolve", actions.ServiceCreateInput{Name: "eu-thing", Description: "d", EscalationPolicyID: "PBASIC1"})
	require.NoError(t, err)
	assert.Equal(t, "basic", out.Account, "the account that owns the escalation policy")
	assert.Len(t, e.sim.Services("basic"), 1)
	assert.Empty(t, e.sim.Services("aiops"))
}
