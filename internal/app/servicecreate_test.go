package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/pdsim"
)

func TestCreateServiceOverHTTP(t *testing.T) {
	seed := testSeed()
	sim, url := simulator(t, pdsim.Options{}, seed)
	a := startApp(t, testConfig(t, url, seed, ""), fastOptions(), zerolog.Nop())

	resp := create(t, a, "", `{"name":"checkout","description":"Checkout API","escalationPolicyId":"PAIOPS1","alertGrouping":"intelligent"}`)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	assert.Equal(t, "application/json; charset=utf-8", resp.header.Get("Content-Type"))

	svcs := sim.Services("aiops")
	require.Len(t, svcs, 1)
	svc := svcs[0]
	require.Len(t, svc.Integrations, 1)
	settings := sim.AlertGroupingSettings("aiops")
	require.Len(t, settings, 1)
	assert.Equal(t, "intelligent", settings[0].Type)

	out := resp.json(t)
	assert.Equal(t, map[string]any{
		"serviceId":      svc.ID,
		"serviceUrl":     "https://aiops.pagerduty.com/service-directory/" + svc.ID,
		"integrationKey": svc.Integrations[0].IntegrationKey,
		"account":        "aiops",
		"alertGrouping":  "intelligent",
		"created":        true,
		"warnings":       []any{},
	}, out)
	assert.Len(t, svc.Integrations[0].IntegrationKey, 32)

	// The outcome is counted once the result is stored (just after the answer).
	require.Eventually(t, func() bool {
		return metric(t, a, `pdworker_action_results_total{action="pagerduty:service:create",code="",status="succeeded"}`) == 1
	}, 5*time.Second, 10*time.Millisecond)
}

