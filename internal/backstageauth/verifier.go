package backstageauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/pdworker/pdworker/internal/secret"
)

// Token types Backstage puts in the JWT header's typ.
const (
	TypeUser        = "vnd.backstage.user"
	TypeLimitedUser = "vnd.backstage.limited-user"
	TypePlugin      = "vnd.backstage.plugin"
)

// UserAudience is the aud of every Backstage user token.
const UserAudience = "backstage"

// Defaults applied by NewVerifier to zero Config fields.
const (
	DefaultRefetchInterval = 10 * time.Second
	DefaultFetchTimeout    = 5 * time.Second
	DefaultLeeway          = 30 * time.Second
)

// pluginIDPattern is what Backstage allows as a plugin id in a plugin token's sub; it
// also keeps the sub from changing the JWKS URL's path.
var pluginIDPattern = regexp.MustCompile(`^[a-z0-9_-]+$`)

// Config says which Backstage installation's tokens a Verifier accepts.
type Config struct {
	// BaseURL is the Backstage backend's base URL (BACKSTAGE_URL), without a trailing
	// slash, e.g. https://backstage.example.com.
	BaseURL string
	// PluginID is this service's plugin id in Backstage discovery (BACKSTAGE_PLUGIN_ID):
	// the aud that plugin tokens must carry.
	PluginID string
	// Issuer is the iss user tokens must carry; empty means BaseURL + "/api/auth".
	Issuer string
	// HTTPClient fetches JWKS documents; nil means a client with FetchTimeout.
	HTTPClient *http.Client
	// FetchTimeout bounds one JWKS fetch (default 5s).
	FetchTimeout time.Duration
	// RefetchInterval is the least time between two fetches of one JWKS endpoint caused
	// by unknown kids (default 10s), so forged kids cannot make us hammer Backstage.
	// Negative means no limit.
	RefetchInterval time.Duration
	// Leeway is the clock skew tolerated on exp, iat and nbf (default 30s).
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Caller is who a verified token speaks for.
type Caller struct {
	// Kind is "user" or "plugin".
	Kind string
	// Subject is the user entity ref (user tokens) or the calling plugin id (plugin
	// tokens), e.g. "user:default/jane" or "catalog".
	Subject string
	// OnBehalfOf is the user entity ref a plugin token acts for, from its verified obo
	// token; empty when it acts for itself.
	OnBehalfOf string
}

// String is "user:default/jane", "plugin:catalog" or "plugin:scaffolder (for user:default/jane)".
func (c Caller) String() string {
	if c.Kind == "user" {
		return c.Subject
	}
	s := "plugin:" + c.Subject
	if c.OnBehalfOf != "" {
		s += " (for " + c.OnBehalfOf + ")"
	}
	return s
}

// ErrNotBackstageToken means the bearer token is not a JWT with a Backstage user or
// plugin typ; callers may then try other credential kinds.
var ErrNotBackstageToken = errors.New("not a Backstage user or plugin token")

// Error is a rejected Backstage token. Its text says why, never the token.
type Error struct{ Reason string }

// Error returns "backstage token rejected: <reason>".
func (e *Error) Error() string { return "backstage token rejected: " + e.Reason }

func reject(format string, a ...any) error { return &Error{Reason: fmt.Sprintf(format, a...)} }

// Verifier checks Backstage user and plugin tokens. It is safe for concurrent use.
type Verifier struct {
	cfg Config // defaults applied
	log zerolog.Logger

	fetches singleflight.Group
	mu      sync.Mutex
	sets    map[string]*keySet // by JWKS URL
}

// keySet is one JWKS endpoint's keys as last fetched.
type keySet struct {
	set       jwk.Set
	fetchedAt time.Time
}

// NewVerifier returns a Verifier for cfg; it fetches nothing until the first token.
func NewVerifier(cfg Config, log zerolog.Logger) (*Verifier, error) {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backstage base URL %q is not an http(s) URL", secret.RedactURL(cfg.BaseURL))
	}
	if !pluginIDPattern.MatchString(cfg.PluginID) {
		return nil, fmt.Errorf("backstage plugin id %q must match %s", cfg.PluginID, pluginIDPattern)
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.RefetchInterval == 0 {
		cfg.RefetchInterval = DefaultRefetchInterval
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Issuer == "" {
		// Backstage names itself without the credentials the URL may carry.
		issuer := cfg.BaseURL
		if u.User != nil {
			u.User = nil
			issuer = u.String()
		}
		cfg.Issuer = issuer + "/api/auth"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: cfg.FetchTimeout}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg, log: log.With().Str("component", "backstageauth").Logger(), sets: map[string]*keySet{}}, nil
}

// UserJWKSURL is where user tokens' keys are published.
func (v *Verifier) UserJWKSURL() string { return v.cfg.BaseURL + "/api/auth/.well-known/jwks.json" }

// PluginJWKSURL is where the keys of plugin pluginID's tokens are published.
func (v *Verifier) PluginJWKSURL(pluginID string) string {
	return v.cfg.BaseURL + "/api/" + pluginID + "/.backstage/auth/v1/jwks.json"
}

// Verify checks token and returns its caller. A token that is not a Backstage JWT
// fails with ErrNotBackstageToken; a Backstage token that fails a check fails with
// *Error saying which.
func (v *Verifier) Verify(ctx context.Context, token string) (Caller, error) {
	typ, kid, err := peekHeader(token)
	if err != nil {
		return Caller{}, err
	}
	switch typ {
	case TypeUser:
		tok, err := v.verify(ctx, token, kid, v.UserJWKSURL(),
			jwt.WithAudience(UserAudience), jwt.WithIssuer(v.cfg.Issuer), jwt.WithRequiredClaim("sub"))
		if err != nil {
			return Caller{}, err
		}
		sub, _ := tok.Subject()
		return Caller{Kind: "user", Subject: sub}, nil
	case TypePlugin:
		return v.verifyPlugin(ctx, token, kid)
	case TypeLimitedUser:
		return Caller{}, reject("a limited user token (cookie grade) is not accepted; send the full user token")
	default:
		return Caller{}, ErrNotBackstageToken
	}
}

func (v *Verifier) verifyPlugin(ctx context.Context, token, kid string) (Caller, error) {
	// The sub picks the JWKS endpoint, so read it before the signature is checked,
	// and only use it once it passes the plugin id pattern.
	insecure, err := jwt.ParseInsecure([]byte(token))
	if err != nil {
		return Caller{}, reject("plugin token claims are malformed")
	}
	sub, _ := insecure.Subject()
	if !pluginIDPattern.MatchString(sub) {
		return Caller{}, reject("plugin token sub %q is not a plugin id", sub)
	}
	tok, err := v.verify(ctx, token, kid, v.PluginJWKSURL(sub), jwt.WithRequiredClaim("iat"))
	if err != nil {
		return Caller{}, err
	}
	aud, _ := tok.Audience()
	if len(aud) != 1 || aud[0] != v.cfg.PluginID {
		return Caller{}, reject("plugin token from %q is for %q, not for this service (%q)", sub, strings.Join(aud, ","), v.cfg.PluginID)
	}
	c := Caller{Kind: "plugin", Subject: sub}
	var obo string
	if tok.Get("obo", &obo) == nil && obo != "" {
		oTyp, oKid, err := peekHeader(obo)
		if err != nil || oTyp != TypeLimitedUser {
			return Caller{}, reject("plugin token's obo is not a limited user token")
		}
		user, err := v.verify(ctx, obo, oKid, v.UserJWKSURL(), jwt.WithRequiredClaim("sub"))
		if err != nil {
			return Caller{}, fmt.Errorf("on-behalf-of token: %w", err)
		}
		c.OnBehalfOf, _ = user.Subject()
	}
	return c, nil
}

// verify checks the ES256 signature with the key kid from jwksURL, then exp and the
// given claim checks.
func (v *Verifier) verify(ctx context.Context, token, kid, jwksURL string, checks ...jwt.ValidateOption) (jwt.Token, error) {
	if kid == "" {
		return nil, reject("the token header has no kid")
	}
	key, err := v.key(ctx, jwksURL, kid)
	if err != nil {
		return nil, err
	}
	opts := []jwt.ParseOption{
		jwt.WithKey(jwa.ES256(), key),
		jwt.WithValidate(true),
		jwt.WithAcceptableSkew(v.cfg.Leeway),
		jwt.WithClock(jwt.ClockFunc(v.cfg.Now)),
		jwt.WithRequiredClaim("exp"),
	}
	for _, c := range checks {
		opts = append(opts, c)
	}
	tok, err := jwt.Parse([]byte(token), opts...)
	switch {
	case err == nil:
		return tok, nil
	case errors.Is(err, jwt.TokenExpiredError()):
		return nil, reject("the token has expired")
	case errors.Is(err, jwt.InvalidAudienceError()):
		return nil, reject("the token's aud is not %q", UserAudience)
	case errors.Is(err, jwt.InvalidIssuerError()):
		return nil, reject("the token's iss is not %q", v.cfg.Issuer)
	case errors.Is(err, jws.VerifyError()), errors.Is(err, jws.VerificationError()):
		return nil, reject("the signature does not verify with key %q (ES256)", kid)
	case errors.Is(err, jwt.ValidateError()):
		return nil, reject("%s", firstLine(err))
	default:
		return nil, reject("the signature does not verify with key %q (ES256)", kid)
	}
}

// key returns the public key kid of jwksURL, fetching the set when it is not cached
// or does not hold kid (keys rotate).
func (v *Verifier) key(ctx context.Context, jwksURL, kid string) (jwk.Key, error) {
	v.mu.Lock()
	ks := v.sets[jwksURL]
	v.mu.Unlock()
	if ks != nil {
		if k, ok := ks.set.LookupKeyID(kid); ok {
			return k, nil
		}
		if v.cfg.RefetchInterval > 0 && v.cfg.Now().Sub(ks.fetchedAt) < v.cfg.RefetchInterval {
			return nil, reject("unknown signing key %q", kid)
		}
	}
	ks, err := v.fetch(ctx, jwksURL)
	if err != nil {
		return nil, err
	}
	if k, ok := ks.set.LookupKeyID(kid); ok {
		return k, nil
	}
	return nil, reject("unknown signing key %q", kid)
}

// fetch loads jwksURL once for all concurrent callers and caches it.
func (v *Verifier) fetch(ctx context.Context, jwksURL string) (*keySet, error) {
	ch := v.fetches.DoChan(jwksURL, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.FetchTimeout)
		defer cancel()
		set, err := jwk.Fetch(fctx, jwksURL, jwk.WithHTTPClient(v.cfg.HTTPClient))
		if err != nil {
			shown := secret.RedactURL(jwksURL)
			v.log.Warn().Str("url", shown).Err(err).Msg("cannot fetch Backstage JWKS")
			return nil, reject("cannot fetch the signing keys from %s", shown)
		}
		ks := &keySet{set: set, fetchedAt: v.cfg.Now()}
		v.mu.Lock()
		v.sets[jwksURL] = ks
		v.mu.Unlock()
		return ks, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*keySet), nil
	case <-ctx.Done():
		return nil, reject("gave up waiting for the signing keys: %v", ctx.Err())
	}
}

// peekHeader reads typ and kid from a compact JWS without verifying it.
func peekHeader(token string) (typ, kid string, err error) {
	if strings.Count(token, ".") != 2 {
		return "", "", ErrNotBackstageToken
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil || len(msg.Signatures()) != 1 {
		return "", "", ErrNotBackstageToken
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	typ, _ = h.Type()
	kid, _ = h.KeyID()
	return typ, kid, nil
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
