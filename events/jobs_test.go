package events_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
)

// newJobs opens a job store on a fresh server; ctx bounds the test.
func newJobs(t *testing.T) (*events.Jobs, jetstream.JetStream, context.Context) {
	t.Helper()
	_, _, js := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	jobs, err := events.NewJobs(ctx, js)
	require.NoError(t, err)
	return jobs, js, ctx
}

func TestJobIDs(t *testing.T) {
	keys := []string{"", "abc", "has spaces and * > wildcards", "dots.in.key", "ünïcödé", string(make([]byte, 4096))}
	for _, k := range keys {
		id := events.JobID(k)
		assert.True(t, events.ValidJobID(id), "JobID(%q) = %q", k, id)
		assert.Equal(t, id, events.JobID(k), "deterministic")
	}
	assert.NotEqual(t, events.JobID("a"), events.JobID("b"))

	a, b := events.NewJobID(), events.NewJobID()
	assert.True(t, events.ValidJobID(a))
	assert.NotEqual(t, a, b)

	for _, bad := range []string{"", "a.b", "a*", "a b", string(make([]byte, 129))} {
		assert.False(t, events.ValidJobID(bad), "%q", bad)
	}
}

func TestSubmitDeduplicatesByJobID(t *testing.T) {
	jobs, js, ctx := newJobs(t)

	req := events.JobRequest{ID: events.NewJobID(), Input: json.RawMessage(`{"name":"svc"}`)}
	require.NoError(t, jobs.Submit(ctx, events.SubjectServiceCreate, req))
	require.NoError(t, jobs.Submit(ctx, events.SubjectServiceCreate, req))

	s, err := js.Stream(ctx, events.StreamScaffolderJobs)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), info.State.Msgs)

	msg, err := s.GetLastMsgForSubject(ctx, events.SubjectServiceCreate)
	require.NoError(t, err)
	assert.Equal(t, req.ID, msg.Header.Get("Nats-Msg-Id"))
	var got events.JobRequest
	require.NoError(t, json.Unmarshal(msg.Data, &got))
	assert.Equal(t, req.ID, got.ID)
	assert.JSONEq(t, `{"name":"svc"}`, string(got.Input))

	err = jobs.Submit(ctx, events.SubjectServiceCreate, events.JobRequest{ID: "not.valid"})
	require.ErrorIs(t, err, events.ErrInvalidJobID)
}

func TestClaimFirstWins(t *testing.T) {
	jobs, _, ctx := newJobs(t)
	id := events.JobID("client-key-1")

	existing, err := jobs.Claim(ctx, id, "fp-a")
	require.NoError(t, err)
	assert.Empty(t, existing, "first claim")

	existing, err = jobs.Claim(ctx, id, "fp-b")
	require.NoError(t, err)
	assert.Equal(t, "fp-a", existing)

	existing, err = jobs.Claim(ctx, id, "fp-a")
	require.NoError(t, err)
	assert.Equal(t, "fp-a", existing)
}

func TestClaimConcurrent(t *testing.T) {
	jobs, _, ctx := newJobs(t)
	id := events.NewJobID()

	const n = 8
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		winner []string
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fp := string(rune('a' + i))
			existing, err := jobs.Claim(ctx, id, fp)
			assert.NoError(t, err)
			if existing == "" {
				mu.Lock()
				winner = append(winner, fp)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, winner, 1)
	existing, err := jobs.Claim(ctx, id, "late")
	require.NoError(t, err)
	assert.Equal(t, winner[0], existing)
}

func TestResults(t *testing.T) {
	jobs, js, ctx := newJobs(t)

	t.Run("none yet", func(t *testing.T) {
		res, err := jobs.Result(ctx, events.NewJobID())
		require.NoError(t, err)
		assert.Nil(t, res)
	})

	t.Run("written before WaitResult", func(t *testing.T) {
		want := events.JobResult{ID: events.NewJobID(), Action: "pagerduty:service:create", Status: events.StatusSucceeded, Output: json.RawMessage(`{"serviceId":"P1"}`)}
		require.NoError(t, jobs.PutResult(ctx, want))

		got, err := jobs.WaitResult(ctx, want.ID)
		require.NoError(t, err)
		assert.Equal(t, want.Status, got.Status)
		assert.JSONEq(t, `{"serviceId":"P1"}`, string(got.Output))

		got, err = jobs.Result(ctx, want.ID)
		require.NoError(t, err)
		assert.Equal(t, want.ID, got.ID)

		s, err := js.Stream(ctx, events.StreamScaffolderResults)
		require.NoError(t, err)
		msg, err := s.GetLastMsgForSubject(ctx, events.ResultSubject(want.ID))
		require.NoError(t, err)
		assert.Contains(t, string(msg.Data), `"serviceId":"P1"`)
	})

	t.Run("written after WaitResult", func(t *testing.T) {
		want := events.JobResult{ID: events.NewJobID(), Action: "pagerduty:service:create", Status: events.StatusFailed, Error: &events.JobError{Message: "boom", Code: "pagerduty_error"}}
		type outcome struct {
			res *events.JobResult
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := jobs.WaitResult(ctx, want.ID)
			done <- outcome{res, err}
		}()
		// Another job's result must not wake the waiter.
		require.NoError(t, jobs.PutResult(ctx, events.JobResult{ID: events.NewJobID(), Status: events.StatusSucceeded}))
		require.NoError(t, jobs.PutResult(ctx, want))

		got := <-done
		require.NoError(t, got.err)
		assert.Equal(t, want.ID, got.res.ID)
		require.NotNil(t, got.res.Error)
		assert.Equal(t, "boom", got.res.Error.Message)
	})

	t.Run("context ends the wait", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := jobs.WaitResult(short, events.NewJobID())
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestStateCompareAndSet(t *testing.T) {
	jobs, _, ctx := newJobs(t)
	id := events.NewJobID()

	state, rev, err := jobs.LoadState(ctx, id)
	require.NoError(t, err)
	assert.Nil(t, state)
	assert.Zero(t, rev)

	rev1, err := jobs.SaveState(ctx, id, []byte(`{"step":"service"}`), 0)
	require.NoError(t, err)
	_, err = jobs.SaveState(ctx, id, []byte(`{"step":"other"}`), 0)
	require.ErrorIs(t, err, events.ErrStateConflict, "create when it exists")

	rev2, err := jobs.SaveState(ctx, id, []byte(`{"step":"integration"}`), rev1)
	require.NoError(t, err)
	_, err = jobs.SaveState(ctx, id, []byte(`{"step":"stale"}`), rev1)
	require.ErrorIs(t, err, events.ErrStateConflict, "update from a stale revision")

	state, rev, err = jobs.LoadState(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, rev2, rev)
	assert.JSONEq(t, `{"step":"integration"}`, string(state))
}
