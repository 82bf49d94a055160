package pagerduty_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pagerduty"
)

// echoAuthorization answers with failures whose bodies repeat the credential the client
// sent, the worst case for leaking it into errors and logs.
func echoAuthorization() http.Handler {
	var n atomic.Int32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		switch n.Add(1) % 4 {
		case 1:
			writePDError(w, 500, 2000, "internal error for "+auth)
		case 2:
			w.Header().Set("ratelimit-reset", "60")
			writePDError(w, 429, 2020, "Rate Limit Exceeded", "caller "+auth)
		case 3:
			writePDError(w, 401, 2006, "Authentication failed", "bad credential "+auth)
		default:
			writePDError(w, 400, 2001, "Invalid Input Provided", auth)
		}
	})
}

func TestTokenNeverInErrorsOrLogs(t *testing.T) {
	f := newFixture(t, echoAuthorization())
	var texts []string
	for range 8 {
		_, err := f.client.ListAbilities(context.Background())
		require.Error(t, err)
		texts = append(texts, err.Error(), fmt.Sprintf("%+v %#v", err, err))
	}
	texts = append(texts, f.logs.String())
	require.NotEmpty(t, f.logs.String(), "debug logs were captured")
	for _, s := range texts {
		assert.NotContains(t, s, testToken)
		assert.NotContains(t, s, "5ecret")
	}
	assert.Contains(t, strings.Join(texts, "\n"), "[redacted]", "the echoed credential was masked")
}

func TestOAuthSecretsNeverInErrorsOrLogs(t *testing.T) {
	p := newOAuthPD(86400)
	c, _, logs := newOAuthClient(t, p, "us")
	_, err := c.ListAbilities(context.Background())
	require.NoError(t, err)

	p.mu.Lock()
	p.rejectAll = true
	p.mu.Unlock()
	_, err = c.ListAbilities(context.Background())
	require.Error(t, err)
	for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), logs.String()} {
		assert.NotContains(t, s, testClientSecret)
		assert.NotContains(t, s, "ACCESS-")
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var otherHits atomic.Int32
	other := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		abilitiesOK(w)
	}))
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other+"/abilities", http.StatusFound)
	}))
	_, err := f.client.ListAbilities(context.Background())
	require.Error(t, err)
	assert.Equal(t, pagerduty.ClassPermanent, pagerduty.ClassOf(err))
	assert.Zero(t, otherHits.Load(), "the credential never travels to another host")
}
