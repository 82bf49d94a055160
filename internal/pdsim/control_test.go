package pdsim_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

func TestRequestLog(t *testing.T) {
	sim, srv := newSim(t, pdsim.Options{})
	c := pdClient(srv, acme)
	svc := createService(t, c, "logged")
	call(t, srv, http.MethodGet, "/services?query=log&limit=5", acme, "")
	call(t, srv, http.MethodGet, "/services/"+svc.ID, "bad-token", "")
	call(t, srv, http.MethodGet, "/_sim/healthz", "", "")

	reqs := sim.Requests()
	require.Len(t, reqs, 3, "control calls are not logged")
	assert.Equal(t, pdsim.Request{Time: reqs[0].Time, Account: "acme", Method: "POST", Path: "/services", Status: 201}, reqs[0])
	assert.Equal(t, "query=log&limit=5", reqs[1].Query)
	assert.Equal(t, pdsim.Request{Time: reqs[2].Time, Method: "GET", Path: "/services/" + svc.ID, Status: 401}, reqs[2])
	assert.False(t, reqs[0].Time.IsZero())

	assert.Equal(t, 3, sim.Count("", ""))
	assert.Equal(t, 2, sim.Count(http.MethodGet, "/services"))
	assert.Equal(t, 1, sim.Count(http.MethodPost, "/services"))
	assert.Equal(t, 0, sim.Count(http.MethodDelete, ""))

	resp, b := call(t, srv, http.MethodGet, "/_sim/requests?method=GET&path=/services/", "", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out struct {
		Requests []pdsim.Request `json:"requests"`
	}
	require.NoError(t, json.Unmarshal(b, &out))
	require.Len(t, out.Requests, 1)
	assert.Equal(t, 401, out.Requests[0].Status)

	sim.ResetRequests()
	assert.Empty(t, sim.Requests())
	call(t, srv, http.MethodGet, "/abilities", acme, "")
	resp, _ = call(t, srv, http.MethodDelete, "/_sim/requests", "", "")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Zero(t, sim.Count("", ""))
}

func TestControlAPI(t *testing.T) {
	sim, srv := newSim(t, pdsim.Options{})

	resp, b := call(t, srv, http.MethodGet, "/_sim/healthz", "", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"status":"ok"}`, string(b))

	t.Run("faults", func(t *testing.T) {
		resp, b := call(t, srv, http.MethodPost, "/_sim/faults", "", `{"kind":"latency","latency":"5ms","path_prefix":"/abilities","count":1}`)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))
		var created struct{ ID int }
		require.NoError(t, json.Unmarshal(b, &created))
		assert.Positive(t, created.ID)

		_, b = call(t, srv, http.MethodGet, "/_sim/faults", "", "")
		var list struct {
			Faults []struct {
				ID    int         `json:"id"`
				Fault pdsim.Fault `json:"fault"`
			} `json:"faults"`
		}
		require.NoError(t, json.Unmarshal(b, &list))
		require.Len(t, list.Faults, 1)
		assert.Equal(t, 5*time.Millisecond, list.Faults[0].Fault.Latency)

		call(t, srv, http.MethodGet, "/abilities", acme, "")
		assert.Equal(t, "latency", sim.Requests()[0].Fault)

		for _, bad := range []string{`{"kind":"nope"}`, `{"kind":"latency","latency":"soon"}`, `{"kind":"5xx","pathPrefix":"/x"}`} {
			resp, _ := call(t, srv, http.MethodPost, "/_sim/faults", "", bad)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, bad)
		}

		resp, _ = call(t, srv, http.MethodDelete, "/_sim/faults/"+jsonInt(created.ID), "", "")
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
		resp, _ = call(t, srv, http.MethodDelete, "/_sim/faults/"+jsonInt(created.ID), "", "")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)

		call(t, srv, http.MethodPost, "/_sim/faults", "", `{"kind":"5xx"}`)
		resp, _ = call(t, srv, http.MethodDelete, "/_sim/faults", "", "")
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
		resp, _ = call(t, srv, http.MethodGet, "/abilities", acme, "")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("seed and state", func(t *testing.T) {
		seed := `{"accounts":[{"id":"initech","tokens":["initech-token"],"escalation_policies":[{"id":"PINIT01","name":"Initech Ops"}],
			"services":[{"id":"PINITS1","name":"TPS reports","escalation_policy_id":"PINIT01"}]}]}`
		resp, b := call(t, srv, http.MethodPost, "/_sim/seed", "", seed)
		require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))
		resp, b = call(t, srv, http.MethodPost, "/_sim/seed", "", seed)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "an account is added once")
		assert.Contains(t, string(b), "already exists")

		resp, b = call(t, srv, http.MethodGet, "/services/PINITS1", "initech-token", "")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		assert.Contains(t, string(b), "https://initech.pagerduty.com/service-directory/PINITS1")

		resp, b = call(t, srv, http.MethodGet, "/_sim/state", "", "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var state struct {
			Accounts []struct {
				ID       string               `json:"id"`
				Services []pdsim.ServiceState `json:"services"`
			} `json:"accounts"`
		}
		require.NoError(t, json.Unmarshal(b, &state))
		require.Len(t, state.Accounts, 3)
		assert.Equal(t, "initech", state.Accounts[2].ID)
		assert.Equal(t, "TPS reports", state.Accounts[2].Services[0].Name)
		assert.NotContains(t, string(b), pdsim.DemoAcmeToken, "credentials stay out of the state dump")
		assert.NotContains(t, string(b), pdsim.DemoAcmeOAuthSecret)
	})

	resp, _ = call(t, srv, http.MethodGet, "/_sim/nothing", "", "")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func jsonInt(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestLoadValidation(t *testing.T) {
	ep := []pdsim.EscalationPolicySeed{{ID: "PEPONE1", Name: "One"}}
	tests := []struct {
		name    string
		seed    pdsim.AccountSeed
		wantErr string
	}{
		{"missing id", pdsim.AccountSeed{}, "account id is required"},
		{"duplicate account", pdsim.AccountSeed{ID: "acme"}, `account "acme" already exists`},
		{"token in use", pdsim.AccountSeed{ID: "x", Tokens: []string{pdsim.DemoAcmeToken}}, "token is empty or already in use"},
		{"oauth client in use", pdsim.AccountSeed{ID: "x", OAuthClients: []pdsim.OAuthClient{{ID: pdsim.DemoAcmeOAuthClientID, Secret: "s"}}}, "already in use"},
		{"bad region", pdsim.AccountSeed{ID: "x", Region: "ap"}, "region"},
		{"object id in use", pdsim.AccountSeed{ID: "x", EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PACME01", Name: "dup"}}}, "already in use"},
		{"service on unknown policy", pdsim.AccountSeed{ID: "x", EscalationPolicies: ep, Services: []pdsim.ServiceSeed{{Name: "s", EscalationPolicyID: "PNOSUCH"}}}, "not found"},
		{"repeated service name", pdsim.AccountSeed{ID: "x", EscalationPolicies: ep, Services: []pdsim.ServiceSeed{{Name: "s", EscalationPolicyID: "PEPONE1"}, {Name: "S", EscalationPolicyID: "PEPONE1"}}}, "repeated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := pdsim.New(pdsim.Options{})
			require.NoError(t, sim.Load(pdsim.DemoSeed()))
			assert.ErrorContains(t, sim.AddAccount(tt.seed), tt.wantErr)
			assert.Nil(t, sim.Services("x"))
		})
	}

	t.Run("all or nothing", func(t *testing.T) {
		sim := pdsim.New(pdsim.Options{})
		err := sim.Load(pdsim.Seed{Accounts: []pdsim.AccountSeed{
			{ID: "good", Tokens: []string{"t1"}, EscalationPolicies: ep},
			{ID: "bad", Tokens: []string{"t1"}},
		}})
		require.Error(t, err)
		assert.Nil(t, sim.Services("good"))
		require.NoError(t, sim.Load(pdsim.Seed{Accounts: []pdsim.AccountSeed{{ID: "good", Tokens: []string{"t1"}, EscalationPolicies: ep}}}),
			"the refused load reserved nothing")
	})
}
