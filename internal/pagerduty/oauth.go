package pagerduty

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/sync/singleflight"
)

// tokenEarlyExpiry is how long before its stated expiry a cached OAuth token is
// replaced. PagerDuty app tokens live 24 h, so this costs nothing and keeps a token from
// expiring between being read from the cache and reaching PagerDuty.
const tokenEarlyExpiry = 5 * time.Minute

// resourceScopes are the scopes requested besides as_account-<region>.<subdomain>: what
// this service's calls need (pagerduty-api.md §10) and what the frontend API reads.
func resourceScopes() []string {
	return []string{
		"abilities.read",
		"analytics.read",
		"analytics.write",
		"change_events.read",
		"escalation_policies.read",
		"incidents.read",
		"oncalls.read",
		"services.read",
		"services.write",
		"standards.read",
		"vendors.read",
		"webhook_subscriptions.read",
		"webhook_subscriptions.write",
	}
}

// oauthScopes returns the scopes requested for a scoped OAuth app of the given region
// ("us" or "eu") and subdomain: "as_account-<region>.<subdomain>" followed by the
// resource scopes this service uses.
func oauthScopes(region, subdomain string) []string {
	return append([]string{"as_account-" + region + "." + subdomain}, resourceScopes()...)
}

// tokenSource hands out OAuth access tokens for one account. A token is cached until
// tokenEarlyExpiry before it expires (oauth2.ReuseTokenSourceWithExpiry); concurrent
// callers that find no valid token share one fetch (singleflight), and each of them can
// stop waiting when its own ctx ends without cancelling the fetch for the others. The
// fetch is bounded by the token HTTP client's timeout and goes through the account's
// budgeted, retrying transport.
type tokenSource struct {
	newSource func() oauth2.TokenSource

	mu     sync.Mutex
	cur    oauth2.TokenSource
	gen    uint64
	issued string // access token most recently returned from cur

	sf singleflight.Group
}

func newTokenSource(cfg *OAuthConfig, region string, client *http.Client) *tokenSource {
	cc := &clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret.Reveal(),
		TokenURL:     cfg.TokenURL,
		Scopes:       oauthScopes(region, cfg.Subdomain),
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	ts := &tokenSource{newSource: func() oauth2.TokenSource {
		return oauth2.ReuseTokenSourceWithExpiry(nil, cc.TokenSource(ctx), tokenEarlyExpiry)
	}}
	ts.cur = ts.newSource()
	return ts
}

// token returns a valid access token, fetching one if needed.
func (s *tokenSource) token(ctx context.Context) (string, error) {
	s.mu.Lock()
	src, gen := s.cur, s.gen
	s.mu.Unlock()
	ch := s.sf.DoChan(strconv.FormatUint(gen, 10), func() (any, error) {
		return src.Token()
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		tok, _ := res.Val.(*oauth2.Token)
		if tok == nil || tok.AccessToken == "" {
			return "", errors.New("oauth2: empty access token")
		}
		s.mu.Lock()
		if s.gen == gen {
			s.issued = tok.AccessToken
		}
		s.mu.Unlock()
		return tok.AccessToken, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// invalidate drops the cached token if it is still bad, so the next token call fetches
// a new one. Many requests failing with the same token cause one re-fetch, not many.
func (s *tokenSource) invalidate(bad string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.issued != bad {
		return
	}
	s.gen++
	s.cur = s.newSource()
	s.issued = ""
}

// current returns the access token last handed out, for redaction.
func (s *tokenSource) current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}
