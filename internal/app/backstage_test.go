package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/backstagefake"
	"github.com/pdworker/pdworker/internal/config"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
)

const backstageToken = "static-external-access-token-0123456789"

// catalogEnv is a running app with the simulator (accounts acme, the default, and
// globex) and a fake Backstage catalog that the app's catalog watcher polls.
type catalogEnv struct {
	app  *App
	sim  *pdsim.Sim
	fake *backstagefake.Catalog
}

func acmeService(i int) string   { return fmt.Sprintf("PACME%02d", i) }
func globexService(i int) string { return fmt.Sprintf("PGLOB%02d", i) }

func newCatalogEnv(t *testing.T) *catalogEnv {
	t.Helper()
	seed := pdsim.Seed{Accounts: []pdsim.AccountSeed{
		{ID: "acme", Tokens: []string{"pd-token-acme"}, EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PEPACME", Name: "Acme EP"}}},
		{ID: "globex", Tokens: []string{"pd-token-globex"}, EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PEPGLOB", Name: "Globex EP"}}},
	}}
	for i := 1; i <= 6; i++ {
		seed.Accounts[0].Services = append(seed.Accounts[0].Services, pdsim.ServiceSeed{ID: acmeService(i), Name: fmt.Sprintf("Acme %02d", i), EscalationPolicyID: "PEPACME"})
	}
	for i := 1; i <= 2; i++ {
		seed.Accounts[1].Services = append(seed.Accounts[1].Services, pdsim.ServiceSeed{ID: globexService(i), Name: fmt.Sprintf("Globex %02d", i), EscalationPolicyID: "PEPGLOB"})
	}
	sim, simURL := simulator(t, pdsim.Options{RateLimit: 1 << 20}, seed)
	fake := backstagefake.New(backstageToken)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	cfg := testConfig(t, simURL, seed, "")
	cfg.Backstage = config.Backstage{URL: srv.URL, Token: secret.Value(backstageToken), PollInterval: 50 * time.Millisecond}
	cfg.Depsync = config.Depsync{MaxRemovalShare: 0.1, GuardMinRemovals: 10, BatchSize: 100} // the defaults
	a := startApp(t, cfg, fastOptions(), zerolog.Nop())
	return &catalogEnv{app: a, sim: sim, fake: fake}
}

// timeoutClient fails a request that gets no answer: the official plugin's routes
// hang on bad input, ours must answer.
var timeoutClient = &http.Client{Timeout: 10 * time.Second}

func (e *catalogEnv) do(t *testing.T, method, path, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+e.app.HTTPAddr()+"/api/pagerduty"+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := timeoutClient.Do(req)
	require.NoError(t, err, "%s %s must answer", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// jsonString decodes a bare JSON string body.
func jsonString(t *testing.T, r response) string {
	t.Helper()
	var s string
	require.NoError(t, json.Unmarshal(r.body, &s), "want a JSON string, got %s", r.body)
	return s
}

// backstageIntegrations counts a service's integrations of the Backstage vendor.
func (e *catalogEnv) backstageIntegrations(account, serviceID string) int {
	n := 0
	for _, s := range e.sim.Services(account) {
		if s.ID != serviceID {
			continue
		}
		for _, in := range s.Integrations {
			if in.VendorID == "PRO19CT" {
				n++
			}
		}
	}
	return n
}

func (e *catalogEnv) edges(account string) []string {
	out := []string{}
	for _, d := range e.sim.Dependencies(account) {
		out = append(out, d.Dependent+">"+d.Supporting)
	}
	return out
}

func TestSettingsRoutes(t *testing.T) {
	e := newCatalogEnv(t)
	const path = "/settings/settings::service-dependency-sync-strategy"

	r := e.do(t, http.MethodGet, path, "")
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.JSONEq(t, `{}`, string(r.body), "R6 miss is 404 {}")

	bad := []struct{ name, body, want string }{
		{"object instead of array", `{"id":"settings::service-dependency-sync-strategy","value":"backstage"}`, "Bad Request"},
		{"empty array", `[]`, "non-empty array"},
		{"not JSON", `[{`, "invalid JSON"},
		{"invalid strategy", `[{"id":"settings::service-dependency-sync-strategy","value":"everything"}]`, "Invalid value for setting"},
		{"missing id", `[{"value":"backstage"}]`, "'id' is required"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			r := e.do(t, http.MethodPost, "/settings", b.body)
			assert.Equal(t, http.StatusBadRequest, r.status)
			assert.Contains(t, jsonString(t, r), b.want)
		})
	}
	t.Run("a bad element writes nothing", func(t *testing.T) {
		r := e.do(t, http.MethodPost, "/settings", `[{"id":"other","value":"x"},{"id":"settings::service-dependency-sync-strategy","value":"nope"}]`)
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Equal(t, http.StatusNotFound, e.do(t, http.MethodGet, "/settings/other", "").status)
	})

	r = e.do(t, http.MethodPost, "/settings", `[{"id":"settings::service-dependency-sync-strategy","value":"both"}]`)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "OK", string(r.body), "R5 answers the text OK")
	r = e.do(t, http.MethodGet, path, "")
	require.Equal(t, http.StatusOK, r.status)
	row := r.json(t)
	assert.Equal(t, "settings::service-dependency-sync-strategy", row["id"])
	assert.Equal(t, "both", row["value"])
	assert.Contains(t, row, "updatedAt")
	assert.Len(t, row, 3, "the raw row: id, value, updatedAt")
}

func TestMappingRoutes(t *testing.T) {
	e := newCatalogEnv(t)

	t.Run("bad input answers 4xx", func(t *testing.T) {
		for _, b := range []struct{ name, body, want string }{
			{"array body", `[{"serviceId":"PACME01"}]`, "Bad Request"},
			{"missing serviceId", `{"entityRef":"component:default/a"}`, "'serviceId' must be provided"},
			{"malformed entityRef", `{"serviceId":"PACME01","entityRef":"component:default/a b"}`, "invalid entity ref"},
			{"unknown account", `{"serviceId":"PACME01","entityRef":"component:default/a","account":"nosuch"}`, `unknown account "nosuch"`},
		} {
			t.Run(b.name, func(t *testing.T) {
				r := e.do(t, http.MethodPost, "/mapping/entity", b.body)
				assert.Equal(t, http.StatusBadRequest, r.status)
				assert.Contains(t, jsonString(t, r), b.want)
			})
		}
		r := e.do(t, http.MethodPost, "/mapping/entity", `{"serviceId":"PNOSUCH","entityRef":"component:default/a"}`)
		assert.Equal(t, http.StatusNotFound, r.status, "PagerDuty's 404 passed through")
		assert.Contains(t, r.json(t), "errors")
		assert.Equal(t, 0, len(e.sim.Services("acme")[0].Integrations))
	})

	t.Run("a Backstage integration is created once under concurrent POSTs", func(t *testing.T) {
		var wg sync.WaitGroup
		keys := make([]string, 8)
		for i := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.do(t, http.MethodPost, "/mapping/entity", `{"serviceId":"PACME01","entityRef":"Component:Checkout","status":"InSync"}`)
				if assert.Equal(t, http.StatusOK, r.status, "%s", r.body) {
					keys[i] = r.json(t)["integrationKey"].(string)
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, 1, e.backstageIntegrations("acme", "PACME01"))
		for _, k := range keys {
			assert.Equal(t, keys[0], k, "every caller gets the one integration's key")
		}
		r := e.do(t, http.MethodPost, "/mapping/entity", `{"serviceId":"PACME01","entityRef":"component:default/checkout","status":"InSync"}`)
		require.Equal(t, http.StatusOK, r.status)
		body := r.json(t)
		assert.Equal(t, map[string]any{"id": body["id"], "entityRef": "component:default/checkout", "integrationKey": keys[0],
			"serviceId": "PACME01", "status": "InSync", "account": ""}, body, "R7's wire shape, status echoed")
		assert.Equal(t, 1, e.backstageIntegrations("acme", "PACME01"), "an existing integration is reused")
	})

	t.Run("an integration key given is used as is; unmapping creates nothing", func(t *testing.T) {
		r := e.do(t, http.MethodPost, "/mapping/entity", `{"serviceId":"PACME02","entityRef":"component:default/cart","integrationKey":"given-key"}`)
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "given-key", r.json(t)["integrationKey"])
		assert.NotContains(t, r.json(t), "status", "status omitted when not sent")
		r = e.do(t, http.MethodPost, "/mapping/entity", `{"serviceId":"PACME03","entityRef":""}`)
		require.Equal(t, http.StatusOK, r.status)
		assert.Zero(t, e.backstageIntegrations("acme", "PACME02"))
		assert.Zero(t, e.backstageIntegrations("acme", "PACME03"))
	})

	t.Run("account is honoured", func(t *testing.T) {
		r := e.do(t, http.MethodPost, "/mapping/entity", `{"serviceId":"PGLOB01","entityRef":"component:default/billing","account":"globex"}`)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		assert.Equal(t, "globex", r.json(t)["account"])
		assert.Equal(t, 1, e.backstageIntegrations("globex", "PGLOB01"))
		r = e.do(t, http.MethodPost, "/mapping/entity", `{"serviceId":"PGLOB02","entityRef":"component:default/ledger"}`)
		assert.Equal(t, http.StatusNotFound, r.status, "without account the default account is asked, which lacks the service")
	})

	t.Run("GET by entity and by service give the raw row", func(t *testing.T) {
		r := e.do(t, http.MethodGet, "/mapping/entity/Component/default/Checkout", "")
		require.Equal(t, http.StatusOK, r.status)
		row := r.json(t)["mapping"].(map[string]any)
		for _, k := range []string{"index", "id", "serviceId", "integrationKey", "entityRef", "processedDate", "account"} {
			assert.Contains(t, row, k)
		}
		assert.Equal(t, "PACME01", row["serviceId"])
		r = e.do(t, http.MethodGet, "/mapping/entity/service/PACME01", "")
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, row, r.json(t)["mapping"])

		r = e.do(t, http.MethodGet, "/mapping/entity/component/default/nope", "")
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, "Mapping for entityRef component:default/nope not found.", jsonString(t, r))
		r = e.do(t, http.MethodGet, "/mapping/entity/service/PNOPE", "")
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Equal(t, "Mapping for serviceId PNOPE not found.", jsonString(t, r))
		r = e.do(t, http.MethodGet, "/mapping/entity/component/default/a%20b", "")
		assert.Equal(t, http.StatusBadRequest, r.status)
	})

	t.Run("the list covers every account's services with a status", func(t *testing.T) {
		r := e.do(t, http.MethodGet, "/mapping/entity", "")
		require.Equal(t, http.StatusOK, r.status)
		var body struct {
			Mappings []map[string]any `json:"mappings"`
		}
		require.NoError(t, json.Unmarshal(r.body, &body))
		require.Len(t, body.Mappings, 8)
		byService := map[string]map[string]any{}
		var names []string
		for _, m := range body.Mappings {
			byService[m["serviceId"].(string)] = m
			names = append(names, m["serviceName"].(string))
			assert.Len(t, m, 10, "entityRef, entityName, integrationKey, serviceId, status, serviceName, team, escalationPolicy, serviceUrl, account")
		}
		assert.IsNonDecreasing(t, names, "sorted by service name")
		assert.Equal(t, "OutOfSync", byService["PACME01"]["status"], "mapped explicitly, no catalog entity says so")
		assert.Equal(t, "checkout", byService["PACME01"]["entityName"])
		assert.Equal(t, "NotMapped", byService["PACME03"]["status"])
		assert.Equal(t, "globex", byService["PGLOB01"]["account"])
		assert.Equal(t, "Acme EP", byService["PACME04"]["escalationPolicy"])
	})
}