func TestActionsListServesTheSchemas(t *testing.T) {
	seed := testSeed()
	_, url := simulator(t, pdsim.Options{}, seed)
	a := startApp(t, testConfig(t, url, seed, ""), fastOptions(), zerolog.Nop())

	resp := call(t, a, http.MethodGet, "/api/pagerduty/actions", testToken, nil, "")
	require.Equal(t, http.StatusOK, resp.status)
	var list []struct {
		ID          string `json:"id"`
		Description string `json:"description"`
		Schema      struct {
			Input  map[string]any `json:"input"`
			Output map[string]any `json:"output"`
		} `json:"schema"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &list))
	require.Len(t, list, 1)
	assert.Equal(t, "pagerduty:service:create", list[0].ID)
	assert.NotEmpty(t, list[0].Description)
	assert.Equal(t, []any{"name", "description", "escalationPolicyId"}, list[0].Schema.Input["required"])
	assert.Contains(t, list[0].Schema.Output["properties"], "integrationKey")
}

func TestCreateServiceOverNATS(t *testing.T) {
	seed := testSeed()
	sim, url := simulator(t, pdsim.Options{}, seed)
	a := startApp(t, testConfig(t, url, seed, ""), fastOptions(), zerolog.Nop())
	nc, js := natsClient(t, a.NATSURL())
	results := subscribe(t, nc, "scaffolder.result.job-nats-1")
	publishJob(t, js, "job-nats-1", `{"id":"job-nats-1","input":{"name":"payments","description":"Payments","escalationPolicyId":"PLEGACY","alertGrouping":"time"}}`)

	var res events.JobResult
	select {
	case m := <-results:
		require.NoError(t, json.Unmarshal(m.Data, &res))
	case <-time.After(20 * time.Second):
		t.Fatal("no result published")
	}
	require.Equal(t, "succeeded", res.Status, "%+v", res.Error)
	var out map[string]any
	require.NoError(t, json.Unmarshal(res.Output, &out))
	svcs := sim.Services("legacy")
	require.Len(t, svcs, 1)
	assert.Equal(t, svcs[0].ID, out["serviceId"])
	assert.Equal(t, "time", out["alertGrouping"], "applied through alert_grouping_parameters")
	assert.Contains(t, out["warnings"].([]any)[0], "alert_grouping_parameters")
	require.NotNil(t, svcs[0].AlertGroupingParameters)

	// The result is kept for late callers.
	kv, err := js.KeyValue(context.Background(), "action_results")
	require.NoError(t, err)
	entry, err := kv.Get(context.Background(), "job-nats-1")
	require.NoError(t, err)
	assert.JSONEq(t, string(mustJSON(t, res)), string(entry.Value()))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestAccountWithoutGroupingGetsAServiceAndAWarning(t *testing.T) {
	seed := testSeed()
	sim, url := simulator(t, pdsim.Options{}, seed)
	a := startApp(t, testConfig(t, url, seed, ""), fastOptions(), zerolog.Nop())

	resp := create(t, a, "", `{"name":"storefront","description":"Storefront","escalationPolicyId":"PBASIC1","alertGrouping":"content_based"}`)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	out := resp.json(t)
	assert.Equal(t, "none", out["alertGrouping"])
	assert.Equal(t, "basic", out["account"])
	warnings := out["warnings"].([]any)
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0], "lacks the alert grouping abilities")
	require.Len(t, sim.Services("basic"), 1, "never a second service")
}

func TestSameIdempotencyKeyFiftyTimesAtOnce(t *testing.T) {
	seed := testSeed()
	sim, url := simulator(t, pdsim.Options{}, seed)
	a := startApp(t, testConfig(t, url, seed, ""), fastOptions(), zerolog.Nop())

	body := `{"name":"inventory","description":"Inventory","escalationPolicyId":"PAIOPS1","alertGrouping":"time"}`
	const n = 50
	answers := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = create(t, a, "template-inventory", body)
		}()
	}
	wg.Wait()
	for i, r := range answers {
		require.Equal(t, http.StatusOK, r.status, "answer %d: %s", i, r.body)
		assert.JSONEq(t, string(answers[0].body), string(r.body), "answer %d differs", i)
	}
	svcs := sim.Services("aiops")
	require.Len(t, svcs, 1, "one service")
	assert.Len(t, svcs[0].Integrations, 1, "one integration")
	assert.Len(t, sim.AlertGroupingSettings("aiops"), 1, "one grouping setting")

	// Later, the same key answers from the stored result without touching PagerDuty.
	before := len(sim.Requests())
	again := create(t, a, "template-inventory", body)
	require.Equal(t, http.StatusOK, again.status)
	assert.JSONEq(t, string(answers[0].body), string(again.body))
	assert.Equal(t, before, len(sim.Requests()))

	// The same key for another request is refused.
	other := create(t, a, "template-inventory", strings.Replace(body, "Inventory", "Something else", 1))
	require.Equal(t, http.StatusConflict, other.status)
	assert.Contains(t, other.errorMessage(t), "Idempotency-Key was already used for a different request")
}

func TestSameNamedServiceOverHTTP(t *testing.T) {
	seed := testSeed()
	seed.Accounts[0].Services = []pdsim.ServiceSeed{{ID: "PEXIST1", Name: "billing", EscalationPolicyID: "PAIOPS1"}}
	sim, url := simulator(t, pdsim.Options{}, seed)
	a := startApp(t, testConfig(t, url, seed, ""), fastOptions(), zerolog.Nop())

	resp := create(t, a, "", `{"name":"billing","description":"Billing","escalationPolicyId":"PAIOPS1"}`)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	out := resp.json(t)
	assert.Equal(t, "PEXIST1", out["serviceId"])
	assert.Equal(t, false, out["created"])
	assert.Contains(t, out["warnings"].([]any)[0], "adopted the existing service PEXIST1")

	conflict := create(t, a, "", `{"name":"billing","description":"Billing","escalationPolicyId":"PAIOPS2"}`)
	require.Equal(t, http.StatusConflict, conflict.status, "%s", conflict.body)
	assert.Contains(t, conflict.errorMessage(t), "https://aiops.pagerduty.com/service-directory/PEXIST1")

	svcs := sim.Services("aiops")
	require.Len(t, svcs, 1)
	assert.Len(t, svcs[0].Integrations, 1)
}

func TestBadRequestsAreRefusedAndCreateNothing(t *testing.T) {
	seed := testSeed()
	sim, url := simulator(t, pdsim.Options{}, seed)
	a := startApp(t, testConfig(t, url, seed, ""), fastOptions(), zerolog.Nop())
	roCfg := testConfig(t, url, seed, "")
	roCfg.ReadOnly = true
	ro := startApp(t, roCfg, fastOptions(), zerolog.Nop())

	valid := `"description":"d","escalationPolicyId":"PAIOPS1"`
	cases := []struct {
		name    string
		app     *App
		token   string
		body    string
		status  int
		message string
		field   string
	}{
		{"no token", a, "", `{"name":"a",` + valid + `}`, 401, "missing bearer token", ""},
		{"wrong token", a, "not-the-token", `{"name":"a",` + valid + `}`, 401, "not accepted", ""},
		{"invalid JSON", a, testToken, `{"name":`, 400, "not valid JSON", ""},
		{"missing field", a, testToken, `{` + valid + `}`, 400, "invalid input", "/name"},
		{"empty field", a, testToken, `{"name":"",` + valid + `}`, 400, "invalid input", "/name"},
		{"oversized field", a, testToken, `{"name":"` + strings.Repeat("n", 300) + `",` + valid + `}`, 400, "invalid input", "/name"},
		{"wrong type", a, testToken, `{"name":["a"],` + valid + `}`, 400, "invalid input", "/name"},
		{"unknown alertGrouping", a, testToken, `{"name":"a",` + valid + `,"alertGrouping":"smart"}`, 400, "invalid input", "/alertGrouping"},
		{"unknown field", a, testToken, `{"name":"a",` + valid + `,"team":"x"}`, 400, "invalid input", "/team"},
		{"oversized body", a, testToken, `{"name":"a",` + valid + `,"description":"` + strings.Repeat("d", 70<<10) + `"}`, 413, "larger than", ""},
		{"unknown account", a, testToken, `{"name":"a",` + valid + `,"account":"nope"}`, 400, `account "nope" is not configured`, ""},
		{"unknown escalation policy", a, testToken, `{"name":"a","description":"d","escalationPolicyId":"PNOPE99"}`, 400, "escalation policy PNOPE99 does not exist", ""},
		{"read-only", ro, testToken, `{"name":"a",` + valid + `}`, 403, "READ_ONLY", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := call(t, tc.app, http.MethodPost, createPath, tc.token, nil, tc.body)
			require.Equal(t, tc.status, resp.status, "%s", resp.body)
			assert.Contains(t, resp.errorMessage(t), tc.message)
			if tc.field != "" {
				details := resp.json(t)["error"].(map[string]any)["details"].([]any)
				require.NotEmpty(t, details)
				assert.Equal(t, tc.field, details[0].(map[string]any)["field"])
			}
		})
	}
	assert.Equal(t, 0, writes(sim), "nothing was written to PagerDuty")
}

func TestBadMessagesOverNATSAreDeadLettered(t *testing.T) {
	seed := testSeed()
	sim, url := simulator(t, pdsim.Options{}, seed)
	a := startApp(t, testConfig(t, url, seed, ""), fastOptions(), zerolog.Nop())
	nc, js := natsClient(t, a.NATSURL())
	dlq := subscribe(t, nc, "deadletter.>")

	bad := []struct {
		id, data, reason string
	}{
		{"bad-json", `{"id":`, "not valid JSON"},
		{"bad-schema", `{"id":"bad-schema","input":{"name":"x"}}`, "/description is required"},
		{"bad-account", `{"id":"bad-account","input":{"name":"x","description":"d","escalationPolicyId":"PAIOPS1","account":"nope"}}`, `account "nope" is not configured`},
	}
	for _, b := range bad {
		publishJob(t, js, b.id, b.data)
	}
	reasons := map[string]string{}
	for range bad {
		select {
		case m := <-dlq:
			assert.Equal(t, "deadletter.scaffolder.action.pagerduty.service.create", m.Subject)
			reasons[m.Header.Get(events.HeaderDLQMsgID)] = m.Header.Get(events.HeaderDLQReason)
		case <-time.After(20 * time.Second):
			t.Fatalf("dead letters so far: %v", reasons)
		}
	}
	for _, b := range bad {
		assert.Contains(t, reasons[b.id], b.reason, b.id)
	}

	// A failed result is kept for jobs that have an id, and the worker keeps going.
	kv, err := js.KeyValue(context.Background(), "action_results")
	require.NoError(t, err)
	entry, err := kv.Get(context.Background(), "bad-account")
	require.NoError(t, err)
	var res events.JobResult
	require.NoError(t, json.Unmarshal(entry.Value(), &res))
	assert.Equal(t, "failed", res.Status)
	assert.Equal(t, "unknown_account", res.Error.Code)
	assert.Eventually(t, func() bool {
		return metric(t, a, `pdworker_action_results_total{action="pagerduty:service:create",code="unknown_account",status="failed"}`) == 1
	}, 5*time.Second, 10*time.Millisecond, "failed jobs are counted by code")

	resp := create(t, a, "", `{"name":"after-the-bad-ones","description":"d","escalationPolicyId":"PAIOPS1"}`)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	assert.Len(t, sim.Services("aiops"), 1)
}

func TestEveryActionCompletesThroughRateLimitsAndServerErrors(t *testing.T) {
	seed := testSeed()
	// The budget is counted over one second instead of a minute, so that the run
	// saturates it and every account's requests wait for it. The budget grants at most
	// 15 requests in any second (pagerduty's TestBudgetBoundsEveryWindow); the simulator
	// counts arrivals, which scheduling delays on a busy machine bunch together, so it
	// allows twice the budget: 31 grants span at least 2.1 s, and only more than a
	// second of bunching could put them in one window (PagerDuty's 960 a minute leaves
	// the default budget of 900 about 4 s of such slack).
	const budget, window = 15, time.Second
	sim, url := simulator(t, pdsim.Options{RateLimit: budget * 2, RateWindow: window, Seed: 7}, seed)
	// A third of all calls fail: 429 with headers, 429 without, and 5xx.
	sim.InjectFault(pdsim.Fault{Kind: pdsim.Fault429, Probability: 0.11, ResetSeconds: 1})
	sim.InjectFault(pdsim.Fault{Kind: pdsim.Fault429Bare, Probability: 0.125})
	sim.InjectFault(pdsim.Fault{Kind: pdsim.Fault5xx, Status: 503, Probability: 0.143})
	cfg := testConfig(t, url, seed, "")
	cfg.PagerDuty.RateLimit = budget
	opts := fastOptions()
	opts.PagerDuty.RateWindow = window
	a := startApp(t, cfg, opts, zerolog.Nop())

	const n = 24
	var wg sync.WaitGroup
	answers := make([]response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ep, grouping := "PAIOPS1", "intelligent"
			if i%3 == 1 {
				ep, grouping = "PLEGACY", "time"
			} else if i%3 == 2 {
				ep, grouping = "PBASIC1", "none"
			}
			answers[i] = create(t, a, fmt.Sprintf("storm-%d", i), fmt.Sprintf(`{"name":"storm-%d","description":"d","escalationPolicyId":"%s","alertGrouping":"%s"}`, i, ep, grouping))
		}()
	}
	wg.Wait()
	total := 0
	for i, r := range answers {
		require.Equal(t, http.StatusOK, r.status, "action %d: %s", i, r.body)
	}
	for _, acc := range []string{"aiops", "legacy", "basic"} {
		for _, s := range sim.Services(acc) {
			assert.Len(t, s.Integrations, 1, "service %s has one integration", s.Name)
			total++
		}
	}
	assert.Equal(t, n, total, "one service per action")
	assert.Greater(t, len(sim.Requests()), 3*n, "faults were injected and retried")
	for _, acc := range []string{"aiops", "legacy", "basic"} {
		assert.Positive(t, metric(t, a, `pdworker_pagerduty_ratelimit_wait_seconds_total{account="`+acc+`"}`),
			"the budget paced the requests of %s", acc)
	}
	assert.Zero(t, sim.RateLimited(), "the client never exceeded PagerDuty's limit")
}

func TestTwoProcessesShareTheWorkAndRunEachJobOnce(t *testing.T) {
	seed := testSeed()
	sim, url := simulator(t, pdsim.Options{}, seed)
	embedded, _, _ := natstest.StartListening(t)
	a := startApp(t, testConfig(t, url, seed, embedded.ClientURL()), fastOptions(), zerolog.Nop())
	b := startApp(t, testConfig(t, url, seed, embedded.ClientURL()), fastOptions(), zerolog.Nop())

	const n = 40
	var wg sync.WaitGroup
	answers := make([]response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			via := a
			if i%2 == 1 {
				via = b
			}
			answers[i] = create(t, via, "", fmt.Sprintf(`{"name":"shared-%d","description":"d","escalationPolicyId":"PAIOPS1"}`, i))
		}()
	}
	wg.Wait()
	for i, r := range answers {
		require.Equal(t, http.StatusOK, r.status, "job %d: %s", i, r.body)
	}
	svcs := sim.Services("aiops")
	require.Len(t, svcs, n)
	for _, s := range svcs {
		assert.Len(t, s.Integrations, 1, "%s", s.Name)
	}
	assert.Equal(t, n, sim.Count(http.MethodPost, "/services")-n, "one create and one integration per job, nothing run twice")

	// Each result is stored before its message is acknowledged, so the last acks may
	// land just after the answers.
	acked := func(x *App) float64 {
		return metric(t, x, `pdworker_messages_total{consumer="pdworker-actions",outcome="acked"}`)
	}
	require.Eventually(t, func() bool { return acked(a)+acked(b) == n }, 10*time.Second, 10*time.Millisecond,
		"every job acknowledged once: %v + %v", acked(a), acked(b))
	assert.Positive(t, acked(a), "the first process took jobs")
	assert.Positive(t, acked(b), "the second process took jobs")
}

// metric reads one sample from the app's /metrics.
func metric(t *testing.T, a *App, series string) float64 {
	t.Helper()
	resp := call(t, a, http.MethodGet, "/metrics", "", nil, "")
	require.Equal(t, http.StatusOK, resp.status)
	for _, line := range strings.Split(string(resp.body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			_, err := fmt.Sscan(rest, &v)
			require.NoError(t, err)
			return v
		}
	}
	return 0
}

func TestWorkerKilledBetweenServiceAndIntegration(t *testing.T) {
	seed := testSeed()
	sim, url := simulator(t, pdsim.Options{}, seed)
	embedded, _, _ := natstest.StartListening(t)
	opts := fastOptions()
	opts.ActionConsumer.AckWait = 2 * time.Second

	// The first worker gets stuck in the integration call, after the service exists.
	// It reaches the simulator through its own front door, so that killing it can also
	// cut its connections: a killed process's requests end unanswered.
	sim.InjectFault(pdsim.Fault{Method: http.MethodPost, PathPrefix: "/services/", Kind: pdsim.FaultLatency, Latency: time.Minute, Count: 1})
	victimDoor := httptest.NewServer(sim)
	t.Cleanup(victimDoor.Close)
	victim := startApp(t, testConfig(t, victimDoor.URL, seed, embedded.ClientURL()), opts, zerolog.Nop())
	_, js := natsClient(t, embedded.ClientURL())
	publishJob(t, js, "job-killed", `{"id":"job-killed","input":{"name":"killed","description":"d","escalationPolicyId":"PAIOPS1"}}`)
	state, err := js.KeyValue(context.Background(), "action_state")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		entry, err := state.Get(context.Background(), "state.job-killed")
		return err == nil && strings.Contains(string(entry.Value()), `"integrationAttempt":1`)
	}, 20*time.Second, 10*time.Millisecond, "the service is created and the integration call is under way")
	require.Len(t, sim.Services("aiops"), 1)

	// Kill it: its NATS connection and its PagerDuty connection die with the message
	// unacknowledged and the integration call unanswered, as when the process is killed.
	victim.nc.Close()
	victimDoor.CloseClientConnections()

	// A second worker gets the message after AckWait and resumes.
	survivor := startApp(t, testConfig(t, url, seed, embedded.ClientURL()), opts, zerolog.Nop())
	kv, err := js.KeyValue(context.Background(), "action_results")
	require.NoError(t, err)
	var res events.JobResult
	require.Eventually(t, func() bool {
		entry, err := kv.Get(context.Background(), "job-killed")
		return err == nil && json.Unmarshal(entry.Value(), &res) == nil
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, "succeeded", res.Status, "%+v", res.Error)
	svcs := sim.Services("aiops")
	require.Len(t, svcs, 1, "one service")
	require.Len(t, svcs[0].Integrations, 1, "one integration")
	var out map[string]any
	require.NoError(t, json.Unmarshal(res.Output, &out))
	assert.Equal(t, svcs[0].ID, out["serviceId"])
	assert.Equal(t, true, out["created"])
	assert.Equal(t, svcs[0].Integrations[0].IntegrationKey, out["integrationKey"])
	_ = survivor
}

// A PagerDuty that never answers in time fails the call with 502 and the code
// pagerduty_unavailable once the job has used its deliveries: the caller learns that
// PagerDuty was the problem, not the service.
func TestPagerDutyThatNeverAnswersFailsAsUnavailable(t *testing.T) {
	seed := testSeed()
	sim, url := simulator(t, pdsim.Options{}, seed)
	sim.InjectFault(pdsim.Fault{Method: http.MethodPost, PathPrefix: "/services", Kind: pdsim.FaultLatency, Latency: time.Minute})
	opts := fastOptions()
	opts.PagerDuty.CallTimeout = 200 * time.Millisecond
	opts.ActionConsumer.MaxDeliver = 3
	a := startApp(t, testConfig(t, url, seed, ""), opts, zerolog.Nop())

	resp := create(t, a, "slow-1", `{"name":"slow","description":"d","escalationPolicyId":"PAIOPS1"}`)
	require.Equal(t, http.StatusBadGateway, resp.status, "%s", resp.body)
	assert.Contains(t, string(resp.body), "no answer within the call timeout of 200ms")
	assert.Empty(t, sim.Services("aiops"))
	require.Eventually(t, func() bool {
		return metric(t, a, `pdworker_action_results_total{action="pagerduty:service:create",code="pagerduty_unavailable",status="failed"}`) == 1
	}, 5*time.Second, 10*time.Millisecond)
}
