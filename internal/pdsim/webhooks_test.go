package pdsim_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

// hookReceiver records webhook deliveries and answers with the statuses of answer
// (by attempt number of each X-Webhook-Id), 202 afterwards.
type hookReceiver struct {
	mu       sync.Mutex
	got      []hookDelivery
	attempts map[string]int
	answer   func(id string, attempt int, body []byte) int
}

type hookDelivery struct {
	Header     http.Header
	Body       []byte
	Type       string
	ResourceID string
	Status     int
}

func newHookReceiver(t *testing.T, answer func(id string, attempt int, body []byte) int) (*hookReceiver, string) {
	t.Helper()
	h := &hookReceiver{attempts: map[string]int{}, answer: answer}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var env struct {
		Event struct {
			EventType string `json:"event_type"`
			Data      struct {
				ID string `json:"id"`
			} `json:"data"`
		} `json:"event"`
	}
	_ = json.Unmarshal(body, &env)
	h.mu.Lock()
	id := r.Header.Get("X-Webhook-Id")
	h.attempts[id]++
	status := http.StatusAccepted
	if h.answer != nil {
		status = h.answer(id, h.attempts[id], body)
	}
	h.got = append(h.got, hookDelivery{Header: r.Header.Clone(), Body: body, Type: env.Event.EventType, ResourceID: env.Event.Data.ID, Status: status})
	h.mu.Unlock()
	w.WriteHeader(status)
}

func (h *hookReceiver) deliveries() []hookDelivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookDelivery(nil), h.got...)
}

// accepted returns the event types of deliveries answered 2xx, in arrival order.
func (h *hookReceiver) accepted() []string { return h.acceptedFor("") }

// acceptedFor returns the event types of deliveries about one resource ("": any)
// answered 2xx, in arrival order: the simulator orders deliveries per resource only.
func (h *hookReceiver) acceptedFor(resourceID string) []string {
	var out []string
	for _, d := range h.deliveries() {
		if d.Status < 300 && (resourceID == "" || d.ResourceID == resourceID) {
			out = append(out, d.Type)
		}
	}
	return out
}

// fastWebhooks retries quickly, so that tests of retries finish at once, but gives
// each attempt a long timeout: an attempt that timed out after the receiver had
// recorded it would be sent again, and the tests count deliveries exactly.
func fastWebhooks() pdsim.Options {
	return pdsim.Options{Webhooks: pdsim.WebhookOptions{RetryInterval: 5 * time.Millisecond, MaxRetryInterval: 20 * time.Millisecond, Timeout: 30 * time.Second}}
}

