package workers_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/mapping"
)

// TestServiceDeletedMarksMapping deletes a service in the simulator: its
// service.deleted webhook goes through the receiver to the worker, which retires the
// service in the live view, marks its mapping (kept, with serviceDeletedAt) and
// publishes the entity event; the mapping of another service is untouched.
func TestServiceDeletedMarksMapping(t *testing.T) {
	w := newHookWorld(t, 2)
	w.startWorker("worker", func() *nats.Conn { nc, err := w.srv.Conn("w"); require.NoError(t, err); return nc }())
	ctx := context.Background()

	req, err := http.NewRequest(http.MethodDelete, w.simURL+"/services/PSVC000", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Token token="+simToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	w.settle(20 * time.Second)

	// A delivery that failed once is retried after a delay, so wait for the outcome
	// rather than for an empty queue.
	var gone *mapping.Mapping
	require.Eventually(t, func() bool {
		gone, err = w.mappings.ByService(ctx, "PSVC000")
		return err == nil && gone != nil && gone.ServiceDeletedAt != nil
	}, 20*time.Second, 20*time.Millisecond, "the mapping of the deleted service is marked")
	assert.Equal(t, "component:default/psvc000", gone.EntityRef)
	stay, err := w.mappings.ByService(ctx, "PSVC001")
	require.NoError(t, err)
	assert.Nil(t, stay.ServiceDeletedAt)

	v, err := w.view.Get(ctx, hookAcct, "PSVC000")
	require.NoError(t, err)
	require.NotNil(t, v)
	assert.True(t, v.Deleted)
	assert.Equal(t, *gone.ServiceDeletedAt, *v.DeletedAt, "both carry the event's occurred_at")
	assert.Eventually(t, func() bool { return w.streamCount(events.StreamPagerDutyEntity) == 1 }, 10*time.Second, 20*time.Millisecond,
		"the entity event of service.deleted, once")
	// Never can return while a check is still running, and the test's NATS is closed
	// right after: the check must not fail the test when it finds NATS closed.
	assert.Never(t, func() bool {
		n, err := w.streamMsgs(events.StreamPagerDutyEntity)
		return err == nil && n > 1
	}, 200*time.Millisecond, 20*time.Millisecond)
}
