package pdsim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Webhook delivery defaults, after PagerDuty's documented behaviour
// (https://developer.pagerduty.com/docs/webhooks/webhook-behavior/). The retry
// intervals are not documented; the simulator doubles from RetryInterval up to
// MaxRetryInterval.
const (
	DefaultWebhookTimeout          = 5 * time.Second
	DefaultWebhookRetryInterval    = 5 * time.Second
	DefaultWebhookMaxRetryInterval = 10 * time.Minute
	DefaultWebhookRetryFor         = 48 * time.Hour
	DefaultWebhookDropsToDisable   = 3
	DefaultWebhookDisableFor       = 24 * time.Hour
	DefaultWebhookConcurrency      = 16
	// WebhookUserAgent is the User-Agent of every delivery.
	WebhookUserAgent = "PagerDuty-Webhook/V3.0"
)

// WebhookOptions tunes webhook delivery; zero fields take the Default* values. Tests
// shorten the retry interval.
type WebhookOptions struct {
	Timeout, RetryInterval, MaxRetryInterval, RetryFor, DisableFor time.Duration
	DropsToDisable, Concurrency                                    int
}

func (o WebhookOptions) withDefaults() WebhookOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, DefaultWebhookTimeout)
	def(&o.RetryInterval, DefaultWebhookRetryInterval)
	def(&o.MaxRetryInterval, max(DefaultWebhookMaxRetryInterval, o.RetryInterval))
	def(&o.RetryFor, DefaultWebhookRetryFor)
	def(&o.DisableFor, DefaultWebhookDisableFor)
	if o.DropsToDisable <= 0 {
		o.DropsToDisable = DefaultWebhookDropsToDisable
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultWebhookConcurrency
	}
	return o
}

// WebhookSubscription is what a subscription is created with (Go API).
type WebhookSubscription struct {
	// URL receives the deliveries.
	URL string `json:"url"`
	// Events are the event types delivered (empty: every type).
	Events []string `json:"events,omitempty"`
	// FilterType is account_reference (default), service_reference or team_reference;
	// FilterID names the service or team.
	FilterType string `json:"filter_type,omitempty"`
	FilterID   string `json:"filter_id,omitempty"`
	// Secret signs deliveries; empty generates one.
	Secret        string            `json:"secret,omitempty"`
	Description   string            `json:"description,omitempty"`
	CustomHeaders map[string]string `json:"custom_headers,omitempty"`
}

// WebhookSubscriptionState is a copy of a subscription and its delivery counters.
type WebhookSubscriptionState struct {
	ID                  string   `json:"id"`
	Account             string   `json:"account"`
	URL                 string   `json:"url"`
	Events              []string `json:"events"`
	FilterType          string   `json:"filter_type"`
	FilterID            string   `json:"filter_id,omitempty"`
	Active              bool     `json:"active"`
	TemporarilyDisabled bool     `json:"temporarily_disabled"`
	// Secrets are the signing secrets, newest last; two during a rotation.
	Secrets []string `json:"-"`
	// Queued counts deliveries waiting or being retried.
	Queued int `json:"queued"`
	// Delivered, Attempts, Retried and Dropped count deliveries that got a 2xx,
	// requests sent, attempts that will be retried, and deliveries given up.
	Delivered, Attempts, Retried, Dropped int
}

// subscription is one webhook subscription and its delivery queues.
type subscription struct {
	id, account, url, description string
	events                        []string
	filterType, filterID          string
	secrets                       []string
	headers                       map[string]string
	active                        bool
	disabledUntil                 time.Time
	consecutiveDrops              int
	// queues holds pending deliveries per resource (incident or service) id; a queue
	// is drained in order by one goroutine, so a delivery being retried holds back
	// later ones for the same resource, as PagerDuty does.
	queues   map[string][]*delivery
	draining map[string]bool
	// history keeps every delivery that got a 2xx, for ResendWebhooks.
	history                               []*delivery
	delivered, attempts, retried, dropped int
}

