package pagerduty_test

import (
	"errors"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/secret"
)

const validationSecret = "tok-VALIDATION-s3cr3t"

func oauthCfg(mut func(*pagerduty.OAuthConfig)) *pagerduty.OAuthConfig {
	o := &pagerduty.OAuthConfig{ClientID: "cid", ClientSecret: secret.Value(validationSecret), Subdomain: "acme", Region: "us"}
	if mut != nil {
		mut(o)
	}
	return o
}

func TestAccountValidation(t *testing.T) {
	tok := secret.Value(validationSecret)
	tests := []struct {
		name    string
		cfgs    []pagerduty.AccountConfig
		wantErr []string // substrings; empty = valid
	}{
		{"single account is default", []pagerduty.AccountConfig{{ID: "default", Token: tok}}, nil},
		{"no accounts", nil, []string{"no pagerduty account configured"}},
		{"empty id", []pagerduty.AccountConfig{{Token: tok}}, []string{`pagerduty account #1: id is empty`}},
		{"bad id", []pagerduty.AccountConfig{{ID: "a b", Token: tok}}, []string{`pagerduty account "a b": id must be`}},
		{"duplicate id", []pagerduty.AccountConfig{{ID: "acme", Token: tok, Default: true}, {ID: "acme", Token: tok}},
			[]string{`pagerduty account "acme": id is used by more than one account`}},
		{"no default", []pagerduty.AccountConfig{{ID: "a", Token: tok}, {ID: "b", Token: tok}}, []string{"none is marked default"}},
		{"two defaults", []pagerduty.AccountConfig{{ID: "a", Token: tok, Default: true}, {ID: "b", Token: tok, Default: true}},
			[]string{`"a", "b" are all marked default`}},
		{"neither token nor oauth", []pagerduty.AccountConfig{{ID: "acme"}}, []string{`pagerduty account "acme": neither token nor oauth is set`}},
		{"both token and oauth", []pagerduty.AccountConfig{{ID: "acme", Token: tok, OAuth: oauthCfg(nil)}},
			[]string{`pagerduty account "acme": both token and oauth are set`}},
		{"oauth region", []pagerduty.AccountConfig{{ID: "acme", OAuth: oauthCfg(func(o *pagerduty.OAuthConfig) { o.Region = "ap" })}},
			[]string{`pagerduty account "acme": oauth.region "ap" is not one of us, eu`}},
		{"oauth fields", []pagerduty.AccountConfig{{ID: "acme", OAuth: oauthCfg(func(o *pagerduty.OAuthConfig) {
			o.ClientID, o.ClientSecret, o.Subdomain = "", "", "Acme.pagerduty.com"
		})}}, []string{"oauth.clientId is empty", "oauth.clientSecret is empty", `oauth.subdomain "Acme.pagerduty.com" is not a subdomain label`}},
		{"oauth token url", []pagerduty.AccountConfig{{ID: "acme", OAuth: oauthCfg(func(o *pagerduty.OAuthConfig) { o.TokenURL = "ftp://x" })}},
			[]string{`pagerduty account "acme": oauth.tokenUrl: must be an http:// or https:// URL`}},
		{"api url with credentials", []pagerduty.AccountConfig{{ID: "acme", Token: tok, APIURL: "https://user:" + validationSecret + "@api.pagerduty.com"}},
			[]string{`pagerduty account "acme": apiUrl: must not contain credentials`}},
		{"api url relative", []pagerduty.AccountConfig{{ID: "acme", Token: tok, APIURL: "api.pagerduty.com"}},
			[]string{`pagerduty account "acme": apiUrl: must be an http:// or https:// URL`}},
		{"events url unparsable", []pagerduty.AccountConfig{{ID: "acme", Token: tok, EventsURL: "http://[::1"}},
			[]string{`pagerduty account "acme": eventsUrl: not a valid URL`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			accts, err := pagerduty.NewAccounts(tt.cfgs, pagerduty.Options{}, zerolog.Nop())
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				require.NotNil(t, accts.Default())
				return
			}
			require.Error(t, err)
			for _, want := range tt.wantErr {
				assert.Contains(t, err.Error(), want)
			}
			assert.NotContains(t, err.Error(), validationSecret)
		})
	}
}

func TestAccountLookup(t *testing.T) {
	tok := secret.Value(validationSecret)
	accts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{
		{ID: "globex", Token: tok},
		{ID: "acme", Token: tok, Default: true},
		{ID: "initech", Token: tok},
	}, pagerduty.Options{}, zerolog.Nop())
	require.NoError(t, err)

	var ids []string
	for _, c := range accts.All() {
		ids = append(ids, c.Account())
	}
	assert.Equal(t, []string{"acme", "globex", "initech"}, ids, "default first, then configuration order")

	c, err := accts.Client("")
	require.NoError(t, err)
	assert.Equal(t, "acme", c.Account())
	assert.Same(t, accts.Default(), c)
	c, err = accts.Client("globex")
	require.NoError(t, err)
	assert.Equal(t, "globex", c.Account())

	_, err = accts.Client("umbrella")
	assert.True(t, errors.Is(err, pagerduty.ErrUnknownAccount))
	assert.Contains(t, err.Error(), `"umbrella"`)
}

func TestRegionDefaults(t *testing.T) {
	tests := []struct {
		name           string
		cfg            pagerduty.AccountConfig
		apiURL, events string
	}{
		{"token account, US", pagerduty.AccountConfig{ID: "a", Token: "t0ken"},
			pagerduty.DefaultAPIURL, pagerduty.DefaultEventsURL},
		{"oauth, region omitted", pagerduty.AccountConfig{ID: "a", OAuth: oauthCfg(func(o *pagerduty.OAuthConfig) { o.Region = "" })},
			pagerduty.DefaultAPIURL, pagerduty.DefaultEventsURL},
		{"oauth, EU", pagerduty.AccountConfig{ID: "a", OAuth: oauthCfg(func(o *pagerduty.OAuthConfig) { o.Region = "eu" })},
			"https://api.eu.pagerduty.com", "https://events.eu.pagerduty.com"},
		{"token account with EU API URL", pagerduty.AccountConfig{ID: "a", Token: "t0ken", APIURL: "https://api.eu.pagerduty.com/"},
			"https://api.eu.pagerduty.com", "https://events.eu.pagerduty.com"},
		{"explicit URLs win", pagerduty.AccountConfig{ID: "a", APIURL: "http://127.0.0.1:9999", EventsURL: "http://127.0.0.1:9998",
			OAuth: oauthCfg(func(o *pagerduty.OAuthConfig) { o.Region = "eu" })},
			"http://127.0.0.1:9999", "http://127.0.0.1:9998"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			accts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{tt.cfg}, pagerduty.Options{}, zerolog.Nop())
			require.NoError(t, err)
			assert.Equal(t, tt.apiURL, accts.Default().APIURL())
			assert.Equal(t, tt.events, accts.Default().EventsURL())
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	_, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{{ID: "a", Token: "t0ken"}}, pagerduty.Options{RateLimit: -1}, zerolog.Nop())
	require.Error(t, err)
}
