package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/secret"
	"github.com/pdworker/pdworker/internal/webhook"
)

// Webhook delivery headers PagerDuty sends besides the signature.
const (
	headerWebhookID           = "X-Webhook-Id"
	headerWebhookSubscription = "X-Webhook-Subscription"
)

// defaultWebhookPublishTimeout keeps the answer well inside PagerDuty's 5 s.
const defaultWebhookPublishTimeout = 3 * time.Second

var accountParam = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// WebhookPublisher stores a message durably: the JetStream publish returns once the
// stream has it (jetstream.JetStream satisfies it). An error means it was not stored.
type WebhookPublisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// WebhookDeps configure the PagerDuty webhook receiver.
type WebhookDeps struct {
	// Secrets are the v3 signing secrets (PAGERDUTY_WEBHOOK_SECRETS); a delivery is
	// valid when any signature matches any of them.
	Secrets []secret.Value
	// Publisher stores deliveries; nil disables the route (404).
	Publisher WebhookPublisher
	// MaxBodyBytes caps a delivery (HTTP_MAX_BODY_BYTES); larger bodies get 413.
	MaxBodyBytes int64
	// PublishTimeout bounds the durable publish (default 3 s).
	PublishTimeout time.Duration
	// Connected, when set, reports without I/O whether NATS is reachable; when it is
	// not, deliveries get 503 at once instead of waiting for PublishTimeout.
	Connected func() bool
}

// registerWebhooks adds POST /api/pagerduty/webhooks. It is not behind bearer-token
// auth: PagerDuty proves itself with the signature.
func registerWebhooks(handle func(string, http.Handler), deps WebhookDeps, log zerolog.Logger) {
	if deps.Publisher == nil {
		return
	}
	handle("POST /api/pagerduty/webhooks", NewWebhookHandler(deps, log))
}

// NewWebhookHandler returns the PagerDuty v3 webhook receiver: cap the body (413),
// verify X-PagerDuty-Signature over the raw bytes (401), decode the envelope (400),
// store it on pagerduty.webhook.<event_type> with Nats-Msg-Id = X-Webhook-Id (or
// event.id), and answer 202; 503 when the store cannot take it, so PagerDuty retries.
// Processing happens in the webhook worker, never here.
func NewWebhookHandler(deps WebhookDeps, log zerolog.Logger) http.Handler {
	log = log.With().Str("component", "webhooks").Logger()
	timeout := deps.PublishTimeout
	if timeout <= 0 {
		timeout = defaultWebhookPublishTimeout
	}
	// A delivery's bytes are needed only until the publish returns (the NATS client
	// copies them), so their buffers are recycled across requests.
	buffers := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		account := r.URL.Query().Get("account")
		if account != "" && !accountParam.MatchString(account) {
			writeError(w, http.StatusBadRequest, "account must be 1-64 letters, digits, '-' or '_'")
			return
		}
		buf := buffers.Get().(*bytes.Buffer)
		defer func() {
			if buf.Cap() <= maxPooledBodyBytes {
				buf.Reset()
				buffers.Put(buf)
			}
		}()
		body, err := readBody(w, r, deps.MaxBodyBytes, buf)
		if err != nil {
			if !writeTooLarge(w, err) {
				writeError(w, http.StatusBadRequest, "cannot read webhook body")
			}
			return
		}
		if err := webhook.VerifySignature(r.Header.Get(webhook.SignatureHeader), body, deps.Secrets); err != nil {
			log.Warn().Err(err).Str("webhook_id", r.Header.Get(headerWebhookID)).Msg("webhook refused: signature")
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		env, err := webhook.Decode(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if deps.Connected != nil && !deps.Connected() {
			unavailable(w)
			return
		}
		msg := nats.NewMsg(events.WebhookSubject(env.Event.EventType))
		msg.Data = body
		id := r.Header.Get(headerWebhookID)
		if id == "" {
			id = env.Event.ID
		}
		msg.Header.Set(nats.MsgIdHdr, id)
		if account != "" {
			msg.Header.Set(events.HeaderWebhookAccount, account)
		}
		if sub := r.Header.Get(headerWebhookSubscription); sub != "" {
			msg.Header.Set(events.HeaderWebhookSubscription, sub)
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if _, err := deps.Publisher.PublishMsg(ctx, msg); err != nil {
			log.Warn().Err(err).Str("webhook_id", id).Str("event_type", env.Event.EventType).Msg("webhook not stored; answering 503")
			unavailable(w)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// maxPooledBodyBytes bounds the buffers kept for reuse, so that one large delivery
// does not pin its buffer.
const maxPooledBodyBytes = 64 << 10

// readBody reads the request body into buf, in one allocation at most when the
// Content-Length is known, and fails with *http.MaxBytesError past limit.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, buf *bytes.Buffer) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	if r.ContentLength > 0 {
		// ReadFrom wants MinRead bytes free before each read, the last one included.
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// unavailable answers 503 so that PagerDuty retries the delivery.
func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, "cannot store the webhook now; retry later")
}
