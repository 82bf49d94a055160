package events_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
)

func TestPublishDeadLetter(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	at := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	d := events.DeadLetter{
		Subject:    events.SubjectServiceCreate,
		Header:     nats.Header{"Nats-Msg-Id": {"job-1"}, "Traceparent": {"00-abc-def-01"}},
		Data:       []byte(`{"id":"job-1"}`),
		Reason:     "panic: boom\ngoroutine 1 [running]:",
		Stream:     events.StreamScaffolderJobs,
		StreamSeq:  42,
		Consumer:   "service-create",
		Deliveries: 3,
		Time:       at,
	}
	require.NoError(t, events.PublishDeadLetter(ctx, js, d))
	require.NoError(t, events.PublishDeadLetter(ctx, js, d), "a retried dead letter is de-duplicated")

	s, err := js.Stream(ctx, events.StreamDeadLetter)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), info.State.Msgs)

	raw, err := s.GetLastMsgForSubject(ctx, events.DeadLetterSubject(events.SubjectServiceCreate))
	require.NoError(t, err)
	assert.Equal(t, "panic: boom goroutine 1 [running]:", raw.Header.Get(events.HeaderDLQReason))
	assert.Equal(t, events.SubjectServiceCreate, raw.Header.Get(events.HeaderDLQSubject))
	assert.Equal(t, "service-create", raw.Header.Get(events.HeaderDLQConsumer))
	assert.Equal(t, "3", raw.Header.Get(events.HeaderDLQDeliveries))
	assert.Equal(t, "42", raw.Header.Get(events.HeaderDLQStreamSeq))
	assert.Equal(t, "2025-06-01T10:00:00Z", raw.Header.Get(events.HeaderDLQTime))
	assert.Equal(t, "job-1", raw.Header.Get(events.HeaderDLQMsgID))

	got := events.ParseDeadLetter(raw.Subject, raw.Header, raw.Data)
	assert.Equal(t, events.SubjectServiceCreate, got.Subject)
	assert.Equal(t, uint64(3), got.Deliveries)
	assert.Equal(t, uint64(42), got.StreamSeq)
	assert.Equal(t, events.StreamScaffolderJobs, got.Stream)
	assert.True(t, at.Equal(got.Time))
	assert.Equal(t, "job-1", got.Header.Get("Nats-Msg-Id"))
	assert.Equal(t, "00-abc-def-01", got.Header.Get("Traceparent"))
	assert.Equal(t, `{"id":"job-1"}`, string(got.Data))
}

func TestDeadLetterReasonIsBounded(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	long := strings.Repeat("é", 2000)
	require.NoError(t, events.PublishDeadLetter(ctx, js, events.DeadLetter{Subject: "depsync.run", Reason: long, StreamSeq: 1, Stream: events.StreamDepsync}))
	s, err := js.Stream(ctx, events.StreamDeadLetter)
	require.NoError(t, err)
	raw, err := s.GetLastMsgForSubject(ctx, "deadletter.depsync.run")
	require.NoError(t, err)
	reason := raw.Header.Get(events.HeaderDLQReason)
	assert.LessOrEqual(t, len(reason), 1024)
	assert.True(t, strings.HasSuffix(reason, "…"))
}

func TestSubjects(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"incident.triggered", "pagerduty.webhook.incident.triggered"},
		{"", "pagerduty.webhook.unknown"},
		{"a..b", "pagerduty.webhook.a.b"},
		{"bad *type >", "pagerduty.webhook.bad__type__"},
		{".", "pagerduty.webhook.unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, events.WebhookSubject(tt.in))
		})
	}
	assert.Equal(t, "pagerduty.entity.incident.resolved", events.EntitySubject("incident.resolved"))
	assert.Equal(t, "scaffolder.result.J1", events.ResultSubject("J1"))
	assert.Equal(t, "deadletter.catalog.entity.deleted", events.DeadLetterSubject(events.SubjectCatalogDeleted))
}
