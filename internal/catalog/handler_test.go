package catalog_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/catalog"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/schemas"
	"github.com/pdworker/pdworker/workers"
)

func TestCatalogMessages(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, _, js := natstest.Start(t)
	store, err := mapping.NewStore(ctx, js)
	require.NoError(t, err)
	v, err := schemas.New()
	require.NoError(t, err)
	var mu sync.Mutex
	var marked []string
	mark := func(_ context.Context, refs ...string) error {
		mu.Lock()
		defer mu.Unlock()
		marked = append(marked, refs...)
		return nil
	}
	h := catalog.NewHandler(store, v, nil, mark, zerolog.Nop())
	cons, err := workers.NewConsumer(js, workers.ConsumerConfig{Stream: events.StreamCatalog, Durable: "test-catalog",
		FilterSubjects: []string{"catalog.entity.>"}, Concurrency: 1, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond},
		h.Handle, workers.NewMetrics(nil), zerolog.Nop())
	require.NoError(t, err)
	go func() { _ = cons.Run(ctx) }()
	// done reports that every message published so far has been handled and settled:
	// a handler marks an entity after storing it, and its message is acknowledged only
	// once the handler has returned.
	done := func() bool {
		c, err := js.Consumer(ctx, events.StreamCatalog, "test-catalog")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}

	bad := []struct{ name, subject, body, reason string }{
		{"invalid JSON", events.SubjectCatalogUpserted, `{"entity":`, "not valid JSON"},
		{"missing kind", events.SubjectCatalogUpserted, `{"entity":{"metadata":{"name":"a"}}}`, "kind"},
		{"missing name", events.SubjectCatalogUpserted, `{"entity":{"kind":"Component","metadata":{}}}`, "name"},
		{"malformed name", events.SubjectCatalogUpserted, `{"entity":{"kind":"Component","metadata":{"name":"a b"}}}`, "name"},
		{"dependsOn without kind", events.SubjectCatalogUpserted, `{"entity":{"kind":"Component","metadata":{"name":"a"},"spec":{"dependsOn":["b"]}}}`, "dependsOn"},
		{"malformed deleted ref", events.SubjectCatalogDeleted, `{"entityRef":"nokind"}`, "entityRef"},
	}
	for _, b := range bad {
		_, err := js.Publish(ctx, b.subject, []byte(b.body))
		require.NoError(t, err)
	}
	good := `{"entity":{"apiVersion":"backstage.io/v1alpha1","kind":"Component","metadata":{"name":"Checkout","namespace":"shop","etag":"e1","annotations":{"pagerduty.com/service-id":"PCHK001","pagerduty.com/account":"acme"}},"spec":{"dependsOn":["component:payments","resource:default/db"]}}}`
	_, err = js.Publish(ctx, events.SubjectCatalogUpserted, []byte(good))
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		e, err := store.Entity(ctx, "component:shop/checkout")
		return err == nil && e != nil
	}, 10*time.Second, 20*time.Millisecond, "the good message still flows")
	e, err := store.Entity(ctx, "component:shop/checkout")
	require.NoError(t, err)
	assert.Equal(t, "PCHK001", e.ServiceID)
	assert.Equal(t, "acme", e.Account)
	assert.Equal(t, []string{"component:shop/payments", "resource:default/db"}, e.DependsOn)
	require.Eventually(t, done, 10*time.Second, 20*time.Millisecond, "every message is settled")
	mu.Lock()
	assert.Equal(t, []string{"component:shop/checkout"}, marked)
	mu.Unlock()

	// The same entity again marks nothing; a change of its dependsOn marks it again.
	_, err = js.Publish(ctx, events.SubjectCatalogUpserted, []byte(good))
	require.NoError(t, err)
	changedDeps := strings.Replace(good, `"component:payments",`, "", 1)
	_, err = js.Publish(ctx, events.SubjectCatalogUpserted, []byte(changedDeps))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		e, err := store.Entity(ctx, "component:shop/checkout")
		return err == nil && e != nil && len(e.DependsOn) == 1
	}, 10*time.Second, 20*time.Millisecond, "the change is stored")
	require.Eventually(t, done, 10*time.Second, 20*time.Millisecond, "every message is settled")
	mu.Lock()
	assert.Equal(t, []string{"component:shop/checkout", "component:shop/checkout"}, marked)
	mu.Unlock()

	dl, err := js.Stream(ctx, events.StreamDeadLetter)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := dl.Info(ctx)
		return err == nil && info.State.Msgs == uint64(len(bad))
	}, 10*time.Second, 20*time.Millisecond)
	for i, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			msg, err := dl.GetMsg(ctx, uint64(i+1))
			require.NoError(t, err)
			assert.Equal(t, b.subject, msg.Header.Get(events.HeaderDLQSubject))
			assert.Contains(t, msg.Header.Get(events.HeaderDLQReason), b.reason)
		})
	}

	// Deleting removes the snapshot.
	_, err = js.Publish(ctx, events.SubjectCatalogDeleted, []byte(`{"entityRef":"Component:shop/Checkout"}`))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		e, err := store.Entity(ctx, "component:shop/checkout")
		return err == nil && e == nil
	}, 10*time.Second, 20*time.Millisecond)
}