func TestDependencyAndCatalogRoutes(t *testing.T) {
	e := newCatalogEnv(t)

	t.Run("bad bodies answer 400", func(t *testing.T) {
		for _, b := range []struct{ name, body string }{
			{"object", `{"PACME02":true}`}, {"empty array", `[]`}, {"empty id", `[""]`}, {"not JSON", `PACME02`},
		} {
			for _, m := range []string{http.MethodPost, http.MethodDelete} {
				r := e.do(t, m, "/dependencies/service/PACME01", b.body)
				assert.Equal(t, http.StatusBadRequest, r.status, "%s %s", m, b.name)
				assert.Contains(t, jsonString(t, r), "Bad Request")
			}
		}
		r := e.do(t, http.MethodPost, "/dependencies/service/PACME01?account=nosuch", `["PACME02"]`)
		assert.Equal(t, http.StatusBadRequest, r.status)
		assert.Contains(t, jsonString(t, r), "unknown account")
		r = e.do(t, http.MethodPost, "/dependencies/service/PACME01", `["PNOSUCH"]`)
		assert.Equal(t, http.StatusNotFound, r.status)
		assert.Contains(t, r.json(t), "errors")
		assert.Empty(t, e.edges("acme"))
	})

	t.Run("write, read and remove, in the account asked for", func(t *testing.T) {
		r := e.do(t, http.MethodPost, "/dependencies/service/PACME01", `["PACME02","PACME03"]`)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		assert.Equal(t, "OK", string(r.body))
		assert.ElementsMatch(t, []string{"PACME01>PACME02", "PACME01>PACME03"}, e.edges("acme"))

		r = e.do(t, http.MethodPost, "/dependencies/service/PGLOB01?account=globex", `["PGLOB02"]`)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		assert.Equal(t, []string{"PGLOB01>PGLOB02"}, e.edges("globex"))
		assert.Len(t, e.edges("acme"), 2, "nothing written to the default account")

		r = e.do(t, http.MethodGet, "/dependencies/service/PACME01", "")
		require.Equal(t, http.StatusOK, r.status)
		var body struct {
			Relationships []struct {
				Supporting map[string]any `json:"supporting_service"`
				Dependent  map[string]any `json:"dependent_service"`
			} `json:"relationships"`
		}
		require.NoError(t, json.Unmarshal(r.body, &body))
		require.Len(t, body.Relationships, 2)
		assert.Equal(t, "PACME01", body.Relationships[0].Dependent["id"])

		r = e.do(t, http.MethodDelete, "/dependencies/service/PACME01", `["PACME03"]`)
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, "OK", string(r.body))
		assert.Equal(t, []string{"PACME01>PACME02"}, e.edges("acme"))
		r = e.do(t, http.MethodGet, "/dependencies/service/PGLOB01?account=globex", "")
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, string(r.body), "PGLOB02")
	})

	t.Run("catalog entity answers the service id as a bare JSON string", func(t *testing.T) {
		e.fake.Put(backstagefake.Entity{Kind: "Component", Name: "checkout", Annotations: map[string]string{"pagerduty.com/service-id": "PACME01"}})
		e.fake.Put(backstagefake.Entity{Kind: "Component", Name: "plain"})
		require.Eventually(t, func() bool {
			return e.do(t, http.MethodGet, "/catalog/entity/component/default/plain", "").status == http.StatusOK
		}, 10*time.Second, 20*time.Millisecond, "the watcher brings the entities in")
		r := e.do(t, http.MethodGet, "/catalog/entity/Component/default/Checkout", "")
		require.Equal(t, http.StatusOK, r.status)
		assert.Equal(t, `"PACME01"`, strings.TrimSpace(string(r.body)))
		r = e.do(t, http.MethodGet, "/catalog/entity/component/default/plain", "")
		assert.Equal(t, http.StatusOK, r.status)
		assert.Empty(t, r.body, "no service id: 200 with an empty body")
		r = e.do(t, http.MethodGet, "/catalog/entity/component/default/unknown", "")
		assert.Equal(t, http.StatusNotFound, r.status, "unknown entity: 404, never a hang")
		r = e.do(t, http.MethodGet, "/catalog/entity/component/default/a%20b", "")
		assert.Equal(t, http.StatusBadRequest, r.status)
	})
}