// delivery is one webhook to send: the same id and body on every attempt.
type delivery struct {
	id, resourceID string
	body           []byte
	first          time.Time
	// duplicate marks a delivery queued by ResendWebhooks; it is not resent again.
	duplicate bool
}

// webhookHub owns subscriptions and delivers to them.
type webhookHub struct {
	opts   WebhookOptions
	client *http.Client
	sem    chan struct{}
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	subs map[string]*subscription
	idle *sync.Cond
	busy int // queues being drained
	// serviceEventAt holds the occurred_at of each service's last service.* event
	// (account + "\x00" + service id).
	serviceEventAt map[string]time.Time
}

func newWebhookHub(opts WebhookOptions) *webhookHub {
	opts = opts.withDefaults()
	ctx, stop := context.WithCancel(context.Background())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = opts.Concurrency
	h := &webhookHub{
		opts: opts, client: &http.Client{Timeout: opts.Timeout, Transport: tr},
		sem: make(chan struct{}, opts.Concurrency), ctx: ctx, stop: stop, subs: map[string]*subscription{},
		serviceEventAt: map[string]time.Time{},
	}
	h.idle = sync.NewCond(&h.mu)
	return h
}

// AddWebhookSubscription creates a subscription for an account and returns it with its
// secret.
func (s *Sim) AddWebhookSubscription(account string, in WebhookSubscription) (WebhookSubscriptionState, error) {
	if s.account(account) == nil {
		return WebhookSubscriptionState{}, fmt.Errorf("unknown account %q", account)
	}
	sub, err := s.newSubscription(account, in)
	if err != nil {
		return WebhookSubscriptionState{}, err
	}
	h := s.webhooks
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[sub.id] = sub
	return sub.state(), nil
}

func (s *Sim) newSubscription(account string, in WebhookSubscription) (*subscription, error) {
	if !strings.HasPrefix(in.URL, "http://") && !strings.HasPrefix(in.URL, "https://") {
		return nil, errors.New("Delivery method url must be an http(s) URL")
	}
	ft := in.FilterType
	if ft == "" {
		ft = "account_reference"
	}
	if !slices.Contains([]string{"account_reference", "service_reference", "team_reference"}, ft) ||
		(ft != "account_reference" && in.FilterID == "") {
		return nil, errors.New("Filter is invalid")
	}
	secret := in.Secret
	if secret == "" {
		secret = s.ids.token("", 32)
	}
	return &subscription{
		id: s.ids.objectID(), account: account, url: in.URL, description: in.Description,
		events: slices.Clone(in.Events), filterType: ft, filterID: in.FilterID, secrets: []string{secret},
		headers: in.CustomHeaders, active: true, queues: map[string][]*delivery{}, draining: map[string]bool{},
	}, nil
}

// RotateWebhookSecret adds a new signing secret to a subscription and returns it;
// deliveries then carry two signatures until FinishWebhookRotation.
func (s *Sim) RotateWebhookSecret(id string) (string, error) {
	secret := s.ids.token("", 32)
	h := s.webhooks
	h.mu.Lock()
	defer h.mu.Unlock()
	sub := h.subs[id]
	if sub == nil {
		return "", fmt.Errorf("unknown webhook subscription %q", id)
	}
	sub.secrets = append(sub.secrets, secret)
	return secret, nil
}

// FinishWebhookRotation keeps only the newest signing secret of a subscription.
func (s *Sim) FinishWebhookRotation(id string) error {
	h := s.webhooks
	h.mu.Lock()
	defer h.mu.Unlock()
	sub := h.subs[id]
	if sub == nil {
		return fmt.Errorf("unknown webhook subscription %q", id)
	}
	sub.secrets = sub.secrets[len(sub.secrets)-1:]
	return nil
}

