package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/config"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
	"github.com/pdworker/pdworker/workers"
)

// testToken is the static bearer token every test app accepts.
const testToken = "test-api-token-0123456789"

// testSeed has one account of each kind the alert grouping fallback distinguishes.
func testSeed() pdsim.Seed {
	return pdsim.Seed{Accounts: []pdsim.AccountSeed{
		{ID: "aiops", Tokens: []string{"pd-token-aiops"}, Abilities: pdsim.AIOpsAbilities(), AlertGroupingSettingsAPI: true,
			EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PAIOPS1", Name: "AIOps EP"}, {ID: "PAIOPS2", Name: "Other EP"}}},
		{ID: "legacy", Tokens: []string{"pd-token-legacy"}, Abilities: pdsim.AIOpsAbilities(),
			EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PLEGACY", Name: "Legacy EP"}}},
		{ID: "basic", Tokens: []string{"pd-token-basic"}, Abilities: pdsim.StandardAbilities(),
			EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PBASIC1", Name: "Basic EP"}}},
	}}
}

// simulator starts pdsim over real HTTP with seed.
func simulator(t testing.TB, opts pdsim.Options, seed pdsim.Seed) (*pdsim.Sim, string) {
	t.Helper()
	sim := pdsim.New(opts)
	require.NoError(t, sim.Load(seed))
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// testConfig is a complete configuration for an app on free loopback ports, with an
// embedded NATS server (natsURL empty) or an external one.
func testConfig(t testing.TB, simURL string, seed pdsim.Seed, natsURL string) *config.Config {
	t.Helper()
	var accounts []pagerduty.AccountConfig
	for i, a := range seed.Accounts {
		accounts = append(accounts, pagerduty.AccountConfig{ID: a.ID, Default: i == 0, APIURL: simURL, EventsURL: simURL, Token: secret.Value(a.Tokens[0])})
	}
	return &config.Config{
		HTTP:              config.HTTP{Addr: "127.0.0.1:0", MaxBodyBytes: 64 << 10},
		NATS:              config.NATS{URL: natsURL, EmbeddedListen: "127.0.0.1:0", DataDir: t.TempDir(), Replicas: 1},
		PagerDuty:         config.PagerDuty{Accounts: accounts, RateLimit: 6000},
		Auth:              config.Auth{APITokens: []secret.Value{testToken}, PluginID: "pagerduty"},
		Log:               config.Log{Level: zerolog.DebugLevel, Format: "json"},
		DepsyncInterval:   time.Hour,
		ActionWaitTimeout: 30 * time.Second,
		WorkerConcurrency: 8,
		ShutdownTimeout:   10 * time.Second,
	}
}

// fastOptions shorten retry waits so that fault tests finish quickly.
func fastOptions() Options {
	return Options{
		PagerDuty: pagerduty.Options{RetryWaitMin: 5 * time.Millisecond, RetryWaitMax: 50 * time.Millisecond, MaxRetryAfter: 2 * time.Second},
		ActionConsumer: workers.ConsumerConfig{
			BaseDelay: 50 * time.Millisecond, MaxDelay: 500 * time.Millisecond, MaxDeliver: 20,
			AckWait: 5 * time.Second, PendingInterval: 100 * time.Millisecond,
		},
	}
}

// startApp builds and starts an app and stops it when the test ends.
func startApp(t testing.TB, cfg *config.Config, opts Options, log zerolog.Logger) *App {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := New(ctx, cfg, opts, log)
	require.NoError(t, err)
	a.Start()
	t.Cleanup(a.Stop)
	return a
}

// logBuffer collects log lines from concurrent writers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// response is an HTTP answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

// errorMessage returns error.message of a service error body.
func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	require.True(t, ok, "no error object in %s", r.body)
	return e["message"].(string)
}

// call sends one request to the app's HTTP API.
func call(t testing.TB, a *App, method, path, token string, header map[string]string, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+a.HTTPAddr()+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

const createPath = "/api/pagerduty/actions/pagerduty:service:create"

// create calls the service-create action over HTTP.
func create(t testing.TB, a *App, idempotencyKey, body string) response {
	t.Helper()
	h := map[string]string{}
	if idempotencyKey != "" {
		h["Idempotency-Key"] = idempotencyKey
	}
	return call(t, a, http.MethodPost, createPath, testToken, h, body)
}

// writes counts the requests that reached the simulator and could change it.
func writes(sim *pdsim.Sim) int {
	return sim.Count(http.MethodPost, "") + sim.Count(http.MethodPut, "") + sim.Count(http.MethodDelete, "")
}

// natsClient connects to url and closes the connection when the test ends.
func natsClient(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// subscribe collects the messages of subject until the test ends.
func subscribe(t testing.TB, nc *nats.Conn, subject string) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(subject, ch)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

// publishJob publishes a pagerduty:service:create job message with Nats-Msg-Id id, as
// anything on NATS may.
func publishJob(t testing.TB, js jetstream.JetStream, id, body string) {
	t.Helper()
	msg := nats.NewMsg("scaffolder.action.pagerduty.service.create")
	msg.Header.Set(nats.MsgIdHdr, id)
	msg.Data = []byte(body)
	_, err := js.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}
