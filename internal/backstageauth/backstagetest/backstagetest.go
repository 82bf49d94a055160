// Package backstagetest is a fake Backstage for tests: an HTTP server that publishes
// the auth backend's JWKS (/api/auth/.well-known/jwks.json) and every plugin's JWKS
// (/api/<plugin>/.backstage/auth/v1/jwks.json), and mints user and plugin tokens signed
// as Backstage signs them (ES256, typ vnd.backstage.user / vnd.backstage.plugin).
//
// Only test code imports it. It imports nothing from this module.
package backstagetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Backstage is a running fake Backstage backend. It is safe for concurrent use.
type Backstage struct {
	// URL is the backend's base URL (what BACKSTAGE_URL would be).
	URL string

	mu      sync.Mutex
	signers map[string]*signer // "auth" or a plugin id → its current key
	kids    atomic.Int64
	fetches atomic.Int64
}

type signer struct {
	private jwk.Key
	public  jwk.Key
}

// New starts a fake Backstage and stops it when the test ends.
func New(t testing.TB) *Backstage {
	t.Helper()
	b := &Backstage{signers: map[string]*signer{}}
	srv := httptest.NewServer(http.HandlerFunc(b.serveJWKS))
	t.Cleanup(srv.Close)
	b.URL = srv.URL
	return b
}

// JWKSFetches counts the JWKS documents served so far.
func (b *Backstage) JWKSFetches() int { return int(b.fetches.Load()) }

func (b *Backstage) serveJWKS(w http.ResponseWriter, r *http.Request) {
	owner := ""
	switch {
	case r.URL.Path == "/api/auth/.well-known/jwks.json":
		owner = "auth"
	case strings.HasPrefix(r.URL.Path, "/api/") && strings.HasSuffix(r.URL.Path, "/.backstage/auth/v1/jwks.json"):
		owner = strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/"), "/.backstage/auth/v1/jwks.json")
	default:
		http.NotFound(w, r)
		return
	}
	b.fetches.Add(1)
	set := jwk.NewSet()
	b.mu.Lock()
	if s := b.signers[owner]; s != nil {
		_ = set.AddKey(s.public)
	}
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// signerFor returns owner's key, making one on first use.
func (b *Backstage) signerFor(t testing.TB, owner string) *signer {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.signers[owner]; s != nil {
		return s
	}
	s := newSigner(t, fmt.Sprintf("%s-key-%d", owner, b.kids.Add(1)))
	b.signers[owner] = s
	return s
}

func newSigner(t testing.TB, kid string) *signer {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	priv, err := jwk.Import(raw)
	if err != nil {
		t.Fatalf("import key: %v", err)
	}
	must(t, priv.Set(jwk.KeyIDKey, kid))
	must(t, priv.Set(jwk.AlgorithmKey, jwa.ES256()))
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatalf("public key: %v", err)
	}
	return &signer{private: priv, public: pub}
}

// Rotate replaces owner's ("auth" or a plugin id) key with a new one under a new kid;
// the old key is no longer published.
func (b *Backstage) Rotate(t testing.TB, owner string) {
	t.Helper()
	s := newSigner(t, fmt.Sprintf("%s-key-%d", owner, b.kids.Add(1)))
	b.mu.Lock()
	b.signers[owner] = s
	b.mu.Unlock()
}

// Token is what to put in a minted token; zero fields take the defaults of UserToken
// and PluginToken.
type Token struct {
	Type     string // header typ
	Subject  string
	Audience string
	Issuer   string
	Expires  time.Time
	IssuedAt time.Time
	OBO      string // plugin tokens: a limited user token
	// SignWithOwnKey signs with a fresh key that is never published, under the
	// owner's current kid (a forged token).
	SignWithOwnKey bool
}

// UserToken returns a valid user token for sub (e.g. "user:default/jane"), as the
// auth backend issues it.
func (b *Backstage) UserToken(t testing.TB, sub string) string {
	return b.Sign(t, "auth", Token{Type: "vnd.backstage.user", Subject: sub, Audience: "backstage", Issuer: b.URL + "/api/auth"})
}

// LimitedUserToken returns a limited user token for sub (the obo of plugin tokens).
func (b *Backstage) LimitedUserToken(t testing.TB, sub string) string {
	return b.Sign(t, "auth", Token{Type: "vnd.backstage.limited-user", Subject: sub})
}

// PluginToken returns a valid plugin token from plugin sub for plugin aud.
func (b *Backstage) PluginToken(t testing.TB, sub, aud string) string {
	return b.Sign(t, sub, Token{Type: "vnd.backstage.plugin", Subject: sub, Audience: aud})
}

// Sign mints a token signed with owner's key ("auth" for user tokens, the plugin id
// for plugin tokens).
func (b *Backstage) Sign(t testing.TB, owner string, tk Token) string {
	t.Helper()
	s := b.signerFor(t, owner)
	now := time.Now()
	if tk.IssuedAt.IsZero() {
		tk.IssuedAt = now
	}
	if tk.Expires.IsZero() {
		tk.Expires = now.Add(time.Hour)
	}
	builder := jwt.NewBuilder().Subject(tk.Subject).IssuedAt(tk.IssuedAt).Expiration(tk.Expires)
	if tk.Audience != "" {
		builder = builder.Audience([]string{tk.Audience})
	}
	if tk.Issuer != "" {
		builder = builder.Issuer(tk.Issuer)
	}
	if tk.OBO != "" {
		builder = builder.Claim("obo", tk.OBO)
	}
	tok, err := builder.Build()
	if err != nil {
		t.Fatalf("build token: %v", err)
	}
	key := s.private
	if tk.SignWithOwnKey {
		kid, _ := s.private.KeyID()
		key = newSigner(t, kid).private
	}
	hdr := jws.NewHeaders()
	must(t, hdr.Set(jws.TypeKey, tk.Type))
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return string(signed)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
