package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/actions"
	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/schemas"
)

// ResultStore keeps job results (events.Jobs). Result returns (nil, nil) when the job
// has none; PutResult stores it and announces it. Safe for concurrent use.
type ResultStore interface {
	Result(ctx context.Context, jobID string) (*events.JobResult, error)
	PutResult(ctx context.Context, res events.JobResult) error
}

// ActionJobs runs scaffolder action jobs taken from the scaffolder.action.* subjects:
// it validates the message and the action input, runs the action, and publishes the
// result. Its Handle and GiveUp plug into a Consumer.
type ActionJobs struct {
	actions   *actions.Registry
	validator *schemas.Validator
	results   ResultStore
	metrics   *Metrics
	log       zerolog.Logger
}

// NewActionJobs builds the action job handler; m (nil-safe) counts finished jobs.
func NewActionJobs(reg *actions.Registry, v *schemas.Validator, results ResultStore, m *Metrics, log zerolog.Logger) *ActionJobs {
	return &ActionJobs{actions: reg, validator: v, results: results, metrics: m, log: log.With().Str("component", "action-jobs").Logger()}
}

// Handle runs one job message. Bad messages and permanent action failures are
// permanent errors (GiveUp then records the failed result); anything else is retried.
func (h *ActionJobs) Handle(ctx context.Context, m *Message) error {
	action, job, err := h.decode(m)
	if err != nil {
		return Permanent(err)
	}
	// A job that already has a result is finished: a duplicate delivery (after
	// JetStream's de-duplication window) must not run it again.
	if res, err := h.results.Result(ctx, job.ID); err != nil {
		return fmt.Errorf("read result of job %s: %w", job.ID, err)
	} else if res != nil {
		h.log.Info().Str("job_id", job.ID).Msg("job already finished; duplicate message ignored")
		return nil
	}
	out, err := action.Run(ctx, job.ID, job.Input)
	if err != nil {
		if _, ok := actions.AsError(err); ok {
			return Permanent(err)
		}
		return err
	}
	if err := h.validator.Validate(action.OutputSchema(), out); err != nil {
		return Permanent(actions.Fail(actions.CodeInternal, err, "action %s produced an output that breaks its schema: %v", action.ID(), err))
	}
	res := events.JobResult{ID: job.ID, Action: action.ID(), Status: events.StatusSucceeded, Output: out}
	if err := h.results.PutResult(ctx, res); err != nil {
		return fmt.Errorf("store result of job %s: %w", job.ID, err)
	}
	h.metrics.actionResult(action.ID(), res.Status, "")
	return nil
}

// decode finds the action for the message's subject and validates the job envelope and
// the action input.
func (h *ActionJobs) decode(m *Message) (actions.Action, *events.JobRequest, error) {
	id, ok := events.ActionFromSubject(m.Subject)
	if !ok {
		return nil, nil, fmt.Errorf("subject %s is not a scaffolder action subject", m.Subject)
	}
	action, ok := h.actions.Get(id)
	if !ok {
		return nil, nil, fmt.Errorf("no action %q (subject %s)", id, m.Subject)
	}
	if err := h.validator.Validate(schemas.ScaffolderJob, m.Data); err != nil {
		return nil, nil, err
	}
	var job events.JobRequest
	if err := json.Unmarshal(m.Data, &job); err != nil {
		return nil, nil, fmt.Errorf("decode job: %w", err)
	}
	if err := h.validator.Validate(action.InputSchema(), job.Input); err != nil {
		return nil, nil, err
	}
	return action, &job, nil
}

// GiveUp records the failed result of a job that will not be retried, so that a
// waiting caller gets an answer instead of a timeout. Messages without a readable job
// id have no caller to answer; the dead letter is all that remains of them.
func (h *ActionJobs) GiveUp(ctx context.Context, m *Message, reason error) {
	var job events.JobRequest
	if json.Unmarshal(m.Data, &job) != nil || !events.ValidJobID(job.ID) {
		return
	}
	action, _ := events.ActionFromSubject(m.Subject)
	res := events.JobResult{ID: job.ID, Action: action, Status: events.StatusFailed, Error: jobError(reason)}
	if err := h.results.PutResult(ctx, res); err != nil {
		h.log.Error().Err(err).Str("job_id", job.ID).Msg("cannot record the failed result")
		return
	}
	h.metrics.actionResult(action, res.Status, res.Error.Code)
}

// jobError turns a final failure into the result's error.
func jobError(err error) *events.JobError {
	if ae, ok := actions.AsError(err); ok {
		return &events.JobError{Message: ae.Message, Code: ae.Code}
	}
	var se *schemas.Error
	switch {
	case errors.As(err, &se):
		return &events.JobError{Message: se.Error(), Code: actions.CodeInvalidInput}
	case pagerduty.IsRetryable(err), pagerduty.IsCallTimeout(err):
		return &events.JobError{Message: err.Error(), Code: actions.CodePagerDutyUnavailable}
	case pagerduty.ClassOf(err) != 0:
		return &events.JobError{Message: err.Error(), Code: actions.CodePagerDutyError}
	case classify(err).class == reasonPermanent:
		// A message that cannot be decoded; a panic (reasonPanic) stays internal.
		return &events.JobError{Message: err.Error(), Code: actions.CodeInvalidInput}
	}
	return &events.JobError{Message: err.Error(), Code: actions.CodeInternal}
}
