package app

import (
	"context"
	"fmt"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/httpapi"
	"github.com/pdworker/pdworker/internal/liveview"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/workers"
)

// addWebhooks wires PagerDuty webhooks: the receiver stores deliveries; the webhook
// consumer keeps the live view, publishes entity events resolved through the mapping
// store, and remembers processed deliveries for longer than PagerDuty retries. It
// returns what the receiver route needs.
func (a *App) addWebhooks(ctx context.Context, d shared, mappings *mapping.Store) (httpapi.WebhookDeps, error) {
	liveView, err := liveview.NewStore(ctx, a.js)
	if err != nil {
		return httpapi.WebhookDeps{}, fmt.Errorf("live view: %w", err)
	}
	seen, err := events.NewSeen(ctx, a.js, events.SeenConfig{})
	if err != nil {
		return httpapi.WebhookDeps{}, fmt.Errorf("webhook seen records: %w", err)
	}
	handler := workers.NewWebhookEvents(a.js, liveView, seen, mappings, workers.WebhookEventsConfig{
		DefaultAccount: d.accounts.Default().Account(), Registerer: a.registry,
	})
	if err := a.consume(d, workers.ConsumerConfig{
		Stream: events.StreamPagerDutyWebhooks, Durable: "pdworker-webhooks",
		FilterSubjects: []string{events.SubjectWebhookPrefix + ">"}, Concurrency: a.cfg.WorkerConcurrency,
	}, handler.Handle); err != nil {
		return httpapi.WebhookDeps{}, err
	}
	return httpapi.WebhookDeps{
		Secrets: a.cfg.PagerDuty.WebhookSecrets, Publisher: a.js, MaxBodyBytes: a.cfg.HTTP.MaxBodyBytes, Connected: a.nc.IsConnected,
	}, nil
}
