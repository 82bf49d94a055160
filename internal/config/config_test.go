package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/config"
)

// setEnv clears every variable the service reads, then sets kv.
func setEnv(t *testing.T, kv map[string]string) {
	t.Helper()
	for _, k := range []string{"HTTP_ADDR", "HTTP_MAX_BODY_BYTES", "NATS_URL", "NATS_EMBEDDED_LISTEN", "DATA_DIR", "NATS_REPLICAS",
		"PAGERDUTY_API_TOKEN", "PAGERDUTY_OAUTH_CLIENT_ID", "PAGERDUTY_OAUTH_CLIENT_SECRET", "PAGERDUTY_OAUTH_SUBDOMAIN",
		"PAGERDUTY_OAUTH_REGION", "PAGERDUTY_OAUTH_TOKEN_URL", "PAGERDUTY_API_URL", "PAGERDUTY_EVENTS_URL", "PAGERDUTY_ACCOUNTS_FILE",
		"PAGERDUTY_RATE_LIMIT", "PAGERDUTY_WEBHOOK_SECRETS", "API_TOKENS", "BACKSTAGE_URL", "BACKSTAGE_TOKEN", "BACKSTAGE_PLUGIN_ID",
		"CORS_ALLOWED_ORIGINS", "CATALOG_POLL_INTERVAL", "AUTH_DISABLED", "READ_ONLY", "DEPSYNC_INTERVAL", "ACTION_WAIT_TIMEOUT",
		"WORKER_CONCURRENCY", "SHUTDOWN_TIMEOUT", "LOG_LEVEL", "LOG_FORMAT", "CARD_CACHE_TTL",
		"DEPSYNC_MAX_REMOVAL_SHARE", "DEPSYNC_GUARD_MIN_REMOVALS", "DEPSYNC_BATCH_SIZE"} {
		t.Setenv(k, "")
		require.NoError(t, os.Unsetenv(k))
	}
	for k, v := range kv {
		t.Setenv(k, v)
	}
}

func TestDefaults(t *testing.T) {
	setEnv(t, map[string]string{"PAGERDUTY_API_TOKEN": "tok-123", "API_TOKENS": "a, b"})
	cfg, err := config.Load(config.Options{})
	require.NoError(t, err)
	assert.Equal(t, ":8080", cfg.HTTP.Addr)
	assert.True(t, cfg.NATS.Embedded())
	assert.Equal(t, "127.0.0.1:4222", cfg.NATS.EmbeddedListen)
	assert.Equal(t, "./data", cfg.NATS.DataDir)
	assert.Equal(t, 900, cfg.PagerDuty.RateLimit)
	assert.Equal(t, time.Hour, cfg.DepsyncInterval)
	require.Len(t, cfg.PagerDuty.Accounts, 1)
	acc := cfg.PagerDuty.Accounts[0]
	assert.Equal(t, "default", acc.ID)
	assert.True(t, acc.Default)
	assert.Equal(t, "https://api.pagerduty.com", acc.APIURL)
	assert.Equal(t, "tok-123", acc.Token.Reveal())
	require.Len(t, cfg.Auth.APITokens, 2)
	assert.Equal(t, "b", cfg.Auth.APITokens[1].Reveal())
}

func TestOAuthSingleAccount(t *testing.T) {
	setEnv(t, map[string]string{"PAGERDUTY_OAUTH_CLIENT_ID": "cid", "PAGERDUTY_OAUTH_CLIENT_SECRET": "csecret",
		"PAGERDUTY_OAUTH_SUBDOMAIN": "acme", "PAGERDUTY_OAUTH_REGION": "eu", "AUTH_DISABLED": "true"})
	cfg, err := config.Load(config.Options{})
	require.NoError(t, err)
	o := cfg.PagerDuty.Accounts[0].OAuth
	require.NotNil(t, o)
	assert.Equal(t, "eu", o.Region)
	assert.Equal(t, "https://identity.pagerduty.com/oauth/token", o.TokenURL)
}

func TestAccountsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "accounts.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`accounts:
  - id: us-main
    default: true
    token: tok-us
  - id: eu-team
    oauth: {clientId: c, clientSecret: s, subdomain: acme-eu, region: eu}
