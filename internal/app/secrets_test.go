package app

import (
	"net/http"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
)

// Secrets — PagerDuty API tokens, OAuth client secrets, the callers' API tokens — never
// reach logs, error answers or /metrics, whatever happens.
func TestSecretsNeverLeak(t *testing.T) {
	const (
		oauthSecret = "oauth-client-secret-DO-NOT-LEAK"
		wrongToken  = "pd-token-rejected-DO-NOT-LEAK"
	)
	seed := testSeed()
	seed.Accounts[0].Subdomain = "aiops"
	seed.Accounts[0].OAuthClients = []pdsim.OAuthClient{{ID: "client-1", Secret: oauthSecret}}
	sim, url := simulator(t, pdsim.Options{}, seed)
	cfg := testConfig(t, url, seed, "")
	cfg.PagerDuty.Accounts[0].Token = ""
	cfg.PagerDuty.Accounts[0].OAuth = &pagerduty.OAuthConfig{
		ClientID: "client-1", ClientSecret: secret.Value(oauthSecret), Subdomain: "aiops", Region: "us", TokenURL: url + "/oauth/token",
	}
	cfg.PagerDuty.Accounts = append(cfg.PagerDuty.Accounts, pagerduty.AccountConfig{ID: "rejected", APIURL: url, EventsURL: url, Token: wrongToken})
	logs := &logBuffer{}
	a := startApp(t, cfg, fastOptions(), zerolog.New(logs).Level(zerolog.TraceLevel))

	var answers []string
	ok := create(t, a, "", `{"name":"oauth-svc","description":"d","escalationPolicyId":"PAIOPS1","alertGrouping":"intelligent"}`)
	require.Equal(t, http.StatusOK, ok.status, "%s", ok.body)
	require.Equal(t, 1, sim.TokensIssued("client-1"), "the OAuth token was used")
	answers = append(answers, string(ok.body))

	rejected := create(t, a, "", `{"name":"x","description":"d","escalationPolicyId":"PREJECT","account":"rejected"}`)
	require.Equal(t, http.StatusBadGateway, rejected.status, "%s", rejected.body)
	assert.Contains(t, rejected.errorMessage(t), "401 Authentication failed")
	answers = append(answers, string(rejected.body))

	wrongCaller := call(t, a, http.MethodPost, createPath, "guess-"+testToken, nil, `{}`)
	require.Equal(t, http.StatusUnauthorized, wrongCaller.status)
	answers = append(answers, string(wrongCaller.body))

	metrics := call(t, a, http.MethodGet, "/metrics", "", nil, "")
	require.Equal(t, http.StatusOK, metrics.status)
	a.Stop()

	require.NotEmpty(t, logs.String())
	for _, s := range []string{oauthSecret, wrongToken, testToken, "pd-token-basic", "pd-token-legacy"} {
		assert.NotContains(t, logs.String(), s, "logs")
		assert.NotContains(t, string(metrics.body), s, "metrics")
		for _, ans := range answers {
			assert.NotContains(t, ans, s, "answers")
		}
	}
}
