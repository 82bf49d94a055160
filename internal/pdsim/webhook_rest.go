package pdsim

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// webhookRoutes registers /webhook_subscriptions as PagerDuty has it: create (200,
// the only answer that shows the secret), list, get, update, delete, enable, ping.
func (s *Sim) webhookRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /webhook_subscriptions", s.handleCreateSubscription)
	m.HandleFunc("GET /webhook_subscriptions", s.handleListSubscriptions)
	m.HandleFunc("GET /webhook_subscriptions/{id}", s.withSubscription(s.handleGetSubscription))
	m.HandleFunc("PUT /webhook_subscriptions/{id}", s.withSubscription(s.handleUpdateSubscription))
	m.HandleFunc("DELETE /webhook_subscriptions/{id}", s.withSubscription(s.handleDeleteSubscription))
	m.HandleFunc("POST /webhook_subscriptions/{id}/enable", s.withSubscription(s.handleEnableSubscription))
	m.HandleFunc("POST /webhook_subscriptions/{id}/ping", s.withSubscription(s.handlePingSubscription))
}

// subscriptionBody is the webhook_subscription object of requests and answers.
type subscriptionBody struct {
	ID             string         `json:"id,omitempty"`
	Type           string         `json:"type"`
	Active         *bool          `json:"active,omitempty"`
	Description    string         `json:"description"`
	Events         []string       `json:"events"`
	Filter         filterBody     `json:"filter"`
	DeliveryMethod deliveryMethod `json:"delivery_method"`
}

type filterBody struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

type deliveryMethod struct {
	ID                  string         `json:"id,omitempty"`
	Type                string         `json:"type"`
	URL                 string         `json:"url"`
	Secret              *string        `json:"secret"`
	TemporarilyDisabled bool           `json:"temporarily_disabled"`
	CustomHeaders       []customHeader `json:"custom_headers"`
}

type customHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// render shows sub; the secret only when withSecret (the create answer), custom
// header values redacted otherwise.
func (sub *subscription) render(withSecret bool) subscriptionBody {
	active := sub.active
	out := subscriptionBody{
		ID: sub.id, Type: "webhook_subscription", Active: &active, Description: sub.description,
		Events: slices.Clone(sub.events), Filter: filterBody{Type: sub.filterType, ID: sub.filterID},
		DeliveryMethod: deliveryMethod{ID: "D" + strings.TrimPrefix(sub.id, "P"), Type: "http_delivery_method", URL: sub.url,
			TemporarilyDisabled: !sub.disabledUntil.IsZero(), CustomHeaders: []customHeader{}},
	}
	if out.Events == nil {
		out.Events = []string{}
	}
	if withSecret {
		sec := sub.secrets[len(sub.secrets)-1]
		out.DeliveryMethod.Secret = &sec
	}
	for name, v := range sub.headers {
		if !withSecret {
			v = "-- redacted --"
		}
		out.DeliveryMethod.CustomHeaders = append(out.DeliveryMethod.CustomHeaders, customHeader{Name: name, Value: v})
	}
	return out
}

func decodeSubscription(r *http.Request) (*subscriptionBody, *apiError) {
	in, derr := decodeWrapped(r, "webhook_subscription")
	if derr != nil {
		return nil, derr
	}
	raw, _ := json.Marshal(in)
	var body subscriptionBody
	if json.Unmarshal(raw, &body) != nil {
		return nil, invalidInput("Webhook subscription is invalid.")
	}
	return &body, nil
}