// WebhookSubscriptions returns copies of an account's subscriptions ("" for all).
func (s *Sim) WebhookSubscriptions(account string) []WebhookSubscriptionState {
	h := s.webhooks
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []WebhookSubscriptionState{}
	for _, sub := range h.subs {
		if account == "" || sub.account == account {
			out = append(out, sub.state())
		}
	}
	slices.SortFunc(out, func(x, y WebhookSubscriptionState) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// ResendWebhooks queues every delivery the subscription has already delivered (not
// counting earlier resends) once more, with the same X-Webhook-Id and body: the
// duplicates PagerDuty's at-least-once delivery may produce. It returns how many were
// queued.
func (s *Sim) ResendWebhooks(id string) int {
	h := s.webhooks
	h.mu.Lock()
	defer h.mu.Unlock()
	sub := h.subs[id]
	if sub == nil {
		return 0
	}
	n := 0
	now := time.Now()
	for _, d := range sub.history {
		dup := *d
		dup.first, dup.duplicate = now, true
		h.enqueueLocked(sub, &dup)
		n++
	}
	return n
}

// WaitWebhooks blocks until no delivery is queued or being retried, or ctx ends.
func (s *Sim) WaitWebhooks(ctx context.Context) error {
	h := s.webhooks
	stop := context.AfterFunc(ctx, func() {
		h.mu.Lock()
		h.idle.Broadcast()
		h.mu.Unlock()
	})
	defer stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.busy > 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("webhooks still queued: %w", ctx.Err())
		}
		h.idle.Wait()
	}
	return nil
}

// StopWebhooks stops every delivery and waits for the delivery goroutines to end.
// Queued deliveries are abandoned. Tests call it in Cleanup.
func (s *Sim) StopWebhooks() {
	s.webhooks.stop()
	s.webhooks.wg.Wait()
}

func (sub *subscription) state() WebhookSubscriptionState {
	st := WebhookSubscriptionState{
		ID: sub.id, Account: sub.account, URL: sub.url, Events: slices.Clone(sub.events), FilterType: sub.filterType,
		FilterID: sub.filterID, Active: sub.active, TemporarilyDisabled: !sub.disabledUntil.IsZero(),
		Secrets: slices.Clone(sub.secrets), Delivered: sub.delivered, Attempts: sub.attempts, Retried: sub.retried,
		Dropped: sub.dropped,
	}
	for _, q := range sub.queues {
		st.Queued += len(q)
	}
	return st
}

// matches reports whether an event of eventType about serviceID goes to sub.
func (sub *subscription) matches(eventType, serviceID string) bool {
	if len(sub.events) > 0 && !slices.Contains(sub.events, eventType) {
		return false
	}
	switch sub.filterType {
	case "service_reference":
		return serviceID == sub.filterID
	case "team_reference":
		return false // the simulator has no teams
	}
	return true
}

// webhookEnvelope is the body of a v3 delivery.
type webhookEnvelope struct {
	Event webhookEvent `json:"event"`
}

type webhookEvent struct {
	ID           string `json:"id"`
	EventType    string `json:"event_type"`
	ResourceType string `json:"resource_type"`
	OccurredAt   string `json:"occurred_at"`
	Agent        any    `json:"agent"`
	Client       any    `json:"client"`
	Data         any    `json:"data"`
}

// newDeliveryID derives the X-Webhook-Id of a delivery from the subscription and the
// event body: unique per webhook and subscription, stable across retries.
func (sub *subscription) newDeliveryID(body []byte) string {
	m := sha256.Sum256(append([]byte(sub.id+"\x00"), body...))
	return hex.EncodeToString(m[:16])
}

// webhookID returns a 26-character id in the style of PagerDuty's event ids.
func (g *idSource) webhookID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return "01" + g.randomLocked(idAlphabet, 24)
}

