package mapping

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const lockKeyPrefix = "lock."

// lockPoll is how often a waiting Lock retries.
const lockPoll = 50 * time.Millisecond

type lockRecord struct {
	Until time.Time `json:"until"`
}

// Lock takes a short exclusive lock named name, shared by every replica (for example
// "integration.<serviceId>" around a check-then-create), waiting until it is free or ctx
// ends. A lock not released within ttl (a crashed holder) is taken over. The returned
// function releases it.
func (s *Store) Lock(ctx context.Context, name string, ttl time.Duration) (func(), error) {
	key := lockKeyPrefix + enc(name)
	for {
		body, _ := json.Marshal(lockRecord{Until: s.now().Add(ttl)})
		rev, err := s.mappings.Create(ctx, key, body)
		if err == nil {
			return func() {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = s.mappings.Delete(ctx, key, jetstream.LastRevision(rev))
			}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("take lock %s: %w", name, err)
		}
		if e, gerr := s.mappings.Get(ctx, key); gerr == nil {
			var held lockRecord
			if json.Unmarshal(e.Value(), &held) != nil || s.now().After(held.Until) {
				// Expired: remove it only if nobody renewed it meanwhile.
				_ = s.mappings.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("take lock %s: %w", name, context.Cause(ctx))
		case <-time.After(lockPoll):
		}
	}
}
