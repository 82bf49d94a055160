package backstageauth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/backstageauth"
	"github.com/pdworker/pdworker/internal/backstageauth/backstagetest"
)

func newVerifier(t *testing.T, bs *backstagetest.Backstage, refetch time.Duration) *backstageauth.Verifier {
	t.Helper()
	v, err := backstageauth.NewVerifier(backstageauth.Config{BaseURL: bs.URL, PluginID: "pagerduty", RefetchInterval: refetch}, zerolog.Nop())
	require.NoError(t, err)
	return v
}

func TestVerifyTokenTable(t *testing.T) {
	bs := backstagetest.New(t)
	v := newVerifier(t, bs, -1)
	past := time.Now().Add(-2 * time.Hour)

	tests := []struct {
		name    string
		token   func() string
		want    backstageauth.Caller
		wantErr string
	}{
		{"user token", func() string { return bs.UserToken(t, "user:default/jane") },
			backstageauth.Caller{Kind: "user", Subject: "user:default/jane"}, ""},
		{"plugin token for us", func() string { return bs.PluginToken(t, "catalog", "pagerduty") },
			backstageauth.Caller{Kind: "plugin", Subject: "catalog"}, ""},
		{"plugin token on behalf of a user", func() string {
			return bs.Sign(t, "scaffolder", backstagetest.Token{Type: backstageauth.TypePlugin, Subject: "scaffolder", Audience: "pagerduty",
				OBO: bs.LimitedUserToken(t, "user:default/jane")})
		}, backstageauth.Caller{Kind: "plugin", Subject: "scaffolder", OnBehalfOf: "user:default/jane"}, ""},
		{"plugin token for another plugin", func() string { return bs.PluginToken(t, "catalog", "scaffolder") },
			backstageauth.Caller{}, `is for "scaffolder", not for this service ("pagerduty")`},
		{"expired user token", func() string {
			return bs.Sign(t, "auth", backstagetest.Token{Type: backstageauth.TypeUser, Subject: "user:default/jane", Audience: "backstage",
				Issuer: bs.URL + "/api/auth", IssuedAt: past, Expires: past.Add(time.Hour)})
		}, backstageauth.Caller{}, "the token has expired"},
		{"user token signed with a key Backstage never published", func() string {
			return bs.Sign(t, "auth", backstagetest.Token{Type: backstageauth.TypeUser, Subject: "user:default/jane", Audience: "backstage",
				Issuer: bs.URL + "/api/auth", SignWithOwnKey: true})
		}, backstageauth.Caller{}, "the signature does not verify"},
		{"user token from another issuer", func() string {
			return bs.Sign(t, "auth", backstagetest.Token{Type: backstageauth.TypeUser, Subject: "user:default/jane", Audience: "backstage",
				Issuer: "https://elsewhere.example.com/api/auth"})
		}, backstageauth.Caller{}, "iss is not"},
		{"user token with the wrong aud", func() string {
			return bs.Sign(t, "auth", backstagetest.Token{Type: backstageauth.TypeUser, Subject: "user:default/jane", Audience: "pagerduty",
				Issuer: bs.URL + "/api/auth"})
		}, backstageauth.Caller{}, `aud is not "backstage"`},
		{"limited user token alone", func() string { return bs.LimitedUserToken(t, "user:default/jane") },
			backstageauth.Caller{}, "limited user token"},
		{"plugin token with a sub that is not a plugin id", func() string {
			return bs.Sign(t, "catalog", backstagetest.Token{Type: backstageauth.TypePlugin, Subject: "../auth", Audience: "pagerduty"})
		}, backstageauth.Caller{}, "is not a plugin id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), tt.token())
			if tt.wantErr != "" {
				require.Error(t, err)
				var be *backstageauth.Error
				require.True(t, errors.As(err, &be), "err %v", err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestVerifyNonBackstageTokens(t *testing.T) {
	bs := backstagetest.New(t)
	v := newVerifier(t, bs, -1)
	for _, tok := range []string{"static-token", "a.b.c", ""} {
		_, err := v.Verify(context.Background(), tok)
		require.ErrorIs(t, err, backstageauth.ErrNotBackstageToken, tok)
	}
	assert.Zero(t, bs.JWKSFetches(), "nothing is fetched for tokens that are not Backstage JWTs")
}

func TestKeysAreCachedAndRefetchedAfterRotation(t *testing.T) {
	bs := backstagetest.New(t)
	v := newVerifier(t, bs, -1)
	ctx := context.Background()

	for range 5 {
		_, err := v.Verify(ctx, bs.UserToken(t, "user:default/jane"))
		require.NoError(t, err)
	}
	assert.Equal(t, 1, bs.JWKSFetches(), "keys are cached by kid")

	old := bs.UserToken(t, "user:default/jane")
	bs.Rotate(t, "auth")
	_, err := v.Verify(ctx, bs.UserToken(t, "user:default/jane"))
	require.NoError(t, err, "a token with a kid unknown to the cache makes the verifier refetch")
	assert.Equal(t, 2, bs.JWKSFetches())

	_, err = v.Verify(ctx, old)
	require.Error(t, err, "the retired key is gone after rotation")
	assert.Contains(t, err.Error(), "unknown signing key")
}

func TestUnknownKidRefetchIsRateLimited(t *testing.T) {
	bs := backstagetest.New(t)
	v := newVerifier(t, bs, time.Hour)
	ctx := context.Background()
	_, err := v.Verify(ctx, bs.UserToken(t, "user:default/jane"))
	require.NoError(t, err)
	bs.Rotate(t, "auth")
	for range 3 {
		_, err = v.Verify(ctx, bs.UserToken(t, "user:default/jane"))
		require.Error(t, err)
	}
	assert.Equal(t, 1, bs.JWKSFetches(), "unknown kids do not refetch more than once per RefetchInterval")
}

// TestCredentialsInBaseURLStayOut: a BACKSTAGE_URL that carries credentials (a proxy's
// basic auth) still accepts Backstage's tokens, whose iss has none, and never puts the
// password in an error, which callers see in their 401 answer.
func TestCredentialsInBaseURLStayOut(t *testing.T) {
	bs := backstagetest.New(t)
	const password = "s3cret-proxy-pw"
	withCreds := "http://ops:" + password + "@" + strings.TrimPrefix(bs.URL, "http://")
	v, err := backstageauth.NewVerifier(backstageauth.Config{BaseURL: withCreds, PluginID: "pagerduty"}, zerolog.Nop())
	require.NoError(t, err)
	got, err := v.Verify(context.Background(), bs.UserToken(t, "user:default/jane"))
	require.NoError(t, err)
	assert.Equal(t, "user:default/jane", got.Subject)

	down, err := backstageauth.NewVerifier(backstageauth.Config{BaseURL: "http://ops:" + password + "@127.0.0.1:1", PluginID: "pagerduty"}, zerolog.Nop())
	require.NoError(t, err)
	_, err = down.Verify(context.Background(), bs.UserToken(t, "user:default/jane"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot fetch the signing keys")
	assert.NotContains(t, err.Error(), password)

	_, err = backstageauth.NewVerifier(backstageauth.Config{BaseURL: "ftp://ops:" + password + "@backstage", PluginID: "pagerduty"}, zerolog.Nop())
	require.Error(t, err)
	assert.NotContains(t, err.Error(), password)
}
