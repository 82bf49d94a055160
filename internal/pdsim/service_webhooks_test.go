package pdsim_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

// TestServiceChangesSendWebhooks: creating, updating and deleting a service through
// REST sends service.created, service.updated and service.deleted, in that order,
// signed, with PagerDuty's short service data and increasing occurred_at; a
// subscription filtered to another service or to other event types gets none.
func TestServiceChangesSendWebhooks(t *testing.T) {
	sim, srv := newSim(t, fastWebhooks())
	t.Cleanup(sim.StopWebhooks)
	rec, url := newHookReceiver(t, nil)
	sub, err := sim.AddWebhookSubscription("acme", pdsim.WebhookSubscription{URL: url})
	require.NoError(t, err)
	other, otherURL := newHookReceiver(t, nil)
	_, err = sim.AddWebhookSubscription("acme", pdsim.WebhookSubscription{URL: otherURL, Events: []string{"incident.triggered"}})
	require.NoError(t, err)

	svc := createService(t, pdClient(srv, acme), "Payments")
	resp, b := call(t, srv, http.MethodPut, "/services/"+svc.ID, acme, `{"service":{"name":"Payments API"}}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	resp, b = call(t, srv, http.MethodDelete, "/services/"+svc.ID, acme, "")
	require.Equal(t, http.StatusNoContent, resp.StatusCode, string(b))
	resp, _ = call(t, srv, http.MethodDelete, "/services/"+svc.ID, acme, "")
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "a failed change sends nothing")
	waitWebhooks(t, sim)

	assert.Equal(t, []string{"service.created", "service.updated", "service.deleted"}, rec.accepted())
	assert.Empty(t, other.deliveries(), "a subscription to other event types gets no service events")
	var last time.Time
	for i, d := range rec.deliveries() {
		assert.Equal(t, sign(sub.Secrets[0], d.Body), d.Header.Get("X-PagerDuty-Signature"))
		assert.Equal(t, "PagerDuty-Webhook/V3.0", d.Header.Get("User-Agent"))
		var env struct {
			Event struct {
				EventType    string    `json:"event_type"`
				ResourceType string    `json:"resource_type"`
				OccurredAt   time.Time `json:"occurred_at"`
				Data         struct {
					ID, Type, Self, Summary string
					HTMLURL                 string   `json:"html_url"`
					Teams                   []string `json:"teams"`
				} `json:"data"`
			} `json:"event"`
		}
		require.NoError(t, json.Unmarshal(d.Body, &env), string(d.Body))
		assert.Equal(t, "service", env.Event.ResourceType)
		assert.Equal(t, svc.ID, env.Event.Data.ID)
		assert.Equal(t, "service", env.Event.Data.Type)
		assert.NotEmpty(t, env.Event.Data.HTMLURL)
		assert.NotNil(t, env.Event.Data.Teams)
		if i == 0 {
			assert.Equal(t, "Payments", env.Event.Data.Summary)
		} else {
			assert.Equal(t, "Payments API", env.Event.Data.Summary)
			assert.True(t, env.Event.OccurredAt.After(last), "occurred_at increases")
		}
		last = env.Event.OccurredAt
	}

	// A subscription filtered to one service gets only that service's events.
	mine, mineURL := newHookReceiver(t, nil)
	kept := createService(t, pdClient(srv, acme), "Kept")
	_, err = sim.AddWebhookSubscription("acme", pdsim.WebhookSubscription{URL: mineURL, FilterType: "service_reference", FilterID: kept.ID})
	require.NoError(t, err)
	createService(t, pdClient(srv, acme), "Unrelated")
	resp, b = call(t, srv, http.MethodPut, "/services/"+kept.ID, acme, `{"service":{"description":"kept"}}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	waitWebhooks(t, sim)
	assert.Equal(t, []string{"service.updated"}, mine.accepted())
}
