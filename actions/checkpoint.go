package actions

import (
	"context"
	"encoding/json"
	"fmt"
)

// StateStore keeps one checkpoint per job with compare-and-set semantics.
//
// LoadState returns (nil, 0, nil) for a job that has none. SaveState with rev 0 creates
// the checkpoint and fails if one exists; otherwise it replaces revision rev and fails
// if another writer got there first. Either failure means a second run of the same job
// is under way, so the caller must stop rather than repeat side effects. Safe for
// concurrent use.
type StateStore interface {
	LoadState(ctx context.Context, jobID string) (state []byte, rev uint64, err error)
	SaveState(ctx context.Context, jobID string, state []byte, rev uint64) (uint64, error)
}

// step is one named unit of a pipeline. It reads and updates the job's state S; the
// pipeline checkpoints S after every step, so each step must first look at S to see
// whether an earlier run already did its work. A side effect that cannot be checked
// cheaply afterwards is preceded by its own step that only records the intent, so a
// rerun after a crash knows it has to look for the effect.
type step[S any] struct {
	name string
	run  func(ctx context.Context, st *S) error
}

// runPipeline loads the job's checkpoint into st (when one exists), runs every step in
// order and checkpoints after each one that changed the state.
func runPipeline[S any](ctx context.Context, store StateStore, jobID string, st *S, steps []step[S]) error {
	raw, rev, err := store.LoadState(ctx, jobID)
	if err != nil {
		return fmt.Errorf("load checkpoint of job %s: %w", jobID, err)
	}
	if raw != nil {
		if err := json.Unmarshal(raw, st); err != nil {
			return Fail(CodeInternal, err, "checkpoint of job %s is unreadable: %v", jobID, err)
		}
	}
	for _, s := range steps {
		before, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("encode state before %s: %w", s.name, err)
		}
		stepErr := s.run(ctx, st)
		after, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("encode state after %s: %w", s.name, err)
		}
		// Save whatever the step recorded, even when it failed afterwards.
		if string(after) != string(before) {
			if rev, err = store.SaveState(ctx, jobID, after, rev); err != nil {
				return fmt.Errorf("checkpoint job %s after %s: %w", jobID, s.name, err)
			}
		}
		if stepErr != nil {
			return fmt.Errorf("%s: %w", s.name, stepErr)
		}
	}
	return nil
}
