package pdsim

import (
	"cmp"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Incident statuses.
const (
	IncidentTriggered    = "triggered"
	IncidentAcknowledged = "acknowledged"
	IncidentResolved     = "resolved"
)

// defaultIncidentWindow is GET /incidents' window without since/until or
// date_range=all: the last month.
const defaultIncidentWindow = 30 * 24 * time.Hour

// webhookAPIBase is the API host webhook payloads reference, as PagerDuty's do.
const webhookAPIBase = "https://api.pagerduty.com"

// incident is one PagerDuty incident.
type incident struct {
	id, account             string
	number                  int
	title, status, urgency  string
	incidentKey, routingKey string
	serviceID, serviceName  string
	serviceHTMLURL          string
	epID, epName            string
	htmlURL                 string
	assignees               []reference
	createdAt, updatedAt    time.Time
	lastStatusChangeAt      time.Time
	resolvedAt              *time.Time
	lastEventAt             time.Time // occurred_at of its last webhook
	seq                     int64
	details                 map[string]any // the triggering event's payload.custom_details
}

// incidentBook holds every incident of every account. Its lock is taken after an
// account's lock, never before; webhooks for a change are queued while it is held, so
// they leave in the order the changes happened.
type incidentBook struct {
	mu      sync.Mutex
	seq     int64
	byID    map[string]*incident
	open    map[string]*incident // routing key + "\x00" + dedup key → open incident
	numbers map[string]int       // account → last incident number
}

func newIncidentBook() *incidentBook {
	return &incidentBook{byID: map[string]*incident{}, open: map[string]*incident{}, numbers: map[string]int{}}
}

// IncidentState is a copy of an incident for assertions and for other simulator
// users (the frontend API reads incidents through it).
type IncidentState struct {
	ID          string     `json:"id"`
	Account     string     `json:"account"`
	Number      int        `json:"number"`
	Title       string     `json:"title"`
	Status      string     `json:"status"`
	Urgency     string     `json:"urgency"`
	IncidentKey string     `json:"incident_key"`
	ServiceID   string     `json:"service_id"`
	HTMLURL     string     `json:"html_url"`
	AssigneeIDs []string   `json:"assignee_ids"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	ResolvedAt  *time.Time `json:"resolved_at,omitempty"`
	// RoutingKey is the integration key of the event that opened it ("" for others).
	RoutingKey string `json:"routing_key,omitempty"`
	// Details are the custom_details of the event that opened it.
	Details map[string]any `json:"details,omitempty"`
}

// Incidents returns copies of an account's incidents in creation order; nil for an
// unknown account.
func (s *Sim) Incidents(account string) []IncidentState {
	if s.account(account) == nil {
		return nil
	}
	b := s.incidents
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []IncidentState{}
	for _, inc := range b.sorted(account) {
		st := IncidentState{
			ID: inc.id, Account: inc.account, Number: inc.number, Title: inc.title, Status: inc.status,
			Urgency: inc.urgency, IncidentKey: inc.incidentKey, ServiceID: inc.serviceID, HTMLURL: inc.htmlURL,
			AssigneeIDs: []string{}, CreatedAt: inc.createdAt, UpdatedAt: inc.updatedAt, ResolvedAt: inc.resolvedAt,
			RoutingKey: inc.routingKey, Details: maps.Clone(inc.details),
		}
		for _, a := range inc.assignees {
			st.AssigneeIDs = append(st.AssigneeIDs, a.ID)
		}
		out = append(out, st)
	}
	return out
}

// sorted returns the account's incidents in creation order; callers hold b.mu.
func (b *incidentBook) sorted(account string) []*incident {
	var out []*incident
	for _, inc := range b.byID {
		if inc.account == account {
			out = append(out, inc)
		}
	}
	slices.SortFunc(out, func(x, y *incident) int { return cmp.Compare(x.seq, y.seq) })
	return out
}

// find returns the account's incident id, or nil; callers hold b.mu.
func (b *incidentBook) find(a *account, id string) *incident {
	if inc := b.byID[id]; inc != nil && inc.account == a.id {
		return inc
	}
	return nil
}

// incidentRoutes registers incidents, the Events API v2 and webhook subscriptions.
func (s *Sim) incidentRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /incidents", s.handleListIncidents)
	m.HandleFunc("GET /incidents/{id}", s.handleGetIncident)
	m.HandleFunc("PUT /incidents/{id}", s.handleUpdateIncident)
	m.HandleFunc("POST /v2/enqueue", s.handleEnqueue)
	s.webhookRoutes(m)
}

// isEventsAPI reports whether path belongs to the Events API v2, which authenticates
// by routing key instead of a token and is not REST rate limited.
func isEventsAPI(path string) bool { return path == "/v2/enqueue" }

// oncallFor is the user an incident on ep is assigned to: the simulator has no
// schedules, so each escalation policy has one on-call user.
func (a *account) oncallFor(ep *escalationPolicy) reference {
	id := "U" + strings.TrimPrefix(ep.id, "P")
	return reference{
		ID: id, Type: "user_reference", Summary: "On-call for " + ep.name,
		Self: webhookAPIBase + "/users/" + id, HTMLURL: a.webURL("/users/" + id),
	}
}

// openIncident creates a triggered incident on svc; callers hold a.mu and b.mu.
func (s *Sim) openIncident(a *account, svc *service, title, key, routingKey string) *incident {
	inc := s.newIncident(a, svc, s.ids.objectID(), title, key, routingKey, s.now().UTC())
	s.emitIncident(a, inc, "incident.triggered")
	return inc
}

// newIncident records a triggered incident on svc created at now, without a webhook;
// callers hold b.mu.
func (s *Sim) newIncident(a *account, svc *service, id, title, key, routingKey string, now time.Time) *incident {
	b := s.incidents
	b.seq++
	b.numbers[a.id]++
	inc := &incident{
		id: id, account: a.id, number: b.numbers[a.id], title: title, status: IncidentTriggered,
		urgency: "high", incidentKey: key, routingKey: routingKey, serviceID: svc.id, serviceName: svc.name,
		serviceHTMLURL: a.webURL("/service-directory/" + svc.id),
		createdAt:      now, updatedAt: now, lastStatusChangeAt: now, seq: b.seq,
	}
	inc.htmlURL = a.webURL("/incidents/" + inc.id)
	if ep := a.eps[svc.epID]; ep != nil {
		inc.epID, inc.epName = ep.id, ep.name
		inc.assignees = []reference{a.oncallFor(ep)}
	}
	b.byID[inc.id] = inc
	if routingKey != "" {
		b.open[routingKey+"\x00"+key] = inc
	}
	return inc
}

// seedIncidents records the incidents of the account's seed (CardSeed.Incidents), oldest
// first, at their creation times and without webhooks: they are history, not news. A
// seeded status other than triggered is dated at creation too. It runs once, while the
// account is not yet visible to requests.
func (s *Sim) seedIncidents(a *account) {
	b := s.incidents
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, in := range a.card.incidents {
		key := in.IncidentKey
		if key == "" {
			key = s.ids.integrationKey()
		}
		inc := s.newIncident(a, a.services[in.ServiceID], in.ID, in.Title, key, "", in.CreatedAt.UTC())
		inc.urgency = cmp.Or(in.Urgency, inc.urgency)
		inc.status = cmp.Or(in.Status, inc.status)
		if inc.status == IncidentResolved {
			inc.resolvedAt = &inc.createdAt
			inc.assignees = nil
		}
	}
}

// setStatus moves an incident to status and emits the webhook; it reports whether
// anything changed. Callers hold b.mu.
func (s *Sim) setStatus(a *account, inc *incident, status string) bool {
	if inc.status == status || inc.status == IncidentResolved {
		return false
	}
	now := s.now().UTC()
	inc.status, inc.updatedAt, inc.lastStatusChangeAt = status, now, now
	eventType := "incident.acknowledged"
	if status == IncidentResolved {
		inc.resolvedAt = &now
		inc.assignees = nil
		delete(s.incidents.open, inc.routingKey+"\x00"+inc.incidentKey)
		eventType = "incident.resolved"
	}
	s.emitIncident(a, inc, eventType)
	return true
}

// incidentJSON is an incident as the REST API renders it.
type incidentJSON struct {
	ID                 string         `json:"id"`
	Type               string         `json:"type"`
	Summary            string         `json:"summary"`
	Self               string         `json:"self"`
	HTMLURL            string         `json:"html_url"`
	IncidentNumber     int            `json:"incident_number"`
	Title              string         `json:"title"`
	CreatedAt          string         `json:"created_at"`
	UpdatedAt          string         `json:"updated_at"`
	Status             string         `json:"status"`
	IncidentKey        string         `json:"incident_key"`
	Service            reference      `json:"service"`
	Assignments        []assignment   `json:"assignments"`
	AssignedVia        string         `json:"assigned_via"`
	LastStatusChangeAt string         `json:"last_status_change_at"`
	ResolvedAt         *string        `json:"resolved_at"`
	AlertCounts        map[string]int `json:"alert_counts"`
	IsMergeable        bool           `json:"is_mergeable"`
	EscalationPolicy   *reference     `json:"escalation_policy"`
	Teams              []reference    `json:"teams"`
	PendingActions     []any          `json:"pending_actions"`
	Acknowledgements   []any          `json:"acknowledgements"`
	Priority           *reference     `json:"priority"`
	Urgency            string         `json:"urgency"`
}

type assignment struct {
	At       string    `json:"at"`
	Assignee reference `json:"assignee"`
}

func (inc *incident) render(base string) incidentJSON {
	out := incidentJSON{
		ID: inc.id, Type: "incident", Summary: "[#" + strconv.Itoa(inc.number) + "] " + inc.title,
		Self: base + "/incidents/" + inc.id, HTMLURL: inc.htmlURL, IncidentNumber: inc.number, Title: inc.title,
		CreatedAt: timestamp(inc.createdAt), UpdatedAt: timestamp(inc.updatedAt), Status: inc.status,
		IncidentKey: inc.incidentKey,
		Service: reference{ID: inc.serviceID, Type: "service_reference", Summary: inc.serviceName,
			Self: base + "/services/" + inc.serviceID, HTMLURL: inc.serviceHTMLURL},
		Assignments: []assignment{}, AssignedVia: "escalation_policy", LastStatusChangeAt: timestamp(inc.lastStatusChangeAt),
		AlertCounts: map[string]int{"all": 1, "triggered": 0, "resolved": 0}, IsMergeable: true,
		Teams: []reference{}, PendingActions: []any{}, Acknowledgements: []any{}, Urgency: inc.urgency,
	}
	if inc.status == IncidentResolved {
		out.AlertCounts["resolved"] = 1
		r := timestamp(*inc.resolvedAt)
		out.ResolvedAt = &r
	} else {
		out.AlertCounts["triggered"] = 1
	}
	for _, a := range inc.assignees {
		out.Assignments = append(out.Assignments, assignment{At: timestamp(inc.createdAt), Assignee: a})
	}
	if inc.epID != "" {
		out.EscalationPolicy = &reference{ID: inc.epID, Type: "escalation_policy_reference", Summary: inc.epName,
			Self: base + "/escalation_policies/" + inc.epID}
	}
	return out
}

// handleListIncidents serves GET /incidents with service_ids[], statuses[],
// urgencies[], incident_key, since/until (default: the last month; date_range=all
// ignores them), sort_by (created_at or incident_number, :asc/:desc) and classic
// pagination.
func (s *Sim) handleListIncidents(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	q := r.URL.Query()
	p, perr := parsePage(q)
	if perr != nil {
		writeAPIError(w, perr)
		return
	}
	now := s.now().UTC()
	since, until := now.Add(-defaultIncidentWindow), now
	allTime := q.Get("date_range") == "all"
	if !allTime {
		var errs []string
		if v := q.Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				errs = append(errs, "Since is not a valid date.")
			}
			since = t
		}
		if v := q.Get("until"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				errs = append(errs, "Until is not a valid date.")
			}
			until = t
		}
		if len(errs) > 0 {
			writeAPIError(w, invalidInput(errs...))
			return
		}
		if until.Sub(since) > 6*defaultIncidentWindow+6*24*time.Hour {
			writeAPIError(w, invalidInput("The maximum range is 6 months."))
			return
		}
	}
	statuses, services, urgencies := queryList(q, "statuses"), queryList(q, "service_ids"), queryList(q, "urgencies")
	for _, st := range statuses {
		if st != IncidentTriggered && st != IncidentAcknowledged && st != IncidentResolved {
			writeAPIError(w, invalidInput("Statuses must be triggered, acknowledged or resolved."))
			return
		}
	}
	sortField, desc := "created_at", false
	if v := q.Get("sort_by"); v != "" {
		f, dir, _ := strings.Cut(strings.Split(v, ",")[0], ":")
		if (f != "created_at" && f != "incident_number") || (dir != "" && dir != "asc" && dir != "desc") {
			writeAPIError(w, invalidInput("Sort by is invalid."))
			return
		}
		sortField, desc = f, dir == "desc"
	}
	key := q.Get("incident_key")

	b := s.incidents
	b.mu.Lock()
	var matched []*incident
	for _, inc := range b.sorted(a.id) {
		switch {
		case !allTime && (inc.createdAt.Before(since) || inc.createdAt.After(until)),
			len(statuses) > 0 && !slices.Contains(statuses, inc.status),
			len(services) > 0 && !slices.Contains(services, inc.serviceID),
			len(urgencies) > 0 && !slices.Contains(urgencies, inc.urgency),
			key != "" && inc.incidentKey != key:
			continue
		}
		matched = append(matched, inc)
	}
	slices.SortStableFunc(matched, func(x, y *incident) int {
		c := cmp.Compare(x.seq, y.seq)
		if sortField == "incident_number" {
			c = cmp.Compare(x.number, y.number)
		}
		if desc {
			return -c
		}
		return c
	})
	base := baseURL(r)
	out, info := pageOf(p, matched, func(inc *incident) incidentJSON { return inc.render(base) })
	b.mu.Unlock()
	writeJSON(w, http.StatusOK, struct {
		Incidents []incidentJSON `json:"incidents"`
		pageInfo
	}{out, info})
}

// handleGetIncident serves GET /incidents/{id}.
func (s *Sim) handleGetIncident(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	b := s.incidents
	b.mu.Lock()
	defer b.mu.Unlock()
	inc := b.find(a, r.PathValue("id"))
	if inc == nil {
		writeNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]incidentJSON{"incident": inc.render(baseURL(r))})
}

// handleUpdateIncident serves PUT /incidents/{id}: status acknowledged or resolved
// (a resolved incident stays resolved), title and urgency. Each status change emits
// its webhook.
func (s *Sim) handleUpdateIncident(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	in, derr := decodeWrapped(r, "incident")
	if derr != nil {
		writeAPIError(w, derr)
		return
	}
	var body struct {
		Status  string `json:"status"`
		Title   string `json:"title"`
		Urgency string `json:"urgency"`
	}
	raw, _ := json.Marshal(in)
	if json.Unmarshal(raw, &body) != nil ||
		(body.Status != "" && body.Status != IncidentAcknowledged && body.Status != IncidentResolved) ||
		(body.Urgency != "" && body.Urgency != "high" && body.Urgency != "low") {
		writeAPIError(w, invalidInput("Incident is invalid."))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	b := s.incidents
	b.mu.Lock()
	defer b.mu.Unlock()
	inc := b.find(a, r.PathValue("id"))
	if inc == nil {
		writeNotFound(w)
		return
	}
	if body.Title != "" || body.Urgency != "" {
		inc.title = cmp.Or(body.Title, inc.title)
		inc.urgency = cmp.Or(body.Urgency, inc.urgency)
		inc.updatedAt = s.now().UTC()
	}
	if body.Status != "" {
		s.setStatus(a, inc, body.Status)
	}
	writeJSON(w, http.StatusOK, map[string]incidentJSON{"incident": inc.render(baseURL(r))})
}
