package liveview_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/liveview"
	"github.com/pdworker/pdworker/internal/webhook"
)

const acct = "acme"

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func newStore(t *testing.T) *liveview.Store {
	t.Helper()
	_, _, js := natstest.Start(t)
	st, err := liveview.NewStore(context.Background(), js)
	require.NoError(t, err)
	return st
}

// incidentEvent is an incident lifecycle event for incident id on service svc.
func incidentEvent(id, eventID, svc, status string, at time.Time) webhook.Event {
	data, _ := json.Marshal(map[string]any{
		"id": id, "type": "incident", "status": status, "title": "title of " + id, "urgency": "high",
		"html_url":  "https://acme.pagerduty.com/incidents/" + id,
		"service":   map[string]string{"id": svc, "type": "service_reference", "summary": "Service " + svc},
		"assignees": []map[string]string{{"id": "PUSER1", "type": "user_reference", "summary": "Ann"}},
	})
	return webhook.Event{ID: eventID, EventType: "incident." + status, ResourceType: webhook.ResourceIncident, OccurredAt: at, Data: data}
}

func serviceEvent(eventID, eventType, svc, name string, at time.Time) webhook.Event {
	data, _ := json.Marshal(map[string]any{"id": svc, "type": "service", "summary": name, "html_url": "https://acme.pagerduty.com/service-directory/" + svc})
	return webhook.Event{ID: eventID, EventType: eventType, ResourceType: webhook.ResourceService, OccurredAt: at, Data: data}
}

func apply(t *testing.T, st *liveview.Store, ev webhook.Event) liveview.Result {
	t.Helper()
	res, err := st.Apply(context.Background(), acct, ev)
	require.NoError(t, err)
	return res
}

func get(t *testing.T, st *liveview.Store, svc string) *liveview.Service {
	t.Helper()
	v, err := st.Get(context.Background(), acct, svc)
	require.NoError(t, err)
	require.NotNil(t, v)
	return v
}

// TestOrderingNeverMovesBackwards applies the same three changes of one incident in
// every order: the view always ends resolved, and a change older than the state it
// holds is Stale.
func TestOrderingNeverMovesBackwards(t *testing.T) {
	changes := []webhook.Event{
		incidentEvent("PINC1", "e1", "PSVC1", webhook.StatusTriggered, t0),
		incidentEvent("PINC1", "e2", "PSVC1", webhook.StatusAcknowledged, t0.Add(time.Minute)),
		incidentEvent("PINC1", "e3", "PSVC1", webhook.StatusResolved, t0.Add(2*time.Minute)),
	}
	orders := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, order := range orders {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			st := newStore(t)
			newest := -1
			for _, i := range order {
				want := liveview.Applied
				if i < newest {
					want = liveview.Stale
				}
				assert.Equal(t, want, apply(t, st, changes[i]), "change %d after %d", i, newest)
				newest = max(newest, i)
			}
			v := get(t, st, "PSVC1")
			assert.Empty(t, v.Open)
			assert.Contains(t, v.Resolved, "PINC1")
			assert.Equal(t, 1, v.Counts[webhook.StatusResolved])
			assert.Equal(t, t0.Add(2*time.Minute), v.LastChange)
		})
	}
}

// TestSameMillisecondOrdersByStatus: within one millisecond, resolved beats
// acknowledged whatever the arrival order; a repeated event is Stale.
func TestSameMillisecondOrdersByStatus(t *testing.T) {
	st := newStore(t)
	assert.Equal(t, liveview.Applied, apply(t, st, incidentEvent("PINC1", "zzz", "PSVC1", webhook.StatusResolved, t0)))
	assert.Equal(t, liveview.Stale, apply(t, st, incidentEvent("PINC1", "aaa", "PSVC1", webhook.StatusAcknowledged, t0)))
	assert.Equal(t, liveview.Stale, apply(t, st, incidentEvent("PINC1", "zzz", "PSVC1", webhook.StatusResolved, t0)), "the same event twice")
	assert.Empty(t, get(t, st, "PSVC1").Open)
}