// emitIncident queues the webhook of an incident change to every matching
// subscription; callers hold the account's and the incident book's locks, which keeps
// deliveries in the order of the changes.
func (s *Sim) emitIncident(a *account, inc *incident, eventType string) {
	data := map[string]any{
		"id": inc.id, "type": "incident", "self": webhookAPIBase + "/incidents/" + inc.id, "html_url": inc.htmlURL,
		"number": inc.number, "status": inc.status, "incident_key": inc.incidentKey,
		"created_at": timestamp(inc.createdAt), "title": inc.title, "incident_type": map[string]string{"name": "incident_default"},
		"service": reference{ID: inc.serviceID, Type: "service_reference", Summary: inc.serviceName,
			Self: webhookAPIBase + "/services/" + inc.serviceID, HTMLURL: inc.serviceHTMLURL},
		"assignees": append([]reference{}, inc.assignees...), "teams": []reference{}, "priority": nil,
		"urgency": inc.urgency, "conference_bridge": nil, "resolve_reason": nil,
	}
	if inc.epID != "" {
		data["escalation_policy"] = reference{ID: inc.epID, Type: "escalation_policy_reference", Summary: inc.epName,
			Self: webhookAPIBase + "/escalation_policies/" + inc.epID, HTMLURL: a.webURL("/escalation_policies/" + inc.epID)}
	}
	// occurred_at has millisecond precision; changes of one incident within the same
	// millisecond get increasing times so that their order stays visible.
	at := s.now().UTC().Truncate(time.Millisecond)
	if !at.After(inc.lastEventAt) {
		at = inc.lastEventAt.Add(time.Millisecond)
	}
	inc.lastEventAt = at
	s.emit(a.id, inc.serviceID, inc.id, eventType, "incident", at, data)
}

// emitService queues the service.created, service.updated or service.deleted webhook
// of a service change to every matching subscription. Callers hold the account's lock,
// which keeps deliveries in the order of the changes; the data is the short service
// object PagerDuty sends, not the full service.
func (s *Sim) emitService(a *account, svc *service, eventType string) {
	data := map[string]any{
		"id": svc.id, "type": "service", "self": webhookAPIBase + "/services/" + svc.id,
		"html_url": a.webURL("/service-directory/" + svc.id), "summary": svc.name,
		"alert_creation": svc.alertCreation, "teams": []reference{},
	}
	at := s.webhooks.nextServiceEventAt(a.id+"\x00"+svc.id, s.now())
	s.emit(a.id, svc.id, svc.id, eventType, "service", at, data)
}

// nextServiceEventAt returns the occurred_at of a service's next event: now at
// millisecond precision, or a millisecond after its previous event when that is not
// earlier, so that the order of a service's events stays visible.
func (h *webhookHub) nextServiceEventAt(key string, now time.Time) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	at := now.UTC().Truncate(time.Millisecond)
	if last, ok := h.serviceEventAt[key]; ok && !at.After(last) {
		at = last.Add(time.Millisecond)
	}
	h.serviceEventAt[key] = at
	return at
}

// emit builds one event and queues it for every matching subscription of account.
func (s *Sim) emit(account, serviceID, resourceID, eventType, resourceType string, at time.Time, data any) {
	h := s.webhooks
	h.mu.Lock()
	defer h.mu.Unlock()
	var body []byte
	for _, sub := range h.subs {
		if sub.account != account || !sub.active || !sub.matches(eventType, serviceID) {
			continue
		}
		if body == nil {
			if body = s.webhookBody(eventType, resourceType, at, data); body == nil {
				return
			}
		}
		h.offerLocked(sub, resourceID, body)
	}
}

// emitTo queues one event for one subscription (pagey.ping).
func (s *Sim) emitTo(sub *subscription, eventType, resourceType string, data any) {
	h := s.webhooks
	h.mu.Lock()
	defer h.mu.Unlock()
	if body := s.webhookBody(eventType, resourceType, s.now(), data); body != nil {
		h.offerLocked(sub, eventType, body)
	}
}

// webhookBody encodes a v3 envelope with a new event id that occurred at at.
func (s *Sim) webhookBody(eventType, resourceType string, at time.Time, data any) []byte {
	body, err := json.Marshal(webhookEnvelope{Event: webhookEvent{
		ID: s.ids.webhookID(), EventType: eventType, ResourceType: resourceType,
		OccurredAt: at.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Client: map[string]string{"name": "PagerDuty"}, Data: data,
	}})
	if err != nil {
		s.log.Error().Err(err).Msg("cannot encode webhook")
		return nil
	}
	return body
}

