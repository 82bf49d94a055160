package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
)

// Job result statuses.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// maxJobIDLen bounds job ids so that they stay short as KV keys and subject tokens.
const maxJobIDLen = 128

// Key prefixes in the action_state bucket.
const (
	claimKeyPrefix = "claim."
	stateKeyPrefix = "state."
)

var (
	// ErrStateConflict reports that a job checkpoint changed since it was loaded (or
	// already existed when it was to be created): another delivery of the same job
	// got there first.
	ErrStateConflict = errors.New("job state changed concurrently")
	// ErrInvalidJobID reports a job id that is not 1–128 characters of
	// [A-Za-z0-9_-]; JobID and NewJobID always give valid ids.
	ErrInvalidJobID = errors.New("invalid job id")
)

// JobRequest is the body of a scaffolder action job message.
type JobRequest struct {
	// ID identifies the job; it is also the message's Nats-Msg-Id and the key of its
	// result. See JobID and NewJobID.
	ID string `json:"id"`
	// Input is the action input, the same JSON object the HTTP route takes.
	Input json.RawMessage `json:"input"`
}

// JobError describes why a job failed.
type JobError struct {
	Message string `json:"message"`
	Code    string `json:"code"`
}

// JobResult is the outcome of a job, kept in the action_results bucket and published
// on ResultSubject(ID).
type JobResult struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	// Status is StatusSucceeded or StatusFailed.
	Status string          `json:"status"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  *JobError       `json:"error,omitempty"`
}

// JobID maps a client's idempotency key (any string, such as an HTTP
// Idempotency-Key header) to a job id: the first 32 hex digits of its SHA-256. The
// same key always gives the same id, and the id is a valid KV key and subject token
// whatever the key contains.
func JobID(idempotencyKey string) string {
	sum := sha256.Sum256([]byte(idempotencyKey))
	return hex.EncodeToString(sum[:16])
}

// NewJobID returns a new unique job id (a ULID: sortable by creation time).
func NewJobID() string {
	return ulid.Make().String()
}

// ValidJobID reports whether id can be used as a job id: 1–128 characters of
// [A-Za-z0-9_-], so that it is one subject token and a valid KV key.
func ValidJobID(id string) bool {
	if id == "" || len(id) > maxJobIDLen {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

func checkJobID(id string) error {
	if !ValidJobID(id) {
		return fmt.Errorf("%w %q: want 1-%d characters of A-Z, a-z, 0-9, '-' and '_'", ErrInvalidJobID, id, maxJobIDLen)
	}
	return nil
}

// Jobs is the job store for scaffolder actions: it submits jobs, records claims and
// step checkpoints, and stores and publishes results. It is safe for concurrent use.
type Jobs struct {
	js      jetstream.JetStream
	results jetstream.KeyValue
	state   jetstream.KeyValue
}

// NewJobs opens the job store. The buckets must exist (see Provision).
func NewJobs(ctx context.Context, js jetstream.JetStream) (*Jobs, error) {
	results, err := js.KeyValue(ctx, BucketActionResults)
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %s (not provisioned?): %w", BucketActionResults, err)
	}
	state, err := js.KeyValue(ctx, BucketActionState)
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %s (not provisioned?): %w", BucketActionState, err)
	}
	return &Jobs{js: js, results: results, state: state}, nil
}

// Submit publishes req on subject with Nats-Msg-Id = req.ID, so that JetStream stores
// a job once however often it is submitted within the stream's duplicate window.
func (j *Jobs) Submit(ctx context.Context, subject string, req JobRequest) error {
	if err := checkJobID(req.ID); err != nil {
		return err
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", req.ID, err)
	}
	if _, err := j.js.Publish(ctx, subject, data, jetstream.WithMsgID(req.ID)); err != nil {
		return fmt.Errorf("submit job %s on %s: %w", req.ID, subject, err)
	}
	return nil
}

// Claim records fingerprint (for example a hash of the request body) as the owner of
// jobID, once. When the claim is new it returns "". When jobID was already claimed it
// returns the fingerprint stored first, which the caller compares with its own: equal
// means the same request again, different means the idempotency key was reused for
// another request.
func (j *Jobs) Claim(ctx context.Context, jobID, fingerprint string) (existingFingerprint string, err error) {
	if err := checkJobID(jobID); err != nil {
		return "", err
	}
	key := claimKeyPrefix + jobID
	_, err = j.state.Create(ctx, key, []byte(fingerprint))
	if err == nil {
		return "", nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("claim job %s: %w", jobID, err)
	}
	e, err := j.state.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("read claim of job %s: %w", jobID, err)
	}
	return string(e.Value()), nil
}

// PutResult stores res in the action_results bucket (replacing an earlier result of
// the same job) and then publishes it on ResultSubject(res.ID).
func (j *Jobs) PutResult(ctx context.Context, res JobResult) error {
	if err := checkJobID(res.ID); err != nil {
		return err
	}
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encode result of job %s: %w", res.ID, err)
	}
	rev, err := j.results.Put(ctx, res.ID, data)
	if err != nil {
		return fmt.Errorf("store result of job %s: %w", res.ID, err)
	}
	// The revision makes the message id unique per write, while a repeated publish of
	// the same write is still de-duplicated.
	msgID := fmt.Sprintf("result.%s.%d", res.ID, rev)
	if _, err := j.js.Publish(ctx, ResultSubject(res.ID), data, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish result of job %s: %w", res.ID, err)
	}
	return nil
}

// Result returns the stored result of jobID, or (nil, nil) when there is none yet.
func (j *Jobs) Result(ctx context.Context, jobID string) (*JobResult, error) {
	if err := checkJobID(jobID); err != nil {
		return nil, err
	}
	e, err := j.results.Get(ctx, jobID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read result of job %s: %w", jobID, err)
	}
	return decodeResult(jobID, e.Value())
}

// WaitResult returns the result of jobID as soon as it exists, at once when it is
// already stored. It gives up when ctx is done, with an error that wraps ctx.Err().
func (j *Jobs) WaitResult(ctx context.Context, jobID string) (*JobResult, error) {
	if err := checkJobID(jobID); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The watcher first delivers the key's current value, if any, then a nil marker,
	// then every later change, so a result written before or after this call is seen.
	w, err := j.results.Watch(ctx, jobID)
	if err != nil {
		return nil, fmt.Errorf("watch result of job %s: %w", jobID, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for result of job %s: %w", jobID, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("wait for result of job %s: %w", jobID, ctx.Err())
				}
				return nil, fmt.Errorf("wait for result of job %s: watcher stopped", jobID)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			return decodeResult(jobID, e.Value())
		}
	}
}

func decodeResult(jobID string, data []byte) (*JobResult, error) {
	var res JobResult
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("decode result of job %s: %w", jobID, err)
	}
	return &res, nil
}

// LoadState returns the latest checkpoint of jobID and its revision, or (nil, 0, nil)
// when the job has none yet. Pass the revision to SaveState.
func (j *Jobs) LoadState(ctx context.Context, jobID string) (state []byte, rev uint64, err error) {
	if err := checkJobID(jobID); err != nil {
		return nil, 0, err
	}
	e, err := j.state.Get(ctx, stateKeyPrefix+jobID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load state of job %s: %w", jobID, err)
	}
	return e.Value(), e.Revision(), nil
}

// SaveState writes a checkpoint of jobID if the stored one still has revision rev
// (rev 0: only if there is none yet) and returns the new revision. When another
// writer got there first it returns an error matching ErrStateConflict; the caller
// then reloads the state and decides again.
func (j *Jobs) SaveState(ctx context.Context, jobID string, state []byte, rev uint64) (uint64, error) {
	if err := checkJobID(jobID); err != nil {
		return 0, err
	}
	key := stateKeyPrefix + jobID
	if rev == 0 {
		n, err := j.state.Create(ctx, key, state)
		if IsKVConflict(err) {
			return 0, fmt.Errorf("save state of job %s: %w: %w", jobID, ErrStateConflict, err)
		}
		if err != nil {
			return 0, fmt.Errorf("save state of job %s: %w", jobID, err)
		}
		return n, nil
	}
	n, err := j.state.Update(ctx, key, state, rev)
	if IsKVConflict(err) {
		return 0, fmt.Errorf("save state of job %s at revision %d: %w: %w", jobID, rev, ErrStateConflict, err)
	}
	if err != nil {
		return 0, fmt.Errorf("save state of job %s: %w", jobID, err)
	}
	return n, nil
}
