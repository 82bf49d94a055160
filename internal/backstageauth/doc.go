// Package backstageauth verifies the tokens Backstage sends to a service that its
// discovery maps a plugin id to: user tokens from browsers (typ vnd.backstage.user,
// signed by the auth backend, checked against <BACKSTAGE_URL>/api/auth/.well-known/jwks.json)
// and plugin tokens from other backend plugins (typ vnd.backstage.plugin, signed by the
// calling plugin, checked against <BACKSTAGE_URL>/api/<sub>/.backstage/auth/v1/jwks.json).
//
// It owns the JWKS key cache (keys cached by kid per endpoint, refetched when a token
// names a kid the cache does not know, at most once per RefetchInterval) and the claim
// checks (signature ES256, exp, aud, iss). It must not import internal/httpapi or
// internal/app; HTTP callers turn its errors into 401 answers.
package backstageauth