// offerLocked queues body for sub unless sub is temporarily disabled (then the event
// is dropped); callers hold h.mu.
func (h *webhookHub) offerLocked(sub *subscription, resourceID string, body []byte) {
	if !sub.disabledUntil.IsZero() {
		if time.Now().Before(sub.disabledUntil) {
			sub.dropped++
			return
		}
		sub.disabledUntil, sub.consecutiveDrops = time.Time{}, 0
	}
	h.enqueueLocked(sub, &delivery{id: sub.newDeliveryID(body), resourceID: resourceID, body: body, first: time.Now()})
}

// enqueueLocked appends d to its resource queue and starts draining the queue if no
// goroutine does; callers hold h.mu.
func (h *webhookHub) enqueueLocked(sub *subscription, d *delivery) {
	if h.ctx.Err() != nil {
		return
	}
	sub.queues[d.resourceID] = append(sub.queues[d.resourceID], d)
	if sub.draining[d.resourceID] {
		return
	}
	sub.draining[d.resourceID] = true
	h.busy++
	h.wg.Add(1)
	go h.drain(sub, d.resourceID)
}

// drain delivers one resource queue in order until it is empty.
func (h *webhookHub) drain(sub *subscription, resource string) {
	defer h.wg.Done()
	for {
		h.mu.Lock()
		q := sub.queues[resource]
		if len(q) == 0 || h.ctx.Err() != nil {
			delete(sub.queues, resource)
			delete(sub.draining, resource)
			h.busy--
			if h.busy == 0 {
				h.idle.Broadcast()
			}
			h.mu.Unlock()
			return
		}
		d := q[0]
		h.mu.Unlock()

		ok := h.deliver(sub, d)

		h.mu.Lock()
		if len(sub.queues[resource]) > 0 && sub.queues[resource][0] == d {
			sub.queues[resource] = sub.queues[resource][1:]
		}
		if ok {
			sub.consecutiveDrops = 0
			sub.delivered++
			if !d.duplicate {
				sub.history = append(sub.history, d)
			}
		} else {
			sub.dropped++
			sub.consecutiveDrops++
			if sub.consecutiveDrops >= h.opts.DropsToDisable {
				// Disabled for DisableFor; its queue is dropped.
				sub.disabledUntil = time.Now().Add(h.opts.DisableFor)
				for r, q := range sub.queues {
					sub.dropped += len(q)
					sub.queues[r] = nil
				}
			}
		}
		h.mu.Unlock()
	}
}

// deliver sends d until it gets a 2xx (true), a permanent failure or the retry period
// ends (false), or the hub stops (false).
func (h *webhookHub) deliver(sub *subscription, d *delivery) bool {
	wait := h.opts.RetryInterval
	for {
		select {
		case h.sem <- struct{}{}:
		case <-h.ctx.Done():
			return false
		}
		status, err := h.post(sub, d)
		<-h.sem
		h.mu.Lock()
		sub.attempts++
		h.mu.Unlock()
		switch {
		case err == nil && status >= 200 && status < 300:
			return true
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			return false // any other 4xx: dropped without retry
		case time.Since(d.first) > h.opts.RetryFor:
			return false
		}
		h.mu.Lock()
		sub.retried++
		h.mu.Unlock()
		select {
		case <-time.After(wait):
		case <-h.ctx.Done():
			return false
		}
		wait = min(2*wait, h.opts.MaxRetryInterval)
	}
}

// post sends one attempt, signed with every current secret of the subscription.
func (h *webhookHub) post(sub *subscription, d *delivery) (int, error) {
	h.mu.Lock()
	secrets, headers, url := slices.Clone(sub.secrets), sub.headers, sub.url
	h.mu.Unlock()
	sigs := make([]string, 0, len(secrets))
	for _, sec := range secrets {
		m := hmac.New(sha256.New, []byte(sec))
		m.Write(d.body)
		sigs = append(sigs, "v1="+hex.EncodeToString(m.Sum(nil)))
	}
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, url, bytes.NewReader(d.body))
	if err != nil {
		return 0, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", WebhookUserAgent)
	req.Header.Set("X-Webhook-Id", d.id)
	req.Header.Set("X-Webhook-Subscription", sub.id)
	req.Header.Set("X-PagerDuty-Signature", strings.Join(sigs, ","))
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
