package depsync

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdworker/pdworker/internal/mapping"
)

const dirtyPrefix = "dirty."

// MarkChanged records that entities changed (their dependsOn, mapping or annotations),
// so that the next RunChanged reconciles them. Bursts (a catalog import) coalesce into
// one run.
func (s *Syncer) MarkChanged(ctx context.Context, refs ...string) error {
	for _, r := range refs {
		ref, err := mapping.NormalizeRef(r)
		if err != nil {
			continue
		}
		if _, err := s.kv.Put(ctx, dirtyPrefix+enc(ref), nil); err != nil {
			return fmt.Errorf("mark %s for reconcile: %w", ref, err)
		}
	}
	return nil
}

// RunChanged reconciles the entities marked by MarkChanged, under the lease shared with
// the periodic job, and clears each mark it handled (a mark set again meanwhile stays).
// It returns nil, nil when nothing was marked or another replica holds the lease.
func (s *Syncer) RunChanged(ctx context.Context) (*Report, error) {
	type mark struct {
		ref string
		rev uint64
	}
	var marks []mark
	w, err := s.kv.Watch(ctx, dirtyPrefix+">", jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		return nil, err
	}
	for e := range w.Updates() {
		if e == nil {
			break
		}
		marks = append(marks, mark{ref: dec(strings.TrimPrefix(e.Key(), dirtyPrefix)), rev: e.Revision()})
	}
	_ = w.Stop()
	if len(marks) == 0 {
		return nil, nil
	}
	refs := make([]string, len(marks))
	for i, m := range marks {
		refs[i] = m.ref
	}
	return s.underLease(ctx, changedLeaseTTL, func(leaseCtx context.Context) (*Report, error) {
		rep, err := s.runAndPublish(leaseCtx, ctx, Request{EntityRefs: refs}, "catalog", false)
		if err != nil {
			return rep, err
		}
		for _, m := range marks {
			_ = s.kv.Delete(ctx, dirtyPrefix+enc(m.ref), jetstream.LastRevision(m.rev))
		}
		return rep, nil
	})
}

// changedLeaseTTL is the lease time of a reconcile of changed entities.
const changedLeaseTTL = 10 * time.Minute

// RunChangedLoop calls RunChanged every period until ctx ends.
func (s *Syncer) RunChangedLoop(ctx context.Context, period time.Duration) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if _, err := s.RunChanged(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn().Err(err).Msg("reconcile of changed entities failed; it is retried")
			}
		}
	}
}