// TestCatalogToPagerDutyDependencies is the whole path: the fake Backstage catalog →
// the catalog watcher → NATS → the catalog consumer → the dependency reconcile → the
// simulator's dependencies; then a change and a deletion.
func TestCatalogToPagerDutyDependencies(t *testing.T) {
	e := newCatalogEnv(t)
	r := e.do(t, http.MethodPost, "/settings", `[{"id":"settings::service-dependency-sync-strategy","value":"backstage"}]`)
	require.Equal(t, http.StatusOK, r.status)
	annotated := func(i int, deps ...string) backstagefake.Entity {
		return backstagefake.Entity{Kind: "Component", Name: fmt.Sprintf("acme-%d", i),
			Annotations: map[string]string{"pagerduty.com/service-id": acmeService(i)}, DependsOn: deps}
	}
	e.fake.Put(annotated(1, "component:acme-2", "component:default/acme-3", "resource:db"))
	e.fake.Put(annotated(2, "component:acme-3"))
	e.fake.Put(annotated(3))
	e.fake.Put(annotated(4, "component:acme-1"))
	e.fake.Put(backstagefake.Entity{Kind: "Component", Name: "unmapped", DependsOn: []string{"component:acme-1"}})
	e.fake.Put(backstagefake.Entity{Kind: "Component", Name: "billing", Annotations: map[string]string{
		"pagerduty.com/service-id": globexService(1), "pagerduty.com/account": "globex"}, DependsOn: []string{"component:ledger"}})
	e.fake.Put(backstagefake.Entity{Kind: "Component", Name: "ledger", Annotations: map[string]string{
		"pagerduty.com/service-id": globexService(2), "pagerduty.com/account": "globex"}})

	want := []string{"PACME01>PACME02", "PACME01>PACME03", "PACME02>PACME03", "PACME04>PACME01"}
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual(want, e.edges("acme")) }, 30*time.Second, 50*time.Millisecond,
		"the catalog's dependsOn reaches PagerDuty: have %v", e.edges("acme"))
	require.Eventually(t, func() bool { return len(e.edges("globex")) == 1 }, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, []string{"PGLOB01>PGLOB02"}, e.edges("globex"), "written in the entity's own account")

	// acme-1 drops acme-3 and gains acme-5 (a new component); only its edges change.
	e.fake.Put(annotated(5))
	e.fake.Put(annotated(1, "component:acme-2", "component:acme-5"))
	want = []string{"PACME01>PACME02", "PACME01>PACME05", "PACME02>PACME03", "PACME04>PACME01"}
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual(want, e.edges("acme")) }, 30*time.Second, 50*time.Millisecond,
		"have %v", e.edges("acme"))

	// A deleted entity leaves the snapshot store; its PagerDuty dependencies stay.
	require.True(t, e.fake.Delete("component:default/acme-4"))
	require.Eventually(t, func() bool {
		return e.do(t, http.MethodGet, "/catalog/entity/component/default/acme-4", "").status == http.StatusNotFound
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, want, e.edges("acme"))
}
