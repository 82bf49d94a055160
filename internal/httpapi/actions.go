package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/actions"
	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/schemas"
)

// JobQueue hands action jobs to the workers and reads their results (events.Jobs).
//
// Claim records fingerprint for jobID once; it returns "" when this call recorded it,
// else the fingerprint recorded first.
// Submit publishes the job; publishing the same id twice yields one job. Result returns
// (nil, nil) while the job has no result. WaitResult blocks until a result exists or
// ctx ends. Errors other than a ctx error mean NATS could not be used. Safe for
// concurrent use.
type JobQueue interface {
	Claim(ctx context.Context, jobID, fingerprint string) (string, error)
	Submit(ctx context.Context, subject string, req events.JobRequest) error
	Result(ctx context.Context, jobID string) (*events.JobResult, error)
	WaitResult(ctx context.Context, jobID string) (*events.JobResult, error)
}

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 255

// natsTimeout bounds each NATS operation of a request (claim, read, publish), so that a
// NATS outage gives a prompt 503 rather than a hang.
const natsTimeout = 5 * time.Second

type actionHandlers struct {
	cfg       Config
	actions   *actions.Registry
	validator *schemas.Validator
	jobs      JobQueue
	connected func() bool
	log       zerolog.Logger
}

// actionInfo is one entry of GET /api/pagerduty/actions.
type actionInfo struct {
	ID          string     `json:"id"`
	Description string     `json:"description"`
	Schema      actionSpec `json:"schema"`
}

type actionSpec struct {
	Input  json.RawMessage `json:"input"`
	Output json.RawMessage `json:"output"`
}

func (h *actionHandlers) list(w http.ResponseWriter, _ *http.Request) {
	out := []actionInfo{}
	for _, a := range h.actions.List() {
		out = append(out, actionInfo{
			ID:          a.ID(),
			Description: a.Description(),
			Schema:      actionSpec{Input: h.validator.Raw(a.InputSchema()), Output: h.validator.Raw(a.OutputSchema())},
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// run enqueues the action's job on NATS and waits (bounded) for its result.
func (h *actionHandlers) run(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	action, ok := h.actions.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown action %q: GET /api/pagerduty/actions lists the actions", id))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if !writeTooLarge(w, err) {
			writeError(w, http.StatusBadRequest, "cannot read request body: "+err.Error())
		}
		return
	}
	if err := h.validator.Validate(action.InputSchema(), body); err != nil {
		var ve *schemas.Error
		if errors.As(err, &ve) {
			writeError(w, http.StatusBadRequest, ve.Message, ve.Details...)
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if h.cfg.ReadOnly {
		writeError(w, http.StatusForbidden, "pdworker runs with READ_ONLY=true: it creates nothing in PagerDuty")
		return
	}
	input, fingerprint, err := canonical(id, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	jobID := events.NewJobID()
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if len(key) > maxIdempotencyKey || strings.ContainsFunc(key, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("Idempotency-Key must be 1 to %d printable ASCII characters", maxIdempotencyKey))
			return
		}
		jobID = events.JobID(key)
	}
	w.Header().Set("Pdworker-Job-Id", jobID)
	log := h.log.With().Str("action", id).Str("job_id", jobID).Logger()

	if !h.connected() {
		writeError(w, http.StatusServiceUnavailable, "NATS is unavailable: the job cannot be enqueued; retry later")
		return
	}
	ctx := r.Context()
	opCtx, cancelOps := context.WithTimeout(ctx, natsTimeout)
	defer cancelOps()
	first, err := h.jobs.Claim(opCtx, jobID, fingerprint)
	if err != nil {
		h.unavailable(w, log, "record the job", err)
		return
	}
	if first != "" && first != fingerprint {
		writeError(w, http.StatusConflict, "this Idempotency-Key was already used for a different request; use a new key for a new request")
		return
	}
	res, err := h.jobs.Result(opCtx, jobID)
	if err != nil {
		h.unavailable(w, log, "read the job result", err)
		return
	}
	if res == nil {
		if err := h.jobs.Submit(opCtx, events.ActionSubject(id), events.JobRequest{ID: jobID, Input: input}); err != nil {
			h.unavailable(w, log, "enqueue the job", err)
			return
		}
		waitCtx, cancel := context.WithTimeout(ctx, h.cfg.ActionWait)
		res, err = h.jobs.WaitResult(waitCtx, jobID)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return // the caller went away; the job goes on
		case errors.Is(err, context.DeadlineExceeded):
			writeError(w, http.StatusGatewayTimeout, fmt.Sprintf(
				"job %s is still running after %s; it goes on in the background: repeat the request with the same Idempotency-Key to get its result", jobID, h.cfg.ActionWait))
			return
		case err != nil:
			h.unavailable(w, log, "wait for the job result", err)
			return
		}
	}
	writeResult(w, res)
}

func (h *actionHandlers) unavailable(w http.ResponseWriter, log zerolog.Logger, what string, err error) {
	log.Error().Err(err).Msg("cannot " + what)
	writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("NATS is unavailable: cannot %s; retry later", what))
}

// writeResult answers with a finished job's output, or its failure as a status.
func writeResult(w http.ResponseWriter, res *events.JobResult) {
	if res.Status == events.StatusSucceeded {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(append([]byte(res.Output), '\n'))
		return
	}
	msg, code := "the job failed", actions.CodeInternal
	if res.Error != nil {
		msg, code = res.Error.Message, res.Error.Code
	}
	writeError(w, failureStatus(code), msg)
}

// failureStatus maps an action failure code to the HTTP status of the call.
func failureStatus(code string) int {
	switch code {
	case actions.CodeInvalidInput, actions.CodeUnknownAccount, actions.CodeUnknownEscalationPolicy:
		return http.StatusBadRequest
	case actions.CodeReadOnly:
		return http.StatusForbidden
	case actions.CodeConflict:
		return http.StatusConflict
	case actions.CodePagerDutyError, actions.CodePagerDutyUnavailable:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// canonical re-encodes a validated input (stable key order, no insignificant space)
// and fingerprints it together with the action id, so that one Idempotency-Key cannot
// silently stand for two different requests.
func canonical(actionID string, body []byte) (json.RawMessage, string, error) {
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, "", fmt.Errorf("request body is not a JSON object: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, "", fmt.Errorf("re-encode input: %w", err)
	}
	sum := sha256.Sum256(append([]byte(actionID+"\n"), b...))
	return b, hex.EncodeToString(sum[:]), nil
}
