package depsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdworker/pdworker/events"
)

const (
	leaseKey   = "lease.periodic"
	lastRunKey = "periodic.last"
)

type leaseRecord struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// acquire takes the periodic-job lease for ttl. It returns the revision to renew or
// release with, or ok=false when another replica holds an unexpired lease.
func (s *Syncer) acquire(ctx context.Context, ttl time.Duration) (uint64, bool, error) {
	body, _ := json.Marshal(leaseRecord{Holder: s.cfg.Holder, Until: s.now().Add(ttl)})
	rev, err := s.kv.Create(ctx, leaseKey, body)
	if err == nil {
		return rev, true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, false, fmt.Errorf("take the dependency-sync lease: %w", err)
	}
	e, err := s.kv.Get(ctx, leaseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil // released meanwhile; the next tick takes it
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the dependency-sync lease: %w", err)
	}
	var held leaseRecord
	if json.Unmarshal(e.Value(), &held) == nil && s.now().Before(held.Until) {
		return 0, false, nil
	}
	rev, err = s.kv.Update(ctx, leaseKey, body, e.Revision())
	if events.IsKVConflict(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("take over the dependency-sync lease: %w", err)
	}
	return rev, true, nil
}

func (s *Syncer) renew(ctx context.Context, rev uint64, ttl time.Duration) (uint64, error) {
	body, _ := json.Marshal(leaseRecord{Holder: s.cfg.Holder, Until: s.now().Add(ttl)})
	return s.kv.Update(ctx, leaseKey, body, rev)
}

func (s *Syncer) release(rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.kv.Delete(ctx, leaseKey, jetstream.LastRevision(rev))
}

// underLease runs fn while this replica holds the lease shared by the periodic and
// the catalog-triggered reconciles: it takes the lease for ttl, renews it every ttl/3
// while fn runs (losing it cancels fn's context with the reason), and releases it when
// fn returns. It returns nil, nil without calling fn when another replica holds it.
func (s *Syncer) underLease(ctx context.Context, ttl time.Duration, fn func(leaseCtx context.Context) (*Report, error)) (*Report, error) {
	rev, ok, err := s.acquire(ctx, ttl)
	if err != nil || !ok {
		return nil, err
	}
	leaseCtx, cancel := context.WithCancelCause(ctx)
	done, renewerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(renewerDone)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				next, err := s.renew(leaseCtx, rev, ttl)
				if err != nil {
					cancel(fmt.Errorf("lost the dependency-sync lease: %w", err))
					return
				}
				rev = next
			}
		}
	}()
	defer func() {
		close(done)
		<-renewerDone
		cancel(nil)
		s.release(rev) // the revision of the last renewal
	}()
	return fn(leaseCtx)
}

// Tick runs the periodic full reconcile if it is due (the last one, by any replica,
// started at least one tick ago) and this replica gets the lease. It returns the
// report (also published), or nil when it did not run.
func (s *Syncer) Tick(ctx context.Context) (*Report, error) {
	tick := s.tickPeriod()
	return s.underLease(ctx, max(2*tick, s.minLease), func(leaseCtx context.Context) (*Report, error) {
		if e, err := s.kv.Get(ctx, lastRunKey); err == nil {
			var last time.Time
			if json.Unmarshal(e.Value(), &last) == nil && s.now().Sub(last) < tick {
				return nil, nil
			}
		}
		b, _ := json.Marshal(s.now().UTC())
		if _, err := s.kv.Put(ctx, lastRunKey, b); err != nil {
			return nil, fmt.Errorf("record the periodic run: %w", err)
		}
		return s.runAndPublish(leaseCtx, ctx, Request{}, "periodic", true)
	})
}

func (s *Syncer) tickPeriod() time.Duration {
	return max(s.cfg.Interval/time.Duration(s.cfg.ReadSlices), time.Second)
}

// refreshCap is how many stale observations one periodic tick re-reads: the number of
// mapped services (bound) divided by the number of slices, so each is re-read about
// once per interval.
func (s *Syncer) refreshCap(bound int) int {
	return max(1, (bound+s.cfg.ReadSlices-1)/s.cfg.ReadSlices)
}

// RunPeriodic calls Tick every Interval/ReadSlices until ctx ends.
func (s *Syncer) RunPeriodic(ctx context.Context) error {
	t := time.NewTicker(s.tickPeriod())
	defer t.Stop()
	for {
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("periodic dependency reconcile failed")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
