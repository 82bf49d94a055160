package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// WebhookSeenTTL is how long a processed webhook delivery is remembered. PagerDuty
// retries a delivery for up to 48 hours with the same X-Webhook-Id; a day more covers
// clock skew and a delivery retried at the very end of that window.
const WebhookSeenTTL = 72 * time.Hour

// SeenConfig configures a Seen store.
type SeenConfig struct {
	// Bucket is the key-value bucket (default BucketWebhookSeen).
	Bucket string
	// TTL is how long a mark counts (default WebhookSeenTTL). The bucket's own TTL
	// removes records at the latest then.
	TTL time.Duration
	// Now is the clock marks are dated with and compared to (default time.Now); tests
	// move it forward to send duplicates hours later.
	Now func() time.Time
}

// Seen remembers which deliveries (by id) have been processed, for longer than
// JetStream's duplicate window. A mark is a key in a TTL'd bucket whose value is the
// time it expires. Safe for concurrent use.
type Seen struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	now func() time.Time
}

// NewSeen opens the bucket (it must exist; Provision creates it).
func NewSeen(ctx context.Context, js jetstream.JetStream, cfg SeenConfig) (*Seen, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = BucketWebhookSeen
	}
	if cfg.TTL <= 0 {
		cfg.TTL = WebhookSeenTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %s: %w", cfg.Bucket, err)
	}
	return &Seen{kv: kv, ttl: cfg.TTL, now: cfg.Now}, nil
}

// Has reports whether id was marked and the mark has not expired.
func (s *Seen) Has(ctx context.Context, id string) (bool, error) {
	e, err := s.kv.Get(ctx, seenKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read seen record: %w", err)
	}
	expires, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		// A record this package did not write still means "seen".
		return true, nil
	}
	return s.now().Before(expires), nil
}

// Mark records id as processed until TTL from now.
func (s *Seen) Mark(ctx context.Context, id string) error {
	v := s.now().Add(s.ttl).UTC().Format(time.RFC3339Nano)
	if _, err := s.kv.PutString(ctx, seenKey(id), v); err != nil {
		return fmt.Errorf("write seen record: %w", err)
	}
	return nil
}

// seenKey turns an id into a valid key: ids made of key-safe characters stay as they
// are (readable in `nats kv`), anything else is hashed.
func seenKey(id string) string {
	if id != "" && len(id) <= 128 && keySafe(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "h_" + hex.EncodeToString(sum[:])
}

func keySafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '=':
		default:
			return false
		}
	}
	return true
}
