package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/internal/backstageauth"
	"github.com/pdworker/pdworker/internal/secret"
)

// AuthConfig says which callers /api/pagerduty accepts.
type AuthConfig struct {
	// Tokens are static bearer tokens (API_TOKENS).
	Tokens []secret.Value
	// Disabled accepts every caller (AUTH_DISABLED, local development only).
	Disabled bool
	// Backstage, when set (BACKSTAGE_URL), also accepts Backstage user and plugin
	// tokens that it verifies.
	Backstage *backstageauth.Verifier
}

// Authenticator decides whether a request may use /api/pagerduty. Safe for concurrent
// use.
type Authenticator struct {
	cfg AuthConfig
}

// NewAuthenticator builds an Authenticator; with auth disabled it logs a warning once.
func NewAuthenticator(cfg AuthConfig, log zerolog.Logger) *Authenticator {
	if cfg.Disabled {
		log.Warn().Msg("AUTH_DISABLED=true: /api/pagerduty accepts requests without a token; use this for local development only")
	}
	return &Authenticator{cfg: cfg}
}

var (
	errNoToken    = errors.New("missing bearer token: send Authorization: Bearer <token> (one of API_TOKENS)")
	errWrongToken = errors.New("the bearer token is not accepted")
	// With BACKSTAGE_URL set the messages also name Backstage tokens.
	errNoTokenBackstage    = errors.New("missing bearer token: send Authorization: Bearer <token> (a Backstage user or plugin token, or one of API_TOKENS)")
	errWrongTokenBackstage = errors.New("the bearer token is not accepted: it is neither one of API_TOKENS nor a Backstage user or plugin token")
)

// Callers that are not Backstage users or plugins, as Caller names them.
const (
	// CallerAPIToken is a caller with one of API_TOKENS.
	CallerAPIToken = "api-token"
	// CallerUnauthenticated is any caller while AUTH_DISABLED is set.
	CallerUnauthenticated = "unauthenticated"
)

// Caller authenticates the request and names who sent it: the Backstage user
// ("user:default/jane") or plugin ("plugin:catalog", "plugin:scaffolder (for
// user:default/jane)"), CallerAPIToken or CallerUnauthenticated.
func (a *Authenticator) Caller(r *http.Request) (string, error) {
	if a.cfg.Disabled {
		return CallerUnauthenticated, nil
	}
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		if a.cfg.Backstage != nil {
			return "", errNoTokenBackstage
		}
		return "", errNoToken
	}
	token = strings.TrimSpace(token)
	// Compare against every token so the time taken does not tell which one matched.
	matched := false
	for _, t := range a.cfg.Tokens {
		if t.Equal(token) {
			matched = true
		}
	}
	if matched {
		return CallerAPIToken, nil
	}
	if a.cfg.Backstage != nil {
		c, err := a.cfg.Backstage.Verify(r.Context(), token)
		switch {
		case err == nil:
			return c.String(), nil
		case errors.Is(err, backstageauth.ErrNotBackstageToken):
			return "", errWrongTokenBackstage
		default:
			return "", err
		}
	}
	return "", errWrongToken
}

// require wraps next so that it only runs for authenticated callers, with the caller
// in the request's context (CallerFrom).
func (a *Authenticator) require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, err := a.Caller(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pdworker"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), caller)))
	})
}

// callerKey is the context key of the authenticated caller.
type callerKey struct{}

// WithCaller returns ctx carrying the name of the authenticated caller.
func WithCaller(ctx context.Context, caller string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller)
}

// CallerFrom returns the caller WithCaller stored in ctx, or "" when none.
func CallerFrom(ctx context.Context) string {
	c, _ := ctx.Value(callerKey{}).(string)
	return c
}