// TestCountsAndOpenIncidents: counts follow the open incidents by status and the
// tombstones; open incidents carry what the card shows.
func TestCountsAndOpenIncidents(t *testing.T) {
	st := newStore(t)
	apply(t, st, incidentEvent("PINC1", "e1", "PSVC1", webhook.StatusTriggered, t0))
	apply(t, st, incidentEvent("PINC2", "e2", "PSVC1", webhook.StatusTriggered, t0.Add(time.Second)))
	apply(t, st, incidentEvent("PINC3", "e3", "PSVC1", webhook.StatusTriggered, t0.Add(2*time.Second)))
	apply(t, st, incidentEvent("PINC3", "e4", "PSVC1", webhook.StatusAcknowledged, t0.Add(3*time.Second)))
	apply(t, st, incidentEvent("PINC4", "e5", "PSVC1", webhook.StatusTriggered, t0.Add(4*time.Second)))
	apply(t, st, incidentEvent("PINC4", "e6", "PSVC1", webhook.StatusResolved, t0.Add(5*time.Second)))
	apply(t, st, incidentEvent("PINC9", "e7", "PSVC2", webhook.StatusTriggered, t0.Add(6*time.Second)))

	v := get(t, st, "PSVC1")
	assert.Equal(t, map[string]int{webhook.StatusTriggered: 2, webhook.StatusAcknowledged: 1, webhook.StatusResolved: 1}, v.Counts)
	require.Contains(t, v.Open, "PINC3")
	inc := v.Open["PINC3"]
	assert.Equal(t, webhook.StatusAcknowledged, inc.Status)
	assert.Equal(t, "title of PINC3", inc.Title)
	assert.Equal(t, "high", inc.Urgency)
	assert.Equal(t, "https://acme.pagerduty.com/incidents/PINC3", inc.HTMLURL)
	assert.Equal(t, []liveview.Assignee{{ID: "PUSER1", Summary: "Ann"}}, inc.Assignees)
	assert.Equal(t, "e4", inc.LastChange.EventID)
	assert.Equal(t, "Service PSVC1", v.Name)

	all, err := st.List(context.Background(), acct)
	require.NoError(t, err)
	assert.Len(t, all, 2)
	other, err := st.List(context.Background(), "globex")
	require.NoError(t, err)
	assert.Empty(t, other)
}

// TestTombstones: a resolved incident's tombstone stops a late acknowledgement from
// reopening it while it is kept, and is dropped once the service's newest event is
// TombstoneRetention later.
func TestTombstones(t *testing.T) {
	st := newStore(t)
	apply(t, st, incidentEvent("PINC1", "e1", "PSVC1", webhook.StatusTriggered, t0))
	apply(t, st, incidentEvent("PINC1", "e3", "PSVC1", webhook.StatusResolved, t0.Add(2*time.Minute)))
	apply(t, st, incidentEvent("PINC2", "e4", "PSVC1", webhook.StatusTriggered, t0.Add(47*time.Hour)))
	assert.Equal(t, liveview.Stale, apply(t, st, incidentEvent("PINC1", "e2", "PSVC1", webhook.StatusAcknowledged, t0.Add(time.Minute))),
		"a late acknowledgement 47 h on does not reopen the incident")
	v := get(t, st, "PSVC1")
	assert.NotContains(t, v.Open, "PINC1")
	assert.Contains(t, v.Resolved, "PINC1")

	apply(t, st, incidentEvent("PINC2", "e5", "PSVC1", webhook.StatusAcknowledged, t0.Add(2*time.Minute+liveview.TombstoneRetention+time.Second)))
	v = get(t, st, "PSVC1")
	assert.NotContains(t, v.Resolved, "PINC1", "the tombstone expired")
	assert.Equal(t, 0, v.Counts[webhook.StatusResolved])
	assert.Equal(t, 1, v.Counts[webhook.StatusAcknowledged])
}

