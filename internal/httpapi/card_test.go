package httpapi_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/backstageauth"
	"github.com/pdworker/pdworker/internal/backstageauth/backstagetest"
	"github.com/pdworker/pdworker/internal/card"
	"github.com/pdworker/pdworker/internal/httpapi"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
)

var (
	update = flag.Bool("update", false, "rewrite testdata/golden from the current answers")
	long   = flag.Bool("long", false, "run the 60-second load test")
)

const (
	staticToken = "static-api-token-0123456789"
	appOrigin   = "https://backstage.example.com"
)

// cardSeed is the fixed simulator state of the golden files: two accounts, on-calls
// spread over more than one page with the lowest level on the last page, more change
// events than the card shows, and on Search an open incident older than PagerDuty's
// default one-month incident window.
func cardSeed() pdsim.Seed {
	users := []pdsim.UserSeed{}
	oncalls := []pdsim.OnCallSeed{}
	for i := 1; i <= 30; i++ {
		id := fmt.Sprintf("PU%05d", i)
		users = append(users, pdsim.UserSeed{ID: id, Name: fmt.Sprintf("User %02d", 31-i), Email: fmt.Sprintf("user%02d@example.com", i)})
		oncalls = append(oncalls, pdsim.OnCallSeed{EscalationPolicyID: "PEP0001", UserID: id, Level: 2})
	}
	// The lowest level is held by two users; sorted by user id, they come after the
	// first page of 25.
	oncalls = append(oncalls,
		pdsim.OnCallSeed{EscalationPolicyID: "PEP0001", UserID: "PU00029", Level: 1},
		pdsim.OnCallSeed{EscalationPolicyID: "PEP0001", UserID: "PU00030", Level: 1},
		pdsim.OnCallSeed{EscalationPolicyID: "PEP0001", UserID: "PU00030", Level: 1},
	)
	base := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	changes := []pdsim.ChangeEventSeed{}
	for i := 1; i <= 7; i++ {
		changes = append(changes, pdsim.ChangeEventSeed{
			ID: fmt.Sprintf("01CHANGE%018d", i), ServiceID: "PSVC001", Summary: fmt.Sprintf("Deploy v1.%d", i), Source: "ci",
			Timestamp: base.Add(time.Duration(i) * time.Hour),
			Links:     []pdsim.Link{{Href: fmt.Sprintf("https://ci.example.com/builds/%d", i), Text: "build"}},
		})
	}
	return pdsim.Seed{Accounts: []pdsim.AccountSeed{
		{
			ID: "default", Subdomain: "acme", Tokens: []string{"pd-default"}, Abilities: pdsim.AIOpsAbilities(),
			EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PEP0001", Name: "Platform"}, {ID: "PEP0002", Name: "Payments"}},
			Services: []pdsim.ServiceSeed{
				{ID: "PSVC001", Name: "Checkout", Description: "Takes the money", EscalationPolicyID: "PEP0001"},
				{ID: "PSVC002", Name: "Search", EscalationPolicyID: "PEP0002"},
			},
			Card: &pdsim.CardSeed{
				Users: users, OnCalls: oncalls, ChangeEvents: changes,
				Metrics:   []pdsim.ServiceMetricsSeed{{ServiceID: "PSVC001", TotalIncidentCount: 12, TotalHighUrgencyIncidents: 4, TotalInterruptions: 9, MeanSecondsToResolve: 1800, MeanSecondsToFirstAck: 120}},
				Incidents: searchIncidents(time.Now()),
			},
		},
		{
			ID: "globex", Tokens: []string{"pd-globex"}, Abilities: pdsim.StandardAbilities(),
			EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PEPGLB1", Name: "Globex Ops"}},
			Services:           []pdsim.ServiceSeed{{ID: "PSVCG01", Name: "Globex Web", EscalationPolicyID: "PEPGLB1"}},
		},
	}}
}