// routingKey creates a service with an Events API v2 integration and returns both.
func routingKey(t *testing.T, srv *httptest.Server, name string) (serviceID, key string) {
	t.Helper()
	svc := createService(t, pdClient(srv, acme), name)
	resp, b := call(t, srv, http.MethodPost, "/services/"+svc.ID+"/integrations", acme,
		`{"integration":{"type":"events_api_v2_inbound_integration","name":"events"}}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))
	var out struct {
		Integration struct {
			Key string `json:"integration_key"`
		} `json:"integration"`
	}
	require.NoError(t, json.Unmarshal(b, &out))
	return svc.ID, out.Integration.Key
}

func enqueue(t *testing.T, srv *httptest.Server, key, action, dedup string) (int, map[string]any) {
	t.Helper()
	body := map[string]any{"routing_key": key, "event_action": action, "dedup_key": dedup}
	if action == "trigger" {
		body["payload"] = map[string]string{"summary": "disk full on " + dedup, "source": "db-1", "severity": "critical"}
	}
	resp, b := call(t, srv, http.MethodPost, "/v2/enqueue", "", mustJSON(t, body))
	var out map[string]any
	require.NoError(t, json.Unmarshal(b, &out), string(b))
	return resp.StatusCode, out
}

func waitWebhooks(t *testing.T, sim *pdsim.Sim) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	require.NoError(t, sim.WaitWebhooks(ctx))
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

func TestEventsAPIDrivesIncidentsAndWebhooks(t *testing.T) {
	sim, srv := newSim(t, fastWebhooks())
	t.Cleanup(sim.StopWebhooks)
	rec, url := newHookReceiver(t, nil)
	serviceID, key := routingKey(t, srv, "Checkout")
	sub, err := sim.AddWebhookSubscription("acme", pdsim.WebhookSubscription{URL: url})
	require.NoError(t, err)
	require.Len(t, sub.Secrets, 1)

	status, out := enqueue(t, srv, key, "trigger", "disk-1")
	require.Equal(t, http.StatusAccepted, status)
	assert.Equal(t, "success", out["status"])
	assert.Equal(t, "disk-1", out["dedup_key"])
	status, _ = enqueue(t, srv, key, "trigger", "disk-1") // same dedup key: no new incident
	require.Equal(t, http.StatusAccepted, status)
	enqueue(t, srv, key, "acknowledge", "disk-1")
	enqueue(t, srv, key, "acknowledge", "disk-1") // no change, no webhook
	enqueue(t, srv, key, "resolve", "disk-1")
	enqueue(t, srv, key, "resolve", "unknown-key") // dropped silently
	status, out = enqueue(t, srv, key, "trigger", "")
	require.Equal(t, http.StatusAccepted, status)
	assert.Len(t, out["dedup_key"], 32, "a generated dedup key")
	waitWebhooks(t, sim)

	incs := sim.Incidents("acme")
	require.Len(t, incs, 2)
	assert.Equal(t, pdsim.IncidentResolved, incs[0].Status)
	assert.Equal(t, pdsim.IncidentTriggered, incs[1].Status)
	assert.Equal(t, serviceID, incs[0].ServiceID)

	assert.Len(t, rec.accepted(), 4, "one delivery per change, none for repeats or unknown keys")
	assert.Equal(t, []string{"incident.triggered", "incident.acknowledged", "incident.resolved"}, rec.acceptedFor(incs[0].ID))
	assert.Equal(t, []string{"incident.triggered"}, rec.acceptedFor(incs[1].ID))
	for _, d := range rec.deliveries() {
		assert.Equal(t, "PagerDuty-Webhook/V3.0", d.Header.Get("User-Agent"))
		assert.Equal(t, sub.ID, d.Header.Get("X-Webhook-Subscription"))
		assert.NotEmpty(t, d.Header.Get("X-Webhook-Id"))
		assert.Equal(t, sign(sub.Secrets[0], d.Body), d.Header.Get("X-PagerDuty-Signature"))
		var env struct {
			Event struct {
				ResourceType string `json:"resource_type"`
				OccurredAt   string `json:"occurred_at"`
				Data         struct {
					ID, Type, Status string
					Number           int
					Service          struct{ ID string }
				} `json:"data"`
			} `json:"event"`
		}
		require.NoError(t, json.Unmarshal(d.Body, &env))
		assert.Equal(t, "incident", env.Event.ResourceType)
		assert.Equal(t, "incident", env.Event.Data.Type)
		assert.Equal(t, serviceID, env.Event.Data.Service.ID)
		assert.NotZero(t, env.Event.Data.Number)
		_, err := time.Parse(time.RFC3339Nano, env.Event.OccurredAt)
		require.NoError(t, err)
	}
}

func TestEventsAPIRejectsInvalidEvents(t *testing.T) {
	sim, srv := newSim(t, fastWebhooks())
	t.Cleanup(sim.StopWebhooks)
	_, key := routingKey(t, srv, "Checkout")
	tests := map[string]string{
		"not json":        `{`,
		"bad routing key": `{"routing_key":"short","event_action":"trigger","payload":{"summary":"s","source":"x","severity":"critical"}}`,
		"unknown key":     `{"routing_key":"` + strings.Repeat("0", 32) + `","event_action":"trigger","payload":{"summary":"s","source":"x","severity":"critical"}}`,
		"bad action":      `{"routing_key":"` + key + `","event_action":"explode"}`,
		"no payload":      `{"routing_key":"` + key + `","event_action":"trigger"}`,
		"no source":       `{"routing_key":"` + key + `","event_action":"trigger","payload":{"summary":"s","severity":"critical"}}`,
		"bad severity":    `{"routing_key":"` + key + `","event_action":"trigger","payload":{"summary":"s","source":"x","severity":"bad"}}`,
		"ack without key": `{"routing_key":"` + key + `","event_action":"acknowledge"}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			resp, b := call(t, srv, http.MethodPost, "/v2/enqueue", "", body)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			var out struct {
				Status string   `json:"status"`
				Errors []string `json:"errors"`
			}
			require.NoError(t, json.Unmarshal(b, &out))
			assert.Equal(t, "invalid event", out.Status)
			assert.NotEmpty(t, out.Errors)
		})
	}
	assert.Empty(t, sim.Incidents("acme"))
}

