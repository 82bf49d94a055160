package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/httpapi"
	"github.com/pdworker/pdworker/internal/secret"
	"github.com/pdworker/pdworker/internal/webhook"
)

func TestWebhookReceiver(t *testing.T) {
	_, _, js := natstest.Start(t)
	oldS, newS := secret.Value("old-secret-aaaaaaaa"), secret.Value("new-secret-bbbbbbbb")
	srv := httptest.NewServer(httpapi.NewWebhookHandler(httpapi.WebhookDeps{
		Secrets: []secret.Value{oldS, newS}, Publisher: js, MaxBodyBytes: 4096,
	}, zerolog.Nop()))
	t.Cleanup(srv.Close)
	body, err := os.ReadFile("../webhook/testdata/webhooks/incident_triggered.json")
	require.NoError(t, err)

	post := func(path, sig, id string, b []byte) int {
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(string(b)))
		require.NoError(t, err)
		if sig != "" {
			req.Header.Set(webhook.SignatureHeader, sig)
		}
		if id != "" {
			req.Header.Set("X-Webhook-Id", id)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	altered := []byte(strings.Replace(string(body), "A little bump", "A large bump", 1))
	big := []byte(`{"event":{"id":"x","event_type":"pagey.ping","resource_type":"pagey","occurred_at":"2022-03-08T00:48:45.512Z","data":{"pad":"` + strings.Repeat("x", 5000) + `"}}}`)
	notEnvelope := []byte(`{"messages":[]}`)
	tests := []struct {
		name, path, sig, id string
		body                []byte
		want                int
	}{
		{"good", "", webhook.Sign(oldS, body), "wh-1", body, http.StatusAccepted},
		{"rotated: two secrets, two signatures", "", webhook.Sign(oldS, body) + "," + webhook.Sign(newS, body), "wh-2", body, http.StatusAccepted},
		{"only the new secret signs", "", webhook.Sign(newS, body), "wh-3", body, http.StatusAccepted},
		{"account parameter", "?account=acme", webhook.Sign(newS, body), "wh-4", body, http.StatusAccepted},
		{"duplicate id is accepted again", "", webhook.Sign(oldS, body), "wh-1", body, http.StatusAccepted},
		{"no X-Webhook-Id: event.id", "", webhook.Sign(oldS, body), "", body, http.StatusAccepted},
		{"wrong secret", "", webhook.Sign("other", body), "bad-1", body, http.StatusUnauthorized},
		{"missing signature", "", "", "bad-2", body, http.StatusUnauthorized},
		{"malformed header", "", "v1=nothex", "bad-3", body, http.StatusUnauthorized},
		{"body altered after signing", "", webhook.Sign(oldS, body), "bad-4", altered, http.StatusUnauthorized},
		{"signed but not an envelope", "", webhook.Sign(oldS, notEnvelope), "bad-5", notEnvelope, http.StatusBadRequest},
		{"too large", "", webhook.Sign(oldS, big), "bad-6", big, http.StatusRequestEntityTooLarge},
		{"bad account parameter", "?account=a.b", webhook.Sign(oldS, body), "bad-7", body, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, post("/"+tt.path, tt.sig, tt.id, tt.body))
		})
	}

	ctx := context.Background()
	s, err := js.Stream(ctx, events.StreamPagerDutyWebhooks)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(5), info.State.Msgs, "wh-1..4 and the event.id fallback; the duplicate wh-1 is dropped")
	msg, err := s.GetLastMsgForSubject(ctx, events.WebhookSubject("incident.triggered"))
	require.NoError(t, err)
	assert.Equal(t, "01DEN7Y5TW8OH7BQN3V0Y7S7QF", msg.Header.Get("Nats-Msg-Id"), "event.id when X-Webhook-Id is absent")
	assert.Equal(t, body, msg.Data, "stored unchanged")
}

func TestWebhookReceiverAnswers503WithoutNATS(t *testing.T) {
	_, _, js := natstest.Start(t)
	s := secret.Value("s")
	srv := httptest.NewServer(httpapi.NewWebhookHandler(httpapi.WebhookDeps{
		Secrets: []secret.Value{s}, Publisher: js, MaxBodyBytes: 4096, PublishTimeout: 200 * time.Millisecond,
	}, zerolog.Nop()))
	t.Cleanup(srv.Close)
	body := []byte(`{"event":{"id":"p1","event_type":"pagey.ping","resource_type":"pagey","occurred_at":"2022-03-08T00:48:45.512Z","data":{}}}`)
	ctx := context.Background()
	require.NoError(t, js.DeleteStream(ctx, events.StreamPagerDutyWebhooks)) // nothing can store the subject
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(string(body)))
	req.Header.Set(webhook.SignatureHeader, webhook.Sign(s, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
}
