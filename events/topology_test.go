package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
)

func TestProvisionCreatesTheTable(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, want := range events.Streams(1) {
		t.Run(want.Name, func(t *testing.T) {
			s, err := js.Stream(ctx, want.Name)
			require.NoError(t, err)
			have := s.CachedInfo().Config
			assert.Equal(t, want.Subjects, have.Subjects)
			assert.Equal(t, want.Retention, have.Retention)
			assert.Equal(t, jetstream.FileStorage, have.Storage)
			assert.Equal(t, want.MaxAge, have.MaxAge)
			if want.Duplicates > 0 {
				assert.Equal(t, want.Duplicates, have.Duplicates)
			}
		})
	}
	for _, want := range events.Buckets(1) {
		t.Run(want.Bucket, func(t *testing.T) {
			kv, err := js.KeyValue(ctx, want.Bucket)
			require.NoError(t, err)
			st, err := kv.Status(ctx)
			require.NoError(t, err)
			assert.Equal(t, want.TTL, st.TTL())
		})
	}

	jobs, err := js.Stream(ctx, events.StreamScaffolderJobs)
	require.NoError(t, err)
	assert.Equal(t, jetstream.WorkQueuePolicy, jobs.CachedInfo().Config.Retention)
	assert.Equal(t, 10*time.Minute, jobs.CachedInfo().Config.Duplicates)
}

func TestProvisionIsIdempotentAndRepairsDrift(t *testing.T) {
	_, _, js := natstest.Start(t) // provisions once
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	require.NoError(t, events.Provision(ctx, js, 1), "second provision")

	// An operator (or an older release) changed a stream and a bucket.
	s, err := js.Stream(ctx, events.StreamScaffolderResults)
	require.NoError(t, err)
	cfg := s.CachedInfo().Config
	cfg.MaxAge = time.Hour
	cfg.MaxMsgs = 12345
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
	_, err = js.UpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.BucketActionResults, TTL: time.Hour, Storage: jetstream.FileStorage})
	require.NoError(t, err)

	require.NoError(t, events.Provision(ctx, js, 1), "provision after drift")

	s, err = js.Stream(ctx, events.StreamScaffolderResults)
	require.NoError(t, err)
	assert.Equal(t, 24*time.Hour, s.CachedInfo().Config.MaxAge)
	assert.Equal(t, int64(12345), s.CachedInfo().Config.MaxMsgs, "settings outside the table are kept")
	kv, err := js.KeyValue(ctx, events.BucketActionResults)
	require.NoError(t, err)
	st, err := kv.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, 7*24*time.Hour, st.TTL())
}

func TestProvisionReplicasOnSingleServer(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	err := events.Provision(ctx, js, 3)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NATS_REPLICAS=3")
}
