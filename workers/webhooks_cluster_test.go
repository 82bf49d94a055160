package workers_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
)

var long = flag.Bool("long", false, "also run the 3-node NATS cluster test (about 20 s; .ci/run runs it)")

// TestWebhooksSurviveClusterNodeLoss runs the receiver and the worker against a
// 3-node NATS cluster (NATS_REPLICAS=3, clients given every node's URL) and stops the
// node that leads the webhook stream in the middle of a burst. Deliveries refused
// with 503 while the cluster elects a new leader are retried by the simulator, so
// every delivery is accepted eventually, stored once, processed once (one entity
// event and one seen record each), and the live view equals the simulator's
// incidents.
func TestWebhooksSurviveClusterNodeLoss(t *testing.T) {
	if !*long {
		t.Skip("starts a 3-node NATS cluster; run with -long")
	}
	cluster := natstest.StartCluster(t, 3)
	recvConn := cluster.Connect("receiver")
	js, err := jetstream.New(recvConn)
	require.NoError(t, err)
	w := newHookWorldOn(t, nil, js, 20, recvConn.IsConnected)
	// A generous MaxDeliver: while a leader is re-elected every store call of the
	// handler fails and is retried; none may be dead-lettered.
	w.startWorkerMax("worker", cluster.Connect("worker"), 1000)

	ctx := context.Background()
	stream, err := js.Stream(ctx, events.StreamPagerDutyWebhooks)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.NotNil(t, info.Cluster)
	require.Len(t, info.Cluster.Replicas, 2, "the webhook stream has three replicas")
	leader := cluster.Index(info.Cluster.Leader)
	require.GreaterOrEqual(t, leader, 0, "leader %q is a node of the cluster", info.Cluster.Leader)

	// Stop the stream's leader once a fifth of the burst is stored.
	const incidents = 1000
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			i, err := stream.Info(ctx)
			if err == nil && i.State.Msgs >= incidents/2 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cluster.Stop(leader)
	}()
	changes := w.burst(incidents, w.serviceIDs(), 24)
	<-stopped
	w.settle(60 * time.Second)

	info, err = stream.Info(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, cluster.Names()[leader], info.Cluster.Leader, "another node leads the stream")
	assert.Equal(t, uint64(changes), info.State.Msgs, "every delivery stored once")
	assert.Equal(t, uint64(changes), w.streamCount(events.StreamPagerDutyEntity), "one entity event per delivery")
	assert.Zero(t, w.streamCount(events.StreamDeadLetter), "nothing dead-lettered")
	seen, err := js.KeyValue(ctx, events.BucketWebhookSeen)
	require.NoError(t, err)
	st, err := seen.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(changes), st.Values(), "every delivery processed once")
	w.assertViewMatchesSim()
	for _, s := range w.sim.WebhookSubscriptions(hookAcct) {
		assert.Equal(t, changes, s.Delivered, "every delivery accepted")
		assert.Zero(t, s.Dropped)
		t.Logf("%d deliveries, %d attempts answered 503 or failed and were retried", s.Delivered, s.Retried)
	}
}
