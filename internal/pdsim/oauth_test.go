package pdsim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	pagerduty "github.com/PagerDuty/go-pagerduty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/pdworker/pdworker/internal/pdsim"
)

func TestOAuthClientCredentials(t *testing.T) {
	clk := newClock()
	sim, srv := newSimAt(t, pdsim.Options{OAuthTokenTTL: 30 * time.Minute}, clk)
	ctx := t.Context()

	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInParams, oauth2.AuthStyleInHeader} {
		cc := clientcredentials.Config{
			ClientID: pdsim.DemoAcmeOAuthClientID, ClientSecret: pdsim.DemoAcmeOAuthSecret,
			TokenURL: srv.URL + "/oauth/token", Scopes: []string{"as_account-us.acme", "services.read", "abilities.read"},
			AuthStyle: style,
		}
		tok, err := cc.Token(ctx)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(tok.AccessToken, "pdus+_"))
		assert.Equal(t, "bearer", strings.ToLower(tok.TokenType))

		abilities, err := pagerduty.NewClient(tok.AccessToken, pagerduty.WithOAuth(), pagerduty.WithAPIEndpoint(srv.URL)).ListAbilitiesWithContext(ctx)
		require.NoError(t, err)
		assert.Contains(t, abilities.Abilities, pdsim.AbilityTimeBasedGrouping)
	}
	assert.Equal(t, 2, sim.TokensIssued(pdsim.DemoAcmeOAuthClientID))
	assert.Equal(t, "acme", sim.Requests()[len(sim.Requests())-1].Account)

	t.Run("expired token", func(t *testing.T) {
		tok := issue(t, srv, url.Values{
			"grant_type": {"client_credentials"}, "client_id": {pdsim.DemoAcmeOAuthClientID},
			"client_secret": {pdsim.DemoAcmeOAuthSecret}, "scope": {"as_account-us.acme services.read"},
		})
		c := pagerduty.NewClient(tok, pagerduty.WithOAuth(), pagerduty.WithAPIEndpoint(srv.URL))
		_, err := c.ListAbilitiesWithContext(ctx)
		require.NoError(t, err)
		clk.Advance(30 * time.Minute)
		_, err = c.ListAbilitiesWithContext(ctx)
		e := apiError(t, err)
		assert.Equal(t, http.StatusUnauthorized, e.StatusCode)
		assert.Equal(t, 2006, e.APIError.ErrorObject.Code)
	})

	tests := []struct {
		name       string
		form       url.Values
		wantStatus int
		wantError  string
	}{
		{"wrong grant", url.Values{"grant_type": {"password"}, "client_id": {pdsim.DemoAcmeOAuthClientID}, "client_secret": {pdsim.DemoAcmeOAuthSecret}, "scope": {"as_account-us.acme"}}, 400, "invalid_request"},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {pdsim.DemoAcmeOAuthClientID}, "client_secret": {"nope"}, "scope": {"as_account-us.acme"}}, 401, "invalid_client"},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"who"}, "client_secret": {"x"}, "scope": {"as_account-us.acme"}}, 401, "invalid_client"},
		{"no account scope", url.Values{"grant_type": {"client_credentials"}, "client_id": {pdsim.DemoAcmeOAuthClientID}, "client_secret": {pdsim.DemoAcmeOAuthSecret}, "scope": {"services.read"}}, 400, "invalid_request"},
		{"wrong region", url.Values{"grant_type": {"client_credentials"}, "client_id": {pdsim.DemoAcmeOAuthClientID}, "client_secret": {pdsim.DemoAcmeOAuthSecret}, "scope": {"as_account-eu.acme"}}, 400, "invalid_request"},
		{"another account", url.Values{"grant_type": {"client_credentials"}, "client_id": {pdsim.DemoAcmeOAuthClientID}, "client_secret": {pdsim.DemoAcmeOAuthSecret}, "scope": {"as_account-eu.globex"}}, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := srv.Client().PostForm(srv.URL+"/oauth/token", tt.form)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			var body struct {
				Error string `json:"error"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, tt.wantError, body.Error)
		})
	}
	assert.Equal(t, 3, sim.TokensIssued(pdsim.DemoAcmeOAuthClientID), "refusals issue nothing")

	t.Run("bearer tokens are not API tokens and vice versa", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/abilities", nil)
		req.Header.Set("Authorization", "Bearer "+pdsim.DemoAcmeToken)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}

// issue gets an access token with a raw form post and checks the token answer.
func issue(t *testing.T, srv *httptest.Server, form url.Values) string {
	t.Helper()
	resp, err := srv.Client().PostForm(srv.URL+"/oauth/token", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, "bearer", body.TokenType)
	assert.Equal(t, 1800, body.ExpiresIn)
	assert.Equal(t, form.Get("scope"), body.Scope)
	return body.AccessToken
}
