package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/pdworker/pdworker/internal/secret"
)

// SignatureHeader is the header that carries v3 webhook signatures.
const SignatureHeader = "X-PagerDuty-Signature"

// signaturePrefix marks the only signature scheme PagerDuty defines.
const signaturePrefix = "v1="

// maxSignatures bounds how many v1 entries a header may carry; PagerDuty sends one, or
// two during a secret rotation.
const maxSignatures = 16

// Signature errors. VerifySignature returns one of them (wrapped or not).
var (
	// ErrMissingSignature: no X-PagerDuty-Signature header, or an empty one.
	ErrMissingSignature = errors.New("missing X-PagerDuty-Signature header")
	// ErrMalformedSignature: the header holds no well-formed v1 signature.
	ErrMalformedSignature = errors.New("malformed X-PagerDuty-Signature header: no well-formed v1 signature")
	// ErrBadSignature: well-formed signatures, none of which matches any secret.
	ErrBadSignature = errors.New("invalid webhook signature")
	// ErrNoSecrets: no signing secret is configured, so nothing can be verified.
	ErrNoSecrets = errors.New("no webhook signing secret configured (PAGERDUTY_WEBHOOK_SECRETS)")
)

// ParseSignatureHeader returns the decoded v1 signatures of an X-PagerDuty-Signature
// header: comma-separated entries, surrounding spaces ignored, entries of other schemes
// ignored, v1 entries that are not 64 hex digits (a SHA-256) skipped. It fails with
// ErrMissingSignature for an empty header and ErrMalformedSignature when no v1 entry
// is usable.
func ParseSignatureHeader(header string) ([][]byte, error) {
	if strings.TrimSpace(header) == "" {
		return nil, ErrMissingSignature
	}
	var sigs [][]byte
	for entry := range strings.SplitSeq(header, ",") {
		entry = strings.TrimSpace(entry)
		hexSig, ok := strings.CutPrefix(entry, signaturePrefix)
		if !ok || len(hexSig) != 2*sha256.Size {
			continue
		}
		sig, err := hex.DecodeString(hexSig)
		if err != nil {
			continue
		}
		sigs = append(sigs, sig)
		if len(sigs) == maxSignatures {
			break
		}
	}
	if len(sigs) == 0 {
		return nil, ErrMalformedSignature
	}
	return sigs, nil
}

// VerifySignature checks the X-PagerDuty-Signature header against the raw body: the
// delivery is valid when any v1 signature equals HMAC-SHA256(secret, body) for any of
// the secrets (several during a rotation). Every signature is compared with every
// secret's MAC in constant time, without stopping at the first match, so the time
// taken does not depend on which pair matched. It returns nil, ErrNoSecrets,
// ErrMissingSignature, ErrMalformedSignature or ErrBadSignature; errors never contain
// secrets.
func VerifySignature(header string, body []byte, secrets []secret.Value) error {
	sigs, err := ParseSignatureHeader(header)
	if err != nil {
		return err
	}
	ok := 0
	configured := 0
	for _, s := range secrets {
		if s.IsZero() {
			continue
		}
		configured++
		mac := computeMAC(s.Reveal(), body)
		for _, sig := range sigs {
			ok |= subtle.ConstantTimeCompare(mac, sig)
		}
	}
	switch {
	case configured == 0:
		return ErrNoSecrets
	case ok == 1:
		return nil
	default:
		return ErrBadSignature
	}
}

// Sign returns the header value PagerDuty would send for body under secret:
// "v1=" + lower-case hex HMAC-SHA256.
func Sign(s secret.Value, body []byte) string {
	return signaturePrefix + hex.EncodeToString(computeMAC(s.Reveal(), body))
}

func computeMAC(key string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return m.Sum(nil)
}
