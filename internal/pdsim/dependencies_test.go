package pdsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

func depBody(pairs ...[2]string) string {
	var rels []string
	for _, p := range pairs {
		rels = append(rels, fmt.Sprintf(`{"dependent_service":{"id":%q,"type":"service"},"supporting_service":{"id":%q,"type":"service"}}`, p[0], p[1]))
	}
	return `{"relationships":[` + strings.Join(rels, ",") + `]}`
}

func TestServiceDependencies(t *testing.T) {
	sim := pdsim.New(pdsim.Options{})
	seed := pdsim.AccountSeed{ID: "deps", Subdomain: "deps", Region: "us", Tokens: []string{"tok-deps"},
		EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PEP0001", Name: "EP"}}}
	for i := range 4 {
		seed.Services = append(seed.Services, pdsim.ServiceSeed{ID: fmt.Sprintf("PSVC00%d", i), Name: fmt.Sprintf("svc %d", i), EscalationPolicyID: "PEP0001"})
	}
	require.NoError(t, sim.AddAccount(seed))
	srv := newServer(t, sim)
	const tok = "tok-deps"

	resp, body := call(t, srv, http.MethodPost, "/service_dependencies/associate", tok, depBody([2]string{"PSVC000", "PSVC001"}, [2]string{"PSVC001", "PSVC002"}))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var out struct {
		Relationships []struct {
			ID         string            `json:"id"`
			Type       string            `json:"type"`
			Supporting map[string]string `json:"supporting_service"`
			Dependent  map[string]string `json:"dependent_service"`
		} `json:"relationships"`
	}
	require.NoError(t, json.Unmarshal(body, &out))
	require.Len(t, out.Relationships, 2)
	assert.Equal(t, "service_dependency", out.Relationships[0].Type)
	assert.Equal(t, "technical_service_reference", out.Relationships[0].Supporting["type"], "answers use the reference type")
	firstID := out.Relationships[0].ID

	t.Run("duplicate association is idempotent", func(t *testing.T) {
		resp, body := call(t, srv, http.MethodPost, "/service_dependencies/associate", tok, depBody([2]string{"PSVC000", "PSVC001"}))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, string(body), firstID)
		assert.Len(t, sim.Dependencies("deps"), 2)
	})
	t.Run("cycle is 400 2002 and the batch applies nothing", func(t *testing.T) {
		resp, body := call(t, srv, http.MethodPost, "/service_dependencies/associate", tok, depBody([2]string{"PSVC003", "PSVC000"}, [2]string{"PSVC002", "PSVC000"}))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, string(body), `"code":2002`)
		assert.Contains(t, string(body), "circular dependency")
		assert.Len(t, sim.Dependencies("deps"), 2)
	})
	t.Run("self dependency is a cycle", func(t *testing.T) {
		resp, _ := call(t, srv, http.MethodPost, "/service_dependencies/associate", tok, depBody([2]string{"PSVC003", "PSVC003"}))
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("unknown id is 404", func(t *testing.T) {
		resp, _ := call(t, srv, http.MethodPost, "/service_dependencies/associate", tok, depBody([2]string{"PSVC003", "PNOPE00"}))
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		resp, _ = call(t, srv, http.MethodGet, "/service_dependencies/technical_services/PNOPE00", tok, "")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
	t.Run("an oversized body is 413, as on every endpoint", func(t *testing.T) {
		resp, body := call(t, srv, http.MethodPost, "/service_dependencies/associate", tok, `{"relationships":[`+strings.Repeat(" ", 1<<20)+`]}`)
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		assert.JSONEq(t, `{"error":{"message":"Request Entity Too Large","code":2001}}`, string(body))
	})
	t.Run("read lists both directions", func(t *testing.T) {
		resp, body := call(t, srv, http.MethodGet, "/service_dependencies/technical_services/PSVC001", tok, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.Unmarshal(body, &out))
		assert.Len(t, out.Relationships, 2)
	})
	t.Run("disassociate removes and ignores missing", func(t *testing.T) {
		resp, body := call(t, srv, http.MethodPost, "/service_dependencies/disassociate", tok, depBody([2]string{"PSVC000", "PSVC001"}, [2]string{"PSVC003", "PSVC001"}))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.Unmarshal(body, &out))
		assert.Len(t, out.Relationships, 1)
		assert.Equal(t, []pdsim.DependencyState{{Dependent: "PSVC001", Supporting: "PSVC002"}}, sim.Dependencies("deps"))
	})
}

func TestServiceDependencyLimit(t *testing.T) {
	sim := pdsim.New(pdsim.Options{RateLimit: 1 << 20})
	seed := pdsim.AccountSeed{ID: "big", Subdomain: "big", Region: "us", Tokens: []string{"tok-big"},
		EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PEP0001", Name: "EP"}}}
	for i := range pdsim.DependencyLimit + 2 {
		seed.Services = append(seed.Services, pdsim.ServiceSeed{ID: fmt.Sprintf("PS%05d", i), Name: fmt.Sprintf("s%d", i), EscalationPolicyID: "PEP0001"})
	}
	require.NoError(t, sim.AddAccount(seed))
	srv := newServer(t, sim)
	var pairs [][2]string
	for i := 1; i <= pdsim.DependencyLimit; i++ {
		pairs = append(pairs, [2]string{"PS00000", fmt.Sprintf("PS%05d", i)})
	}
	resp, body := call(t, srv, http.MethodPost, "/service_dependencies/associate", "tok-big", depBody(pairs...))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	resp, body = call(t, srv, http.MethodPost, "/service_dependencies/associate", "tok-big", depBody([2]string{"PS00000", fmt.Sprintf("PS%05d", pdsim.DependencyLimit+1)}))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), "2000")
}