`), 0o600))
	setEnv(t, map[string]string{"PAGERDUTY_ACCOUNTS_FILE": path, "API_TOKENS": "x"})
	cfg, err := config.Load(config.Options{})
	require.NoError(t, err)
	require.Len(t, cfg.PagerDuty.Accounts, 2)
	eu := cfg.PagerDuty.Accounts[1]
	assert.Equal(t, "https://api.eu.pagerduty.com", eu.APIURL)
	assert.Equal(t, "https://events.eu.pagerduty.com", eu.EventsURL)
	assert.Equal(t, "https://api.pagerduty.com", cfg.PagerDuty.Accounts[0].APIURL)
}

func TestBadSettingsNameTheVariable(t *testing.T) {
	dir := t.TempDir()
	twoDefaults := filepath.Join(dir, "two.json")
	require.NoError(t, os.WriteFile(twoDefaults, []byte(`{"accounts":[{"id":"a","default":true,"token":"t1"},{"id":"a","token":"t2"}]}`), 0o600))
	unknownField := filepath.Join(dir, "unknown.yaml")
	require.NoError(t, os.WriteFile(unknownField, []byte("accounts:\n  - id: a\n    tokn: t\n"), 0o600))

	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no credentials", map[string]string{"API_TOKENS": "x"}, []string{"PAGERDUTY_API_TOKEN: no PagerDuty credentials", "--simulate"}},
		{"no caller auth", map[string]string{"PAGERDUTY_API_TOKEN": "t"}, []string{"API_TOKENS:", "AUTH_DISABLED=true"}},
		{"bad duration", map[string]string{"DEPSYNC_INTERVAL": "soon"}, []string{`DEPSYNC_INTERVAL: "soon" is not a duration such as 30s`}},
		{"empty bool", map[string]string{"AUTH_DISABLED": ""}, []string{"AUTH_DISABLED: is set but empty", "true or false"}},
		{"negative interval", map[string]string{"PAGERDUTY_API_TOKEN": "t", "API_TOKENS": "x", "DEPSYNC_INTERVAL": "-1m"}, []string{"DEPSYNC_INTERVAL: must be a positive duration"}},
		{"bad region", map[string]string{"PAGERDUTY_OAUTH_CLIENT_ID": "c", "PAGERDUTY_OAUTH_CLIENT_SECRET": "s", "PAGERDUTY_OAUTH_SUBDOMAIN": "x", "PAGERDUTY_OAUTH_REGION": "ap", "API_TOKENS": "x"}, []string{`region "ap" is not one of us, eu`}},
		{"bad url", map[string]string{"PAGERDUTY_API_TOKEN": "t", "API_TOKENS": "x", "PAGERDUTY_API_URL": "api.pagerduty.com"}, []string{"PAGERDUTY_API_URL"}},
		{"token and oauth", map[string]string{"PAGERDUTY_API_TOKEN": "t", "PAGERDUTY_OAUTH_CLIENT_ID": "c", "API_TOKENS": "x"}, []string{"not both"}},
		{"bad nats url", map[string]string{"PAGERDUTY_API_TOKEN": "t", "API_TOKENS": "x", "NATS_URL": "http://user:pw@x:4222"}, []string{"NATS_URL"}},
		{"bad log level", map[string]string{"PAGERDUTY_API_TOKEN": "t", "API_TOKENS": "x", "LOG_LEVEL": "loud", "LOG_FORMAT": "xml"}, []string{"LOG_LEVEL", "LOG_FORMAT"}},
		{"cors star", map[string]string{"PAGERDUTY_API_TOKEN": "t", "API_TOKENS": "x", "CORS_ALLOWED_ORIGINS": "*"}, []string{"CORS_ALLOWED_ORIGINS"}},
		{"replicas", map[string]string{"PAGERDUTY_API_TOKEN": "t", "API_TOKENS": "x", "NATS_REPLICAS": "0"}, []string{"NATS_REPLICAS"}},
		{"dependency sync and card cache", map[string]string{"PAGERDUTY_API_TOKEN": "t", "API_TOKENS": "x", "DEPSYNC_MAX_REMOVAL_SHARE": "1.5",
			"DEPSYNC_GUARD_MIN_REMOVALS": "-1", "DEPSYNC_BATCH_SIZE": "0", "CARD_CACHE_TTL": "-1s"},
			[]string{"DEPSYNC_MAX_REMOVAL_SHARE", "DEPSYNC_GUARD_MIN_REMOVALS", "DEPSYNC_BATCH_SIZE", "CARD_CACHE_TTL"}},
		{"accounts file problems", map[string]string{"PAGERDUTY_ACCOUNTS_FILE": twoDefaults, "API_TOKENS": "x"}, []string{"used twice"}},
		{"accounts file unknown field", map[string]string{"PAGERDUTY_ACCOUNTS_FILE": unknownField, "API_TOKENS": "x"}, []string{"tokn"}},
		{"accounts file missing", map[string]string{"PAGERDUTY_ACCOUNTS_FILE": filepath.Join(dir, "nope"), "API_TOKENS": "x"}, []string{"cannot read"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setEnv(t, tc.env)
			_, err := config.Load(config.Options{})
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "pw@", "credentials in URLs are never printed")
			for _, line := range strings.Split(err.Error(), "\n") {
				assert.NotEmpty(t, line)
			}
		})
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	setEnv(t, map[string]string{"PAGERDUTY_API_TOKEN": "very-secret-token", "PAGERDUTY_OAUTH_CLIENT_ID": "c", "PAGERDUTY_OAUTH_CLIENT_SECRET": "very-secret-oauth"})
	_, err := config.Load(config.Options{})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "very-secret")
	var ce *config.Error
	require.True(t, errors.As(err, &ce))
}

func TestSimulateNeedsNoCredentials(t *testing.T) {
	setEnv(t, nil)
	cfg, err := config.Load(config.Options{Simulate: true})
	require.NoError(t, err)
	assert.Empty(t, cfg.PagerDuty.Accounts)
}
