package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	receiver := httpapi.NewWebhookHandler(httpapi.WebhookDeps{
		Secrets: []secret.Value{oldS, newS}, Publisher: js, MaxBodyBytes: 4096,
	}, zerolog.Nop())
	var lastEncoding atomic.Value // the Transfer-Encoding of the last request the server saw
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastEncoding.Store(strings.Join(r.TransferEncoding, ","))
		receiver.ServeHTTP(w, r)
	}))
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
		req.Header.Set("X-Webhook-Subscription", "PSUB001")
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
	t.Run("too large, length not announced", func(t *testing.T) {
		// A reader of unknown length makes the client send the body chunked, so the cap
		// has to catch it while reading.
		req, err := http.NewRequest(http.MethodPost, srv.URL, io.MultiReader(bytes.NewReader(big)))
		require.NoError(t, err)
		req.Header.Set(webhook.SignatureHeader, webhook.Sign(oldS, big))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, "chunked", lastEncoding.Load())
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	})

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

	// The account parameter and the subscription travel as headers to the worker.
	stored := map[string]*jetstream.RawStreamMsg{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		stored[m.Header.Get("Nats-Msg-Id")] = m
	}
	require.Contains(t, stored, "wh-4")
	assert.Equal(t, "acme", stored["wh-4"].Header.Get(events.HeaderWebhookAccount))
	require.Contains(t, stored, "wh-1")
	assert.Empty(t, stored["wh-1"].Header.Values(events.HeaderWebhookAccount), "no account parameter, no header")
	for id, m := range stored {
		assert.Equal(t, "PSUB001", m.Header.Get(events.HeaderWebhookSubscription), id)
	}
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

// TestWebhookReceiverStoresEveryBodyExactly sends deliveries of many sizes at once,
// some chunked: each stored message must be its own body, byte for byte, whatever
// buffer the receiver read it into.
func TestWebhookReceiverStoresEveryBodyExactly(t *testing.T) {
	_, _, js := natstest.Start(t)
	key := secret.Value("s")
	srv := httptest.NewServer(httpapi.NewWebhookHandler(httpapi.WebhookDeps{
		Secrets: []secret.Value{key}, Publisher: js, MaxBodyBytes: 1 << 20,
	}, zerolog.Nop()))
	t.Cleanup(srv.Close)

	const n = 300
	bodies := make(map[string][]byte, n)
	for i := range n {
		id := fmt.Sprintf("size-%03d", i)
		pad := strings.Repeat(string(rune('a'+i%26)), (i*397)%20000)
		bodies[id] = []byte(`{"event":{"id":"` + id + `","event_type":"pagey.ping","resource_type":"pagey",` +
			`"occurred_at":"2022-03-08T00:48:45.512Z","data":{"pad":"` + pad + `"}}}`)
	}
	ids := make(chan string)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for id := range ids {
				var r io.Reader = bytes.NewReader(bodies[id])
				if len(bodies[id])%2 == 0 {
					r = io.MultiReader(r) // length unknown: sent chunked
				}
				req, err := http.NewRequest(http.MethodPost, srv.URL, r)
				if err != nil {
					errs <- err
					continue
				}
				req.Header.Set(webhook.SignatureHeader, webhook.Sign(key, bodies[id]))
				req.Header.Set("X-Webhook-Id", id)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					errs <- fmt.Errorf("%s: status %d", id, resp.StatusCode)
				}
			}
		})
	}
	for id := range bodies {
		ids <- id
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	ctx := context.Background()
	s, err := js.Stream(ctx, events.StreamPagerDutyWebhooks)
	require.NoError(t, err)
	for seq := uint64(1); seq <= n; seq++ {
		msg, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		id := msg.Header.Get("Nats-Msg-Id")
		want, ok := bodies[id]
		require.True(t, ok, "message %d has unknown id %q", seq, id)
		require.True(t, bytes.Equal(want, msg.Data), "message %s (%d bytes stored, %d sent) is not its body", id, len(msg.Data), len(want))
		delete(bodies, id)
	}
	assert.Empty(t, bodies, "deliveries not stored")
}
