package pdsim

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// oauthClient is a scoped OAuth app registered on one account.
type oauthClient struct {
	id, secret, account string
}

// oauthToken is an issued access token.
type oauthToken struct {
	account string
	expires time.Time
}

// handleOAuthToken serves POST /oauth/token, PagerDuty's client-credentials grant
// (https://developer.pagerduty.com/docs/app-oauth-token). Client credentials come from
// the form or from HTTP Basic auth. The scope must contain
// `as_account-<region>.<subdomain>` naming the client's own account.
//
// Errors use the OAuth 2 shape: 400 {"error":"invalid_request"} for a wrong grant type
// or scope, 401 {"error":"invalid_client"} for unknown or wrong credentials.
func (s *Sim) handleOAuthToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "the body must be a form")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type must be client_credentials")
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.oauthClients[id]
	if c == nil || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	a := s.accounts[c.account]
	scope := r.PostForm.Get("scope")
	if !slices.Contains(strings.Fields(scope), "as_account-"+a.region+"."+a.subdomain) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "scope must contain as_account-"+a.region+"."+a.subdomain)
		return
	}
	now := s.now()
	for t, ot := range s.oauthTokens {
		if !now.Before(ot.expires) {
			delete(s.oauthTokens, t)
		}
	}
	token := s.ids.token("pd"+a.region+"+_", 40)
	s.oauthTokens[token] = oauthToken{account: a.id, expires: now.Add(s.opts.OAuthTokenTTL)}
	s.tokensIssued[c.id]++
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"token_type":   "bearer",
		"expires_in":   int(s.opts.OAuthTokenTTL / time.Second),
		"scope":        scope,
	})
}

func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", errorContentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// TokensIssued returns how many access tokens /oauth/token has issued to clientID.
func (s *Sim) TokensIssued(clientID string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tokensIssued[clientID]
}