// TestServiceEventsAndMoves: service.deleted retires the service and its open
// incidents, an older service.updated is Stale, service.created brings it back; an
// incident moved to another service leaves the old one.
func TestServiceEventsAndMoves(t *testing.T) {
	st := newStore(t)
	apply(t, st, incidentEvent("PINC1", "e1", "PSVC1", webhook.StatusTriggered, t0))
	apply(t, st, serviceEvent("s1", webhook.TypeServiceUpdated, "PSVC1", "Payments", t0.Add(time.Minute)))
	assert.Equal(t, "Payments", get(t, st, "PSVC1").Name)
	apply(t, st, serviceEvent("s2", webhook.TypeServiceDeleted, "PSVC1", "Payments", t0.Add(3*time.Minute)))
	assert.Equal(t, liveview.Stale, apply(t, st, serviceEvent("s0", webhook.TypeServiceUpdated, "PSVC1", "Older", t0.Add(2*time.Minute))))
	v := get(t, st, "PSVC1")
	assert.True(t, v.Deleted)
	require.NotNil(t, v.DeletedAt)
	assert.Equal(t, t0.Add(3*time.Minute), *v.DeletedAt)
	assert.Empty(t, v.Open)
	assert.Equal(t, "Payments", v.Name)
	apply(t, st, serviceEvent("s3", webhook.TypeServiceCreated, "PSVC1", "Payments v2", t0.Add(4*time.Minute)))
	v = get(t, st, "PSVC1")
	assert.False(t, v.Deleted)
	assert.Nil(t, v.DeletedAt)

	apply(t, st, incidentEvent("PINC5", "m1", "PSVCA", webhook.StatusTriggered, t0))
	moved := incidentEvent("PINC5", "m2", "PSVCB", webhook.StatusTriggered, t0.Add(time.Minute))
	moved.EventType = webhook.TypeIncidentServiceUpdated
	apply(t, st, moved)
	assert.NotContains(t, get(t, st, "PSVCA").Open, "PINC5")
	assert.Contains(t, get(t, st, "PSVCB").Open, "PINC5")
}

// TestIgnoredAndBadEvents: pings, notes and unknown types are Ignored; incident data
// without a service is a bad event.
func TestIgnoredAndBadEvents(t *testing.T) {
	st := newStore(t)
	tests := []struct {
		name string
		ev   webhook.Event
		want liveview.Result
		bad  bool
	}{
		{name: "ping", ev: webhook.Event{ID: "p", EventType: webhook.TypePing, ResourceType: webhook.ResourcePagey, OccurredAt: t0, Data: json.RawMessage(`{"type":"ping"}`)}, want: liveview.Ignored},
		{name: "note", ev: webhook.Event{ID: "n", EventType: "incident.annotated", ResourceType: webhook.ResourceIncident, OccurredAt: t0,
			Data: json.RawMessage(`{"type":"incident_note","incident":{"id":"PINC1"},"content":"x"}`)}, want: liveview.Ignored},
		{name: "unknown", ev: webhook.Event{ID: "u", EventType: "oncall.handoff", ResourceType: "oncall", OccurredAt: t0, Data: json.RawMessage(`{}`)}, want: liveview.Ignored},
		{name: "no service", ev: webhook.Event{ID: "b", EventType: "incident.triggered", ResourceType: webhook.ResourceIncident, OccurredAt: t0,
			Data: json.RawMessage(`{"id":"PINC1","type":"incident","status":"triggered"}`)}, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := st.Apply(context.Background(), acct, tt.ev)
			if tt.bad {
				require.ErrorIs(t, err, liveview.ErrBadEvent)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, res)
		})
	}
}

// TestConcurrentUpdatesOnReplicatedBucket: workers updating one service at once on a
// three-node cluster (NATS_REPLICAS=3, where a lost compare-and-set carries another
// error code than on one node) retry their conflicts and all land.
func TestConcurrentUpdatesOnReplicatedBucket(t *testing.T) {
	cluster := natstest.StartCluster(t, 3)
	js, err := jetstream.New(cluster.Connect("liveview"))
	require.NoError(t, err)
	st, err := liveview.NewStore(context.Background(), js)
	require.NoError(t, err)

	const workers, perWorker = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				id := fmt.Sprintf("PINC%d-%d", w, i)
				_, err := st.Apply(context.Background(), acct, incidentEvent(id, "e-"+id, "PSVC1", webhook.StatusTriggered, t0.Add(time.Duration(i)*time.Second)))
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	v, err := st.Get(context.Background(), acct, "PSVC1")
	require.NoError(t, err)
	require.NotNil(t, v)
	assert.Len(t, v.Open, workers*perWorker)
}
