package pagerduty_test

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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/secret"
)

const (
	testClientID     = "client-0123"
	testClientSecret = "cs-SECRET-9f8e7d6c5b"
)

// oauthPD is a token endpoint plus a REST endpoint that accepts only tokens it issued,
// unexpired and not revoked.
type oauthPD struct {
	mu           sync.Mutex
	ttl          int // expires_in, seconds
	fetches      int
	scopes       []string
	expiry       map[string]time.Time
	revoked      map[string]bool
	rejectAll    bool
	apiCalls     int
	unauthorized int
}

func newOAuthPD(ttl int) *oauthPD {
	return &oauthPD{ttl: ttl, expiry: map[string]time.Time{}, revoked: map[string]bool{}}
}

func (p *oauthPD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.URL.Path == "/oauth/token" {
		_ = r.ParseForm()
		_, _, basic := r.BasicAuth()
		if basic || r.PostForm.Get("grant_type") != "client_credentials" ||
			r.PostForm.Get("client_id") != testClientID || r.PostForm.Get("client_secret") != testClientSecret {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"client authentication failed"}`)
			return
		}
		p.fetches++
		p.scopes = strings.Fields(r.PostForm.Get("scope"))
		tok := fmt.Sprintf("pdus+ACCESS-%d-%s", p.fetches, "x9y8z7")
		p.expiry[tok] = time.Now().Add(time.Duration(p.ttl) * time.Second)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": tok, "token_type": "bearer", "expires_in": p.ttl, "scope": strings.Join(p.scopes, " "),
		})
		return
	}
	p.apiCalls++
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	exp, issued := p.expiry[tok]
	if !ok || !issued || time.Now().After(exp) || p.revoked[tok] || p.rejectAll {
		p.unauthorized++
		writePDError(w, http.StatusUnauthorized, 2006, "Authentication failed", "token "+tok)
		return
	}
	abilitiesOK(w)
}

func (p *oauthPD) counts() (fetches, apiCalls, unauthorized int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fetches, p.apiCalls, p.unauthorized
}

func (p *oauthPD) revokeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for tok := range p.expiry {
		p.revoked[tok] = true
	}
}

func newOAuthClient(t *testing.T, p *oauthPD, region string) (*pagerduty.Client, *prometheus.Registry, *syncBuffer) {
	t.Helper()
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	accts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{{
		ID:     "acme",
		APIURL: srv.URL,
		OAuth: &pagerduty.OAuthConfig{
			ClientID:     testClientID,
			ClientSecret: secret.Value(testClientSecret),
			Subdomain:    "acme",
			Region:       region,
			TokenURL:     srv.URL + "/oauth/token",
		},
	}}, testOptions(reg), zerolog.New(logs).Level(zerolog.DebugLevel))
	require.NoError(t, err)
	return accts.Default(), reg, logs
}

func TestOAuthTokenFetchedOnceForConcurrentCalls(t *testing.T) {
	p := newOAuthPD(86400)
	c, reg, _ := newOAuthClient(t, p, "")

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			_, err := c.ListAbilities(context.Background())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	fetches, apiCalls, unauthorized := p.counts()
	assert.Equal(t, 1, fetches)
	assert.Equal(t, 50, apiCalls)
	assert.Zero(t, unauthorized)
	assert.Equal(t, "as_account-us.acme", p.scopes[0])
	for _, s := range []string{"services.read", "services.write", "abilities.read", "vendors.read", "escalation_policies.read",
		"incidents.read", "oncalls.read", "standards.read", "analytics.read", "change_events.read",
		"webhook_subscriptions.read", "webhook_subscriptions.write"} {
		assert.Contains(t, p.scopes, s)
	}
	assert.Equal(t, 1.0, metricValue(t, reg, "pdworker_pagerduty_requests_total", map[string]string{"route": "POST /oauth/token", "status": "200"}),
		"the token fetch goes through the account's transport")
}

func TestOAuthTokenRefreshedBeforeExpiry(t *testing.T) {
	// 301 s of validity minus the client's 5-minute early expiry: the cached token is
	// due for replacement after about a second, long before PagerDuty would reject it.
	p := newOAuthPD(301)
	c, _, _ := newOAuthClient(t, p, "us")
	require.Eventually(t, func() bool {
		_, err := c.ListAbilities(context.Background())
		require.NoError(t, err)
		fetches, _, _ := p.counts()
		return fetches >= 2
	}, 10*time.Second, 50*time.Millisecond)
	_, _, unauthorized := p.counts()
	assert.Zero(t, unauthorized, "the token was replaced before it expired")
}

func TestOAuth401RefetchesOnce(t *testing.T) {
	p := newOAuthPD(86400)
	c, reg, _ := newOAuthClient(t, p, "us")
	_, err := c.ListAbilities(context.Background())
	require.NoError(t, err)

	p.revokeAll()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := c.ListAbilities(context.Background())
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	fetches, _, unauthorized := p.counts()
	assert.Equal(t, 2, fetches, "one re-fetch shared by every caller that saw the 401")
	assert.Positive(t, unauthorized)
	assert.Equal(t, float64(unauthorized), metricValue(t, reg, "pdworker_pagerduty_retries_total", map[string]string{"reason": "unauthorized"}))

	// A token PagerDuty keeps refusing: one re-fetch and one re-send, then a permanent 401.
	p.mu.Lock()
	p.rejectAll = true
	p.mu.Unlock()
	fetchesBefore, callsBefore, _ := p.counts()
	_, err = c.ListAbilities(context.Background())
	require.Error(t, err)
	var ae *pagerduty.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 401, ae.Status)
	assert.Equal(t, pagerduty.ClassPermanent, ae.Class)
	fetches, calls, _ := p.counts()
	assert.Equal(t, 1, fetches-fetchesBefore)
	assert.Equal(t, 2, calls-callsBefore)
}

func TestOAuthBadCredentials(t *testing.T) {
	p := newOAuthPD(86400)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	accts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{{
		ID: "acme", APIURL: srv.URL,
		OAuth: &pagerduty.OAuthConfig{ClientID: testClientID, ClientSecret: "cs-WRONG-secret-value", Subdomain: "acme", TokenURL: srv.URL + "/oauth/token"},
	}}, testOptions(nil), zerolog.New(logs).Level(zerolog.DebugLevel))
	require.NoError(t, err)

	_, err = accts.Default().ListAbilities(context.Background())
	require.Error(t, err)
	var ae *pagerduty.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, pagerduty.ClassPermanent, ae.Class)
	assert.Equal(t, 401, ae.Status)
	assert.Equal(t, "pagerduty list abilities (account acme): 401 oauth token request failed: invalid_client client authentication failed", err.Error())
	_, apiCalls, _ := p.counts()
	assert.Zero(t, apiCalls)
	assert.NotContains(t, logs.String(), "cs-WRONG-secret-value")
}

func TestOAuthEURegion(t *testing.T) {
	p := newOAuthPD(86400)
	c, _, _ := newOAuthClient(t, p, "EU")
	_, err := c.ListAbilities(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "as_account-eu.acme", p.scopes[0])
	assert.Equal(t, pagerduty.DefaultEUEventsURL, c.EventsURL())
}