func TestListIncidentsFiltersAndWindow(t *testing.T) {
	clk := newClock()
	sim, srv := newSimAt(t, fastWebhooks(), clk)
	t.Cleanup(sim.StopWebhooks)
	svcA, keyA := routingKey(t, srv, "A")
	_, keyB := routingKey(t, srv, "B")
	enqueue(t, srv, keyA, "trigger", "old") // two months ago, still open
	clk.Advance(60 * 24 * time.Hour)
	enqueue(t, srv, keyA, "trigger", "a1")
	enqueue(t, srv, keyA, "acknowledge", "a1")
	enqueue(t, srv, keyB, "trigger", "b1")
	enqueue(t, srv, keyB, "resolve", "b1")

	list := func(query string) []string {
		resp, b := call(t, srv, http.MethodGet, "/incidents?"+query, acme, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		var out struct {
			Incidents []struct {
				IncidentKey string `json:"incident_key"`
			} `json:"incidents"`
		}
		require.NoError(t, json.Unmarshal(b, &out))
		var keys []string
		for _, i := range out.Incidents {
			keys = append(keys, i.IncidentKey)
		}
		return keys
	}
	assert.Equal(t, []string{"a1", "b1"}, list(""), "default window is one month")
	assert.Equal(t, []string{"old", "a1", "b1"}, list("date_range=all"))
	assert.Equal(t, []string{"old", "a1"}, list("date_range=all&statuses[]=triggered&statuses[]=acknowledged&service_ids[]="+svcA))
	assert.Equal(t, []string{"b1", "a1", "old"}, list("date_range=all&sort_by=created_at:desc"))
	assert.Equal(t, []string{"a1"}, list("date_range=all&limit=1&offset=1"))

	resp, b := call(t, srv, http.MethodGet, "/incidents?statuses[]=bogus", acme, "")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, string(b))
	resp, _ = call(t, srv, http.MethodGet, "/incidents", "", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestRESTIncidentUpdateSendsWebhook(t *testing.T) {
	sim, srv := newSim(t, fastWebhooks())
	t.Cleanup(sim.StopWebhooks)
	rec, url := newHookReceiver(t, nil)
	_, key := routingKey(t, srv, "Checkout")
	_, err := sim.AddWebhookSubscription("acme", pdsim.WebhookSubscription{URL: url, Events: []string{"incident.resolved"}})
	require.NoError(t, err)
	enqueue(t, srv, key, "trigger", "k")
	id := sim.Incidents("acme")[0].ID

	resp, b := call(t, srv, http.MethodGet, "/incidents/"+id, acme, "")
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	resp, b = call(t, srv, http.MethodPut, "/incidents/"+id, acme, `{"incident":{"type":"incident_reference","status":"resolved"}}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	assert.Contains(t, string(b), `"status":"resolved"`)
	resp, _ = call(t, srv, http.MethodPut, "/incidents/"+id, acme, `{"incident":{"status":"exploded"}}`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = call(t, srv, http.MethodGet, "/incidents/"+id, globex, "")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "another account's incident")
	waitWebhooks(t, sim)
	assert.Equal(t, []string{"incident.resolved"}, rec.accepted(), "the subscription's event filter applies")
}

func TestWebhookRetriesDropsAndDisablement(t *testing.T) {
	sim, srv := newSim(t, fastWebhooks())
	t.Cleanup(sim.StopWebhooks)
	_, key := routingKey(t, srv, "Checkout")

	// Receivers live as long as the simulator, which keeps delivering to them.
	pt := t
	t.Run("retried on 5xx and 429, one X-Webhook-Id", func(t *testing.T) {
		rec, url := newHookReceiver(pt, func(_ string, attempt int, _ []byte) int {
			return []int{500, 429, 503, 202}[min(attempt-1, 3)]
		})
		sub, err := sim.AddWebhookSubscription("acme", pdsim.WebhookSubscription{URL: url, Events: []string{"incident.triggered"}})
		require.NoError(t, err)
		enqueue(t, srv, key, "trigger", "retry-1")
		waitWebhooks(t, sim)
		got := rec.deliveries()
		require.Len(t, got, 4)
		for _, d := range got {
			assert.Equal(t, got[0].Header.Get("X-Webhook-Id"), d.Header.Get("X-Webhook-Id"))
		}
		st := sim.WebhookSubscriptions("acme")
		for _, s := range st {
			if s.ID == sub.ID {
				assert.Equal(t, 1, s.Delivered)
				assert.Equal(t, 3, s.Retried)
			}
		}
		require.NoError(t, sim.FinishWebhookRotation(sub.ID))
		_, err = sim.RotateWebhookSecret(sub.ID)
		require.NoError(t, err)
	})

	t.Run("dropped on 4xx, disabled after three drops, re-enabled over REST", func(t *testing.T) {
		rec, url := newHookReceiver(pt, func(string, int, []byte) int { return http.StatusUnauthorized })
		body := `{"webhook_subscription":{"type":"webhook_subscription","delivery_method":{"type":"http_delivery_method","url":"` + url +
			`"},"events":["incident.acknowledged"],"filter":{"type":"account_reference"}}}`
		resp, b := call(t, srv, http.MethodPost, "/webhook_subscriptions", acme, body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		var created struct {
			Sub struct {
				ID             string `json:"id"`
				DeliveryMethod struct {
					Secret *string `json:"secret"`
				} `json:"delivery_method"`
			} `json:"webhook_subscription"`
		}
		require.NoError(t, json.Unmarshal(b, &created))
		require.NotNil(t, created.Sub.DeliveryMethod.Secret, "the secret is shown on create")

		for i := range 4 {
			k := "drop-" + string(rune('a'+i))
			enqueue(t, srv, key, "trigger", k)
			enqueue(t, srv, key, "acknowledge", k)
			waitWebhooks(t, sim)
		}
		assert.Len(t, rec.deliveries(), 3, "one attempt each, no retry; the fourth is dropped while disabled")
		resp, b = call(t, srv, http.MethodGet, "/webhook_subscriptions/"+created.Sub.ID, acme, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, string(b), `"temporarily_disabled":true`)
		assert.Contains(t, string(b), `"secret":null`, "the secret is never shown again")

		resp, b = call(t, srv, http.MethodPost, "/webhook_subscriptions/"+created.Sub.ID+"/enable", acme, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		assert.Contains(t, string(b), `"temporarily_disabled":false`)
		resp, _ = call(t, srv, http.MethodPost, "/webhook_subscriptions/"+created.Sub.ID+"/ping", acme, "")
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		waitWebhooks(t, sim)
		got := rec.deliveries()
		assert.Equal(t, "pagey.ping", got[len(got)-1].Type)
		resp, _ = call(t, srv, http.MethodDelete, "/webhook_subscriptions/"+created.Sub.ID, acme, "")
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	})
}

func TestWebhookRotationAndOrdering(t *testing.T) {
	sim, srv := newSim(t, fastWebhooks())
	t.Cleanup(sim.StopWebhooks)
	_, key := routingKey(t, srv, "Checkout")
	var mu sync.Mutex
	held := true
	rec, url := newHookReceiver(t, func(_ string, _ int, body []byte) int {
		mu.Lock()
		defer mu.Unlock()
		if held && strings.Contains(string(body), `"incident.triggered"`) && strings.Contains(string(body), "first") {
			return http.StatusBadGateway
		}
		return http.StatusAccepted
	})
	sub, err := sim.AddWebhookSubscription("acme", pdsim.WebhookSubscription{URL: url})
	require.NoError(t, err)
	newSecret, err := sim.RotateWebhookSecret(sub.ID)
	require.NoError(t, err)

	enqueue(t, srv, key, "trigger", "first")
	enqueue(t, srv, key, "acknowledge", "first")
	enqueue(t, srv, key, "resolve", "first")
	enqueue(t, srv, key, "trigger", "second")
	require.Eventually(t, func() bool { return len(rec.accepted()) >= 1 }, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	held = false
	mu.Unlock()
	waitWebhooks(t, sim)

	var first []string
	for _, d := range rec.deliveries() {
		if d.Status < 300 && strings.Contains(string(d.Body), `"incident_key":"first"`) {
			first = append(first, d.Type)
		}
		sigs := strings.Split(d.Header.Get("X-PagerDuty-Signature"), ",")
		require.Len(t, sigs, 2, "two signatures during a rotation")
		assert.Equal(t, sign(sub.Secrets[0], d.Body), sigs[0])
		assert.Equal(t, sign(newSecret, d.Body), sigs[1])
	}
	assert.Equal(t, []string{"incident.triggered", "incident.acknowledged", "incident.resolved"}, first,
		"later webhooks of an incident wait behind one being retried")
	assert.Equal(t, "incident.triggered", rec.accepted()[0], "another incident is not held back")
}

func TestResendWebhooksRepeatsIdsAndBodies(t *testing.T) {
	sim, srv := newSim(t, fastWebhooks())
	t.Cleanup(sim.StopWebhooks)
	_, key := routingKey(t, srv, "Checkout")
	rec, url := newHookReceiver(t, nil)
	sub, err := sim.AddWebhookSubscription("acme", pdsim.WebhookSubscription{URL: url})
	require.NoError(t, err)
	enqueue(t, srv, key, "trigger", "dup")
	waitWebhooks(t, sim)
	assert.Equal(t, 1, sim.ResendWebhooks(sub.ID))
	waitWebhooks(t, sim)
	got := rec.deliveries()
	require.Len(t, got, 2)
	assert.Equal(t, got[0].Header.Get("X-Webhook-Id"), got[1].Header.Get("X-Webhook-Id"))
	assert.Equal(t, got[0].Body, got[1].Body)
}