// searchIncidents are the incidents of Search (PSVC002): open ones created two months
// and three days before now, and a resolved one, which the card must not list.
func searchIncidents(now time.Time) []pdsim.IncidentSeed {
	return []pdsim.IncidentSeed{
		{ID: "PINC001", ServiceID: "PSVC002", Title: "Search index rebuild stuck", IncidentKey: "search-index", CreatedAt: now.AddDate(0, -2, 0)},
		{ID: "PINC002", ServiceID: "PSVC002", Title: "Search was down", Status: pdsim.IncidentResolved, IncidentKey: "search-down", CreatedAt: now.AddDate(0, 0, -40)},
		{ID: "PINC003", ServiceID: "PSVC002", Title: "Search latency above SLO", Status: pdsim.IncidentAcknowledged, Urgency: "low", IncidentKey: "search-latency", CreatedAt: now.AddDate(0, 0, -3)},
	}
}

// env is the card API in front of a simulator and a fake Backstage.
type env struct {
	sim       *pdsim.Sim
	simURL    string
	backstage *backstagetest.Backstage
	cards     *card.Cards
	url       string
}

type envOptions struct {
	cache    card.Config
	readOnly bool
	// simRateLimit is the simulator's limit per account per minute (0: PagerDuty's 960).
	simRateLimit int
	// front, when set, wraps the card API's handler.
	front func(http.Handler) http.Handler
	// mapping serves the mapping routes too, over a mapping store in an embedded
	// JetStream.
	mapping bool
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	log := zerolog.Nop()
	sim := pdsim.New(pdsim.Options{Seed: 7, RateLimit: o.simRateLimit})
	require.NoError(t, sim.Load(cardSeed()))
	simSrv := httptest.NewServer(sim)
	t.Cleanup(func() {
		// Fetches outlive the reads that started them; closing their connections
		// ends them instead of waiting for the simulator's injected latency.
		simSrv.CloseClientConnections()
		simSrv.Close()
	})

	accounts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{
		{ID: "default", Default: true, APIURL: simSrv.URL, EventsURL: simSrv.URL, Token: secret.Value("pd-default")},
		{ID: "globex", APIURL: simSrv.URL, EventsURL: simSrv.URL, Token: secret.Value("pd-globex")},
	}, pagerduty.Options{RetryWaitMin: 5 * time.Millisecond, RetryWaitMax: 20 * time.Millisecond, MaxRetryAfter: 50 * time.Millisecond, RetryMax: 1}, log)
	require.NoError(t, err)

	bs := backstagetest.New(t)
	verifier, err := backstageauth.NewVerifier(backstageauth.Config{BaseURL: bs.URL, PluginID: "pagerduty", RefetchInterval: -1}, log)
	require.NoError(t, err)

	cards := card.New(accounts, nil, o.cache, nil, log)
	auth := httpapi.NewAuthenticator(httpapi.AuthConfig{Tokens: []secret.Value{staticToken}, Backstage: verifier}, log)
	deps := httpapi.Deps{Auth: auth, Card: cards, Gatherer: prometheus.NewRegistry()}
	if o.mapping {
		_, _, js := natstest.Start(t)
		store, err := mapping.NewStore(context.Background(), js)
		require.NoError(t, err)
		deps.Mapping = httpapi.MappingDeps{Store: store, Accounts: accounts}
	}
	h := httpapi.CORS([]string{appOrigin}, httpapi.New(httpapi.Config{MaxBodyBytes: 64 << 10, ReadOnly: o.readOnly}, deps, log))
	if o.front != nil {
		h = o.front(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{sim: sim, simURL: simSrv.URL, backstage: bs, cards: cards, url: srv.URL}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// get sends what the official frontend sends: its odd Accept, a JSON Content-Type and
// the user's bearer token; the path keeps its brackets unencoded.
func (e *env) do(t testing.TB, method, path, token, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Accept", "application/vnd.pagerduty+json;version=2")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", appOrigin)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestCardRoutesGolden checks each route's exact JSON against testdata/golden for the
// fixed simulator state, with the simulator's address replaced by SIM.
func TestCardRoutesGolden(t *testing.T) {
	e := newEnv(t, envOptions{})
	user := e.backstage.UserToken(t, "user:default/jane")
	// An integration gives the integration-key lookup something to find.
	key := e.do(t, http.MethodPost, "/api/pagerduty/services/PSVC001/integration/PRO19CT", staticToken, "")
	require.Equal(t, http.StatusOK, key.status, "%s", key.body)
	var integrationKey string
	require.NoError(t, json.Unmarshal(key.body, &integrationKey), "R15 answers a bare JSON string")
	require.Len(t, integrationKey, 32)

	tests := []struct {
		name, path string
		status     int
		keys       []string // top-level fields of the anchor's shape; nil for non-objects
	}{
		{"R13_service", "/api/pagerduty/services/PSVC001", 200, []string{"service"}},
		{"R13_service_other_account", "/api/pagerduty/services/PSVCG01?account=globex", 200, []string{"service"}},
		{"R13_service_not_found", "/api/pagerduty/services/PNOPE01", 404, []string{"errors"}},
		{"R13_unknown_account", "/api/pagerduty/services/PSVC001?account=initech", 400, []string{"errors"}},
		{"R14_by_integration_key", "/api/pagerduty/services?integration_key=" + integrationKey, 200, []string{"service"}},
		{"R14_unknown_integration_key", "/api/pagerduty/services?integration_key=Checkout", 404, []string{"errors"}},
		{"R14_all_accounts", "/api/pagerduty/services", 200, []string{"services"}},
		{"R16_change_events", "/api/pagerduty/services/PSVC001/change-events", 200, []string{"change_events"}},
		{"R17_incidents", "/api/pagerduty/services/PSVC002/incidents", 200, []string{"incidents"}},
		{"R18_standards", "/api/pagerduty/services/PSVC001/standards", 200, []string{"standards"}},
		{"R19_metrics", "/api/pagerduty/services/PSVC001/metrics", 200, []string{"metrics"}},
		{"R12_oncall_users_brackets", "/api/pagerduty/oncall-users?escalation_policy_ids[]=PEP0001", 200, []string{"users"}},
		{"R12_oncall_users_plain", "/api/pagerduty/oncall-users?escalation_policy_ids=PEP0001", 200, []string{"users"}},
		{"R12_oncall_users_missing", "/api/pagerduty/oncall-users", 400, nil},
		{"R11_escalation_policies", "/api/pagerduty/escalation_policies", 200, nil},
		{"R20_health", "/api/pagerduty/health", 200, []string{"status"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do(t, http.MethodGet, tt.path, user, "")
			require.Equal(t, tt.status, a.status, "%s", a.body)
			got := strings.ReplaceAll(string(a.body), e.simURL, "SIM")
			got = strings.ReplaceAll(got, integrationKey, "INTEGRATION_KEY")
			got = creationTimes.ReplaceAllString(got, `"$1":"TIME"`)
			if tt.keys != nil {
				var obj map[string]json.RawMessage
				require.NoError(t, json.Unmarshal(a.body, &obj))
				assert.ElementsMatch(t, tt.keys, mapKeys(obj), "top-level fields")
			}
			file := filepath.Join("testdata", "golden", tt.name+".json")
			if *update {
				var v any
				require.NoError(t, json.Unmarshal([]byte(got), &v))
				b, _ := json.MarshalIndent(v, "", "  ")
				require.NoError(t, os.WriteFile(file, append(b, '\n'), 0o644))
			}
			want, err := os.ReadFile(file)
			require.NoError(t, err, "run go test ./internal/httpapi -run TestCardRoutesGolden -update to create it")
			assert.JSONEq(t, string(want), got)
		})
	}
}

// creationTimes are the simulator's clock readings and the seeded incidents' times
// (relative to now), which differ from run to run.
var creationTimes = regexp.MustCompile(`"(created_at|updated_at|last_status_change_at|at)":"[^"]*"`)

func mapKeys(m map[string]json.RawMessage) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestOnCallUsersReadsEveryPage checks the fix behind R12's shape: the lowest level is
// on the second page of PagerDuty's answer, and its users come back once each, sorted
// by name.
func TestOnCallUsersReadsEveryPage(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.do(t, http.MethodGet, "/api/pagerduty/oncall-users?escalation_policy_ids[]=PEP0001", staticToken, "")
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	var got struct {
		Users []struct{ ID, Name string } `json:"users"`
	}
	require.NoError(t, json.Unmarshal(a.body, &got))
	require.Len(t, got.Users, 2)
	assert.Equal(t, "User 01", got.Users[0].Name)
	assert.Equal(t, "User 02", got.Users[1].Name)
	assert.Equal(t, 1, e.sim.Count(http.MethodGet, "/oncalls"), "one call of 100 covers the 33 entries")
}

// TestOpenIncidentsOfAnyAge checks the fix behind R17's shape: an open incident
// created two months ago is listed, which PagerDuty's default window (the last month,
// what the official backend asks for) hides; resolved incidents are not listed.
func TestOpenIncidentsOfAnyAge(t *testing.T) {
	e := newEnv(t, envOptions{})
	ids := func(body []byte) []string {
		var got struct {
			Incidents []struct {
				ID string `json:"id"`
			} `json:"incidents"`
		}
		require.NoError(t, json.Unmarshal(body, &got), "%s", body)
		out := []string{}
		for _, in := range got.Incidents {
			out = append(out, in.ID)
		}
		return out
	}

	a := e.do(t, http.MethodGet, "/api/pagerduty/services/PSVC002/incidents", staticToken, "")
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	assert.Equal(t, []string{"PINC001", "PINC003"}, ids(a.body), "open incidents, oldest first")

	// The official backend's query: no date_range, so PagerDuty's one-month default.
	req, err := http.NewRequest(http.MethodGet, e.simURL+"/incidents?time_zone=UTC&sort_by=created_at&statuses[]=triggered&statuses[]=acknowledged&service_ids[]=PSVC002", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Token token=pd-default")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Equal(t, []string{"PINC003"}, ids(body), "the default window hides the two-month-old incident")
}

// TestTokens is the token table through the real HTTP stack.
func TestTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	bs := e.backstage
	expired := time.Now().Add(-2 * time.Hour)
	rotatedOld := bs.UserToken(t, "user:default/old")
	tests := []struct {
		name   string
		token  func() string
		status int
		msg    string
	}{
		{"valid user token", func() string { return bs.UserToken(t, "user:default/jane") }, 200, ""},
		{"plugin token for pagerduty", func() string { return bs.PluginToken(t, "catalog", "pagerduty") }, 200, ""},
		{"plugin token for another plugin", func() string { return bs.PluginToken(t, "catalog", "scaffolder") }, 401, "not for this service"},
		{"expired user token", func() string {
			return bs.Sign(t, "auth", backstagetest.Token{Type: backstageauth.TypeUser, Subject: "user:default/jane", Audience: "backstage", Issuer: bs.URL + "/api/auth", IssuedAt: expired, Expires: expired.Add(time.Hour)})
		}, 401, "expired"},
		{"user token signed with the wrong key", func() string {
			return bs.Sign(t, "auth", backstagetest.Token{Type: backstageauth.TypeUser, Subject: "user:default/jane", Audience: "backstage", Issuer: bs.URL + "/api/auth", SignWithOwnKey: true})
		}, 401, "signature does not verify"},
		{"new kid after rotation", func() string { bs.Rotate(t, "auth"); return bs.UserToken(t, "user:default/jane") }, 200, ""},
		{"old kid after rotation", func() string { return rotatedOld }, 401, "unknown signing key"},
		{"static token", func() string { return staticToken }, 200, ""},
		{"unknown static token", func() string { return "not-a-token" }, 401, "neither one of API_TOKENS nor a Backstage"},
		{"no token", func() string { return "" }, 401, "missing bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do(t, http.MethodGet, "/api/pagerduty/health", tt.token(), "")
			require.Equal(t, tt.status, a.status, "%s", a.body)
			if tt.msg != "" {
				assert.Contains(t, string(a.body), tt.msg)
				assert.NotEmpty(t, a.header.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestCORSPreflight answers the browser's preflight for the Backstage app's origin
// only, and never with "*".
func TestCORSPreflight(t *testing.T) {
	e := newEnv(t, envOptions{})
	preflight := func(origin, headers string) *http.Response {
		req, err := http.NewRequest(http.MethodOptions, e.url+"/api/pagerduty/oncall-users?escalation_policy_ids[]=PEP0001", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", headers)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	t.Run("allowed origin", func(t *testing.T) {
		resp := preflight(appOrigin, "authorization,content-type")
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
		assert.Equal(t, appOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
		assert.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
		assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "authorization")
		assert.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "GET")
	})
	t.Run("other origin", func(t *testing.T) {
		resp := preflight("https://evil.example.com", "authorization,content-type")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	})
	t.Run("header not allowed", func(t *testing.T) {
		resp := preflight(appOrigin, "authorization,x-secret")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
	t.Run("actual request carries the origin", func(t *testing.T) {
		a := e.do(t, http.MethodGet, "/api/pagerduty/health", staticToken, "")
		assert.Equal(t, appOrigin, a.header.Get("Access-Control-Allow-Origin"))
		assert.NotEqual(t, "*", a.header.Get("Access-Control-Allow-Origin"))
	})
}

// cardView is what one viewer's browser asks for when the card loads (anchor 11).
func cardView(t testing.TB, e *env, token string) {
	paths := []string{
		"/api/pagerduty/services/PSVC001/standards",
		"/api/pagerduty/services/PSVC001/metrics",
		"/api/pagerduty/services/PSVC001",
		"/api/pagerduty/oncall-users?escalation_policy_ids[]=PEP0001",
		"/api/pagerduty/services/PSVC001/incidents",
		"/api/pagerduty/services/PSVC001/change-events",
		"/api/pagerduty/services/PSVC001",
	}
	for _, p := range paths {
		a := e.do(t, http.MethodGet, p, token, "")
		if a.status != http.StatusOK {
			t.Errorf("%s: %d %s", p, a.status, a.body)
		}
	}
}

// TestManyViewersOneCallPerRoute: 200 concurrent viewers load the full card, again and
// again, for a few cache periods; PagerDuty sees at most one call per route per period.
func TestManyViewersOneCallPerRoute(t *testing.T) {
	ttl, run := 500*time.Millisecond, 2*time.Second
	if *long {
		ttl, run = 5*time.Second, 60*time.Second
	}
	e := newEnv(t, envOptions{cache: card.Config{TTL: ttl}})
	e.sim.ResetRequests()
	start := time.Now()
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < run {
				cardView(t, e, staticToken)
			}
		}()
	}
	wg.Wait()
	periods := int(time.Since(start)/ttl) + 1
	for _, route := range []string{"/services/PSVC001/change_events", "/standards/", "/analytics/", "/oncalls", "/incidents"} {
		n := e.sim.Count("", route)
		assert.LessOrEqual(t, n, periods, "%s: %d calls in %d cache periods", route, n, periods)
		assert.GreaterOrEqual(t, n, 1, route)
	}
	svc := 0
	for _, r := range e.sim.Requests() {
		if r.Path == "/services/PSVC001" {
			svc++
		}
	}
	assert.LessOrEqual(t, svc, periods, "GET /services/PSVC001")
}

// TestPagerDutyFailingEveryRouteAnswers: with PagerDuty answering 500, 429 or not at
// all, every route still answers within its deadline: stale data with a flag when it
// has some, an error status otherwise.
func TestPagerDutyFailingEveryRouteAnswers(t *testing.T) {
	deadline := 700 * time.Millisecond
	routes := []string{
		"/api/pagerduty/services/PSVC001",
		"/api/pagerduty/services",
		"/api/pagerduty/services/PSVC001/incidents",
		"/api/pagerduty/services/PSVC001/change-events",
		"/api/pagerduty/services/PSVC001/standards",
		"/api/pagerduty/services/PSVC001/metrics",
		"/api/pagerduty/oncall-users?escalation_policy_ids[]=PEP0001",
		"/api/pagerduty/escalation_policies",
	}
	faults := []struct {
		name  string
		fault pdsim.Fault
	}{
		{"500", pdsim.Fault{Kind: pdsim.Fault5xx, Status: 500}},
		{"429", pdsim.Fault{Kind: pdsim.Fault429, ResetSeconds: 30}},
		{"429 without headers", pdsim.Fault{Kind: pdsim.Fault429Bare}},
		{"timeout", pdsim.Fault{Kind: pdsim.FaultLatency, Latency: 5 * time.Second}},
		{"dropped connection", pdsim.Fault{Kind: pdsim.FaultDrop}},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Run("cold cache", func(t *testing.T) {
				e := newEnv(t, envOptions{cache: card.Config{Deadline: deadline}})
				e.sim.InjectFault(f.fault)
				for _, p := range routes {
					began := time.Now()
					a := e.do(t, http.MethodGet, p, staticToken, "")
					took := time.Since(began)
					assert.GreaterOrEqual(t, a.status, 400, "%s: %s", p, a.body)
					assert.Less(t, took, deadline+time.Second, "%s answered after %s", p, took)
					var body struct {
						Errors []string `json:"errors"`
					}
					require.NoError(t, json.Unmarshal(a.body, &body), "%s: %s", p, a.body)
					assert.NotEmpty(t, body.Errors, p)
				}
			})
			t.Run("warm cache serves stale", func(t *testing.T) {
				// The cache is warmed under the default deadline, so that a slow
				// machine cannot fail the warm-up; once PagerDuty fails, every
				// request carries the short deadline, which bounds the read as
				// Config.Deadline does (card's TestStaleAnswerWhenTheDeadlinePasses
				// covers that one).
				var faulted atomic.Bool
				clock := clockwork.NewFakeClockAt(time.Now())
				e := newEnv(t, envOptions{cache: card.Config{Now: clock.Now}, front: func(next http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if faulted.Load() {
							ctx, cancel := context.WithTimeout(r.Context(), deadline)
							defer cancel()
							r = r.WithContext(ctx)
						}
						next.ServeHTTP(w, r)
					})
				}})
				for _, p := range routes {
					require.Equal(t, http.StatusOK, e.do(t, http.MethodGet, p, staticToken, "").status, p)
				}
				clock.Advance(card.DefaultTTL + time.Second)
				faulted.Store(true)
				e.sim.InjectFault(f.fault)
				for _, p := range routes {
					began := time.Now()
					a := e.do(t, http.MethodGet, p, staticToken, "")
					assert.Equal(t, http.StatusOK, a.status, "%s: %s", p, a.body)
					assert.Equal(t, "true", a.header.Get(httpapi.StaleHeader), p)
					assert.Less(t, time.Since(began), deadline+time.Second, p)
				}
			})
		})
	}
}

// TestTriggerIncident sends a trigger through the service's Backstage integration,
// server-side, with a generated dedup key, and is refused in READ_ONLY.
func TestTriggerIncident(t *testing.T) {
	e := newEnv(t, envOptions{})
	require.Equal(t, http.StatusOK, e.do(t, http.MethodPost, "/api/pagerduty/services/PSVC001/integration/PRO19CT", staticToken, "").status)

	a := e.do(t, http.MethodPost, "/api/pagerduty/services/PSVC001/incidents", staticToken, `{"title":"Checkout is down","severity":"critical"}`)
	require.Equal(t, http.StatusAccepted, a.status, "%s", a.body)
	var got struct{ DedupKey, ServiceID string }
	require.NoError(t, json.Unmarshal(a.body, &got))
	assert.NotEmpty(t, got.DedupKey)
	assert.Equal(t, 1, e.sim.Count(http.MethodPost, "/v2/enqueue"))

	// The card's incident list shows it (the trigger expired the cached list), with
	// the fields the frontend reads, from a query that covers open incidents of any age.
	a = e.do(t, http.MethodGet, "/api/pagerduty/services/PSVC001/incidents", staticToken, "")
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	var list struct {
		Incidents []map[string]any `json:"incidents"`
	}
	require.NoError(t, json.Unmarshal(a.body, &list))
	require.Len(t, list.Incidents, 1, "%s", a.body)
	for _, f := range []string{"id", "title", "status", "urgency", "html_url", "created_at", "assignments"} {
		assert.Contains(t, list.Incidents[0], f)
	}
	assert.Equal(t, "Checkout is down", list.Incidents[0]["title"])
	var query string
	for _, r := range e.sim.Requests() {
		if r.Path == "/incidents" {
			query = r.Query
		}
	}
	assert.Contains(t, query, "date_range=all")
	assert.Contains(t, query, "statuses%5B%5D=triggered")
	assert.Contains(t, query, "service_ids%5B%5D=PSVC001")

	a = e.do(t, http.MethodPost, "/api/pagerduty/services/PSVC001/incidents", staticToken, `{"title":"again","dedupKey":"my-key"}`)
	require.Equal(t, http.StatusAccepted, a.status, "%s", a.body)
	assert.Contains(t, string(a.body), `"dedupKey":"my-key"`)

	for _, bad := range []string{`{}`, `{"title":"x","severity":"bad"}`, `{"title":"x","routing_key":"k"}`, `[]`} {
		assert.Equal(t, http.StatusBadRequest, e.do(t, http.MethodPost, "/api/pagerduty/services/PSVC001/incidents", staticToken, bad).status, bad)
	}
	a = e.do(t, http.MethodPost, "/api/pagerduty/services/PSVC002/incidents", staticToken, `{"title":"no integration"}`)
	assert.Equal(t, http.StatusConflict, a.status, "%s", a.body)

	ro := newEnv(t, envOptions{readOnly: true})
	a = ro.do(t, http.MethodPost, "/api/pagerduty/services/PSVC001/incidents", staticToken, `{"title":"x"}`)
	assert.Equal(t, http.StatusForbidden, a.status)
	assert.Contains(t, string(a.body), "READ_ONLY")
	assert.Zero(t, ro.sim.Count(http.MethodPost, ""))
}

// TestTriggerRecordsTheCaller puts who triggered (the verified Backstage user or
// plugin, or "api-token") into the event's custom_details, as the official frontend
// puts the user's name there, and routes the event through the Backstage integration.
func TestTriggerRecordsTheCaller(t *testing.T) {
	e := newEnv(t, envOptions{})
	key := e.do(t, http.MethodPost, "/api/pagerduty/services/PSVC001/integration/PRO19CT", staticToken, "")
	require.Equal(t, http.StatusOK, key.status, "%s", key.body)
	var integrationKey string
	require.NoError(t, json.Unmarshal(key.body, &integrationKey))

	tests := []struct {
		name, token, want string
	}{
		{"user token", e.backstage.UserToken(t, "user:default/jane"), "user:default/jane"},
		{"plugin token", e.backstage.PluginToken(t, "scaffolder", "pagerduty"), "plugin:scaffolder"},
		{"static token", staticToken, httpapi.CallerAPIToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do(t, http.MethodPost, "/api/pagerduty/services/PSVC001/incidents", tt.token,
				`{"title":"Checkout is slow","description":"p99 above 2s","dedupKey":"`+tt.name+`"}`)
			require.Equal(t, http.StatusAccepted, a.status, "%s", a.body)
			var got *pdsim.IncidentState
			for _, in := range e.sim.Incidents("default") {
				if in.IncidentKey == tt.name {
					got = &in
				}
			}
			require.NotNil(t, got, "the simulator opened an incident with the dedup key")
			assert.Equal(t, integrationKey, got.RoutingKey)
			assert.Equal(t, map[string]any{"user": tt.want, "service_id": "PSVC001", "description": "p99 above 2s"}, got.Details)
		})
	}

	t.Run("auth disabled", func(t *testing.T) {
		auth := httpapi.NewAuthenticator(httpapi.AuthConfig{Disabled: true}, zerolog.Nop())
		caller, err := auth.Caller(httptest.NewRequest(http.MethodGet, "/api/pagerduty/health", nil))
		require.NoError(t, err)
		assert.Equal(t, httpapi.CallerUnauthenticated, caller)
	})
	t.Run("context helpers", func(t *testing.T) {
		assert.Empty(t, httpapi.CallerFrom(context.Background()))
		assert.Equal(t, "user:default/ann", httpapi.CallerFrom(httpapi.WithCaller(context.Background(), "user:default/ann")))
	})
}
