package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/liveview"
	"github.com/pdworker/pdworker/internal/webhook"
)

// EntityResolver finds the Backstage entity a PagerDuty service maps to
// (mapping.Store). ok is false when the service maps to nothing; an error is
// retried. Safe for concurrent use.
type EntityResolver interface {
	ResolveService(ctx context.Context, account, serviceID string) (entityRef string, ok bool, err error)
}

// DeletedServiceMarker records on a service's mapping that PagerDuty deleted the
// service (mapping.Store). The worker uses it when its EntityResolver implements it.
// Marking twice must be harmless; errors are retried.
type DeletedServiceMarker interface {
	MarkServiceDeleted(ctx context.Context, account, serviceID string, at time.Time) (bool, error)
}

// SeenStore remembers processed deliveries beyond JetStream's duplicate window
// (events.Seen). Errors are retried. Safe for concurrent use.
type SeenStore interface {
	Has(ctx context.Context, id string) (bool, error)
	Mark(ctx context.Context, id string) error
}

// EntityEvent is the body of pagerduty.entity.<event_type>: a webhook event resolved
// to the Backstage entity it concerns.
type EntityEvent struct {
	EntityRef string          `json:"entityRef"`
	ServiceID string          `json:"serviceId"`
	Account   string          `json:"account"`
	Event     json.RawMessage `json:"event"`
}

// WebhookEventsConfig configures WebhookEvents.
type WebhookEventsConfig struct {
	// DefaultAccount is the account of deliveries that name none.
	DefaultAccount string
	// Registerer receives pdworker_webhook_events_total; nil registers nothing.
	Registerer prometheus.Registerer
}

// WebhookEvents processes stored PagerDuty webhooks (pagerduty.webhook.>): it skips
// deliveries already processed, applies incident and service events to the live
// view, marks the mapping of a deleted service (when the resolver is a
// DeletedServiceMarker), publishes each incident or service event of a mapped service
// on pagerduty.entity.<event_type>, and marks the delivery processed. pagey.ping and
// unknown event types are acknowledged and skipped. Its Handle plugs into a Consumer.
//
// Exactly-once processing rests on three facts: the live view ignores an event it
// already holds (so re-applying after a crash is harmless), entity events are
// published with Nats-Msg-Id = "entity." + delivery id (JetStream drops the repeat),
// and the seen mark, written last, stops duplicates that arrive after JetStream's
// duplicate window.
type WebhookEvents struct {
	view     *liveview.Store
	seen     SeenStore
	resolver EntityResolver
	js       jetstream.JetStream
	cfg      WebhookEventsConfig
	total    *prometheus.CounterVec
}

// NewWebhookEvents builds the webhook handler. resolver may be nil: then no entity
// events are published. Handle logs with the logger of its context (the consumer's,
// with the message's fields).
func NewWebhookEvents(js jetstream.JetStream, view *liveview.Store, seen SeenStore, resolver EntityResolver, cfg WebhookEventsConfig) *WebhookEvents {
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pdworker_webhook_events_total",
		Help: "PagerDuty webhook events handled by the worker, by outcome (applied, stale, ignored, duplicate, skipped).",
	}, []string{"outcome"})
	if cfg.Registerer != nil {
		total = register(cfg.Registerer, total)
	}
	return &WebhookEvents{
		view: view, seen: seen, resolver: resolver, js: js, cfg: cfg, total: total,
	}
}

// Handle processes one stored webhook. A body that is not a v3 envelope, or incident
// data that cannot be read, is permanent; store failures are retried.
func (h *WebhookEvents) Handle(ctx context.Context, m *Message) error {
	env, err := webhook.Decode(m.Data)
	if err != nil {
		return Permanent(err)
	}
	ev := env.Event
	id := m.Header.Get(nats.MsgIdHdr)
	if id == "" {
		id = ev.ID
	}
	log := zerolog.Ctx(ctx).With().Str("webhook_id", id).Str("event_type", ev.EventType).Logger()

	// Skipped deliveries are never marked seen, so they need no seen lookup.
	if !known(ev) {
		log.Debug().Msg("webhook event type not processed; kept in the stream and skipped")
		h.total.WithLabelValues("skipped").Inc()
		return nil
	}
	if seen, err := h.seen.Has(ctx, id); err != nil {
		return err
	} else if seen {
		log.Debug().Msg("webhook already processed; duplicate skipped")
		h.total.WithLabelValues("duplicate").Inc()
		return nil
	}
	account := m.Header.Get(events.HeaderWebhookAccount)
	if account == "" {
		account = h.cfg.DefaultAccount
	}

	res, err := h.view.Apply(ctx, account, ev)
	if errors.Is(err, liveview.ErrBadEvent) {
		return Permanent(err)
	} else if err != nil {
		return err
	}
	if err := h.markDeleted(ctx, account, ev); err != nil {
		return err
	}
	if err := h.publishEntity(ctx, account, id, ev); err != nil {
		return err
	}
	if err := h.seen.Mark(ctx, id); err != nil {
		return err
	}
	h.total.WithLabelValues(res.String()).Inc()
	log.Debug().Str("account", account).Str("service_id", ev.ServiceID()).Str("outcome", res.String()).Msg("webhook processed")
	return nil
}

// markDeleted marks the mapping of a service that a service.deleted event retires.
func (h *WebhookEvents) markDeleted(ctx context.Context, account string, ev webhook.Event) error {
	marker, ok := h.resolver.(DeletedServiceMarker)
	if !ok || ev.EventType != webhook.TypeServiceDeleted {
		return nil
	}
	serviceID := ev.ServiceID()
	if _, err := marker.MarkServiceDeleted(ctx, account, serviceID, ev.OccurredAt); err != nil {
		return fmt.Errorf("mark service %s deleted (account %s): %w", serviceID, account, err)
	}
	return nil
}

// publishEntity publishes the event on pagerduty.entity.<event_type> when its service
// maps to a Backstage entity.
func (h *WebhookEvents) publishEntity(ctx context.Context, account, id string, ev webhook.Event) error {
	serviceID := ev.ServiceID()
	if h.resolver == nil || serviceID == "" || ev.ResourceType == webhook.ResourcePagey {
		return nil
	}
	ref, ok, err := h.resolver.ResolveService(ctx, account, serviceID)
	if err != nil {
		return fmt.Errorf("resolve service %s (account %s): %w", serviceID, account, err)
	}
	if !ok || ref == "" {
		return nil
	}
	data, err := json.Marshal(EntityEvent{EntityRef: ref, ServiceID: serviceID, Account: account, Event: ev.Raw})
	if err != nil {
		return Permanent(err)
	}
	msg := nats.NewMsg(events.EntitySubject(ev.EventType))
	msg.Data = data
	msg.Header.Set(nats.MsgIdHdr, "entity."+id)
	if _, err := h.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish entity event for %s: %w", ref, err)
	}
	return nil
}

// known reports whether processing acts on the event: incident.* and service.*
// lifecycle events, and pagey.ping. Anything else (including early-access types) is
// kept in the stream and skipped.
func known(ev webhook.Event) bool {
	switch ev.ResourceType {
	case webhook.ResourceIncident, webhook.ResourceService:
		return strings.HasPrefix(ev.EventType, ev.ResourceType+".")
	case webhook.ResourcePagey:
		return ev.EventType == webhook.TypePing
	}
	return false
}
