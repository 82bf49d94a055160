package secret

import (
	"crypto/subtle"
	"net/url"
	"strings"
)

// masked is what every formatting path prints instead of a secret.
const masked = "[redacted]"

// Value is a credential. Its String, GoString, MarshalJSON and MarshalText methods
// return a fixed mask, so fmt verbs, zerolog fields and encoders never print it;
// Reveal returns the real value for the one place that must send it.
type Value string

// Reveal returns the secret itself. Call it only where the value leaves the process
// on purpose (an Authorization header, an HMAC key).
func (v Value) Reveal() string { return string(v) }

// IsZero reports whether no secret is set.
func (v Value) IsZero() bool { return v == "" }

// String returns a mask (or "" when empty), never the value.
func (v Value) String() string {
	if v == "" {
		return ""
	}
	return masked
}

// GoString returns a mask for %#v.
func (v Value) GoString() string { return v.String() }

// MarshalJSON encodes the mask.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + v.String() + `"`), nil }

// MarshalText encodes the mask.
func (v Value) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// Equal compares v with a presented credential in constant time (for equal lengths).
func (v Value) Equal(presented string) bool {
	return subtle.ConstantTimeCompare([]byte(v), []byte(presented)) == 1
}

// RedactURL returns s for messages, with the user info of a URL (user:password or a
// token) replaced by "redacted"; a string that does not parse as a URL but holds an
// '@' is replaced whole.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil && strings.Contains(s, "@"):
		return "[unparseable URL]"
	case err != nil || u.User == nil:
		return s
	}
	u.User = url.User("redacted")
	return u.String()
}
