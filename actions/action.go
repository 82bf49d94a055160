package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// Action is one scaffolder action.
//
// Run must be safe to call again for the same job id after any failure, including a
// crash halfway through: it resumes from the job's checkpoint. A returned error is an
// *Error (permanent: the job has failed) or anything else (retryable: run it again
// later, for example when PagerDuty answered 429 or 5xx).
type Action interface {
	// ID is the action id, for example "pagerduty:service:create".
	ID() string
	// Description is one sentence for GET /api/pagerduty/actions.
	Description() string
	// InputSchema and OutputSchema name the schemas package documents.
	InputSchema() string
	OutputSchema() string
	// Run executes the job. input has already been validated against InputSchema.
	Run(ctx context.Context, jobID string, input json.RawMessage) (json.RawMessage, error)
}

// Registry finds actions by id. It is built once and read concurrently.
type Registry struct {
	byID map[string]Action
}

// NewRegistry registers actions; ids must be unique.
func NewRegistry(actions ...Action) (*Registry, error) {
	r := &Registry{byID: map[string]Action{}}
	for _, a := range actions {
		if _, dup := r.byID[a.ID()]; dup {
			return nil, fmt.Errorf("action %s registered twice", a.ID())
		}
		r.byID[a.ID()] = a
	}
	return r, nil
}

// Get returns the action with that id.
func (r *Registry) Get(id string) (Action, bool) {
	a, ok := r.byID[id]
	return a, ok
}

// List returns every action, sorted by id.
func (r *Registry) List() []Action {
	out := make([]Action, 0, len(r.byID))
	for _, a := range r.byID {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out
}

// Codes of permanent failures. They travel in job results (error.code) and decide the
// HTTP status of a failed action call.
const (
	CodeInvalidInput            = "invalid_input"
	CodeUnknownAccount          = "unknown_account"
	CodeUnknownEscalationPolicy = "unknown_escalation_policy"
	CodeReadOnly                = "read_only"
	CodeConflict                = "conflict"
	CodePagerDutyError          = "pagerduty_error"
	CodePagerDutyUnavailable    = "pagerduty_unavailable"
	CodeInternal                = "internal"
)

// Error is a permanent action failure: running the job again cannot succeed.
type Error struct {
	Code    string
	Message string
	Err     error
}

// Fail returns a permanent failure with a code and a message for the caller.
func Fail(code string, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// Error returns the message for the caller.
func (e *Error) Error() string { return e.Message }

// Unwrap exposes the cause.
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports that the job must not be retried.
func (e *Error) Permanent() bool { return true }

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