func (s *Sim) handleCreateSubscription(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	body, derr := decodeSubscription(r)
	if derr != nil {
		writeAPIError(w, derr)
		return
	}
	if body.DeliveryMethod.Type != "http_delivery_method" {
		writeAPIError(w, invalidInput("Delivery method type must be http_delivery_method"))
		return
	}
	headers := map[string]string{}
	for _, h := range body.DeliveryMethod.CustomHeaders {
		headers[h.Name] = h.Value
	}
	sub, err := s.newSubscription(a.id, WebhookSubscription{
		URL: body.DeliveryMethod.URL, Events: body.Events, FilterType: body.Filter.Type, FilterID: body.Filter.ID,
		Description: body.Description, CustomHeaders: headers,
	})
	if err != nil {
		writeAPIError(w, invalidInput(err.Error()))
		return
	}
	h := s.webhooks
	h.mu.Lock()
	h.subs[sub.id] = sub
	out := sub.render(true)
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]subscriptionBody{"webhook_subscription": out})
}

func (s *Sim) handleListSubscriptions(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	p, perr := parsePage(r.URL.Query())
	if perr != nil {
		writeAPIError(w, perr)
		return
	}
	h := s.webhooks
	h.mu.Lock()
	var subs []*subscription
	for _, sub := range h.subs {
		if sub.account == a.id {
			subs = append(subs, sub)
		}
	}
	slices.SortFunc(subs, func(x, y *subscription) int { return strings.Compare(x.id, y.id) })
	out, info := pageOf(p, subs, func(sub *subscription) subscriptionBody { return sub.render(false) })
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, struct {
		Subscriptions []subscriptionBody `json:"webhook_subscriptions"`
		pageInfo
	}{out, info})
}

// withSubscription finds the account's subscription {id} and runs next with h.mu held.
func (s *Sim) withSubscription(next func(http.ResponseWriter, *http.Request, *subscription)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a := accountFrom(r.Context())
		var body *subscriptionBody
		if r.Method == http.MethodPut {
			var derr *apiError
			if body, derr = decodeSubscription(r); derr != nil {
				writeAPIError(w, derr)
				return
			}
		}
		h := s.webhooks
		h.mu.Lock()
		sub := h.subs[r.PathValue("id")]
		if sub == nil || sub.account != a.id {
			h.mu.Unlock()
			writeNotFound(w)
			return
		}
		if body != nil {
			applySubscriptionUpdate(sub, body)
		}
		h.mu.Unlock()
		next(w, r, sub)
	}
}

func applySubscriptionUpdate(sub *subscription, body *subscriptionBody) {
	if body.Description != "" {
		sub.description = body.Description
	}
	if body.Events != nil {
		sub.events = slices.Clone(body.Events)
	}
	if body.Filter.Type != "" {
		sub.filterType, sub.filterID = body.Filter.Type, body.Filter.ID
	}
	if body.Active != nil {
		sub.active = *body.Active
	}
}

func (s *Sim) handleGetSubscription(w http.ResponseWriter, _ *http.Request, sub *subscription) {
	s.webhooks.mu.Lock()
	out := sub.render(false)
	s.webhooks.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]subscriptionBody{"webhook_subscription": out})
}

func (s *Sim) handleUpdateSubscription(w http.ResponseWriter, r *http.Request, sub *subscription) {
	s.handleGetSubscription(w, r, sub)
}

func (s *Sim) handleDeleteSubscription(w http.ResponseWriter, _ *http.Request, sub *subscription) {
	h := s.webhooks
	h.mu.Lock()
	delete(h.subs, sub.id)
	sub.active = false
	for r := range sub.queues {
		sub.queues[r] = nil
	}
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// handleEnableSubscription re-enables a temporarily disabled subscription.
func (s *Sim) handleEnableSubscription(w http.ResponseWriter, r *http.Request, sub *subscription) {
	h := s.webhooks
	h.mu.Lock()
	sub.disabledUntil, sub.consecutiveDrops, sub.active = time.Time{}, 0, true
	h.mu.Unlock()
	s.handleGetSubscription(w, r, sub)
}

// handlePingSubscription delivers a pagey.ping to the subscription.
func (s *Sim) handlePingSubscription(w http.ResponseWriter, _ *http.Request, sub *subscription) {
	s.emitTo(sub, "pagey.ping", "pagey", map[string]string{"message": "Hello from your friend Pagey!", "type": "ping"})
	w.WriteHeader(http.StatusAccepted)
}
