package pdsim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// CardSeed is what the Backstage card reads besides services: users and their on-call
// entries, change events, incident metrics and incidents that already exist (of any
// age). Standards scores are computed from each service's state.
type CardSeed struct {
	Users        []UserSeed           `json:"users,omitempty"`
	OnCalls      []OnCallSeed         `json:"oncalls,omitempty"`
	ChangeEvents []ChangeEventSeed    `json:"change_events,omitempty"`
	Metrics      []ServiceMetricsSeed `json:"metrics,omitempty"`
	Incidents    []IncidentSeed       `json:"incidents,omitempty"`
}

// IncidentSeed is an incident that exists when the account is loaded, created at
// CreatedAt (which may lie before GET /incidents' default one-month window). It is
// kept by the same incident model as incidents opened through the Events API, without
// a routing key.
type IncidentSeed struct {
	// ID is the incident id; empty gets a generated one.
	ID        string `json:"id,omitempty"`
	ServiceID string `json:"service_id"`
	Title     string `json:"title"`
	// Status is triggered (default), acknowledged or resolved.
	Status string `json:"status,omitempty"`
	// Urgency is high (default) or low.
	Urgency string `json:"urgency,omitempty"`
	// IncidentKey is the incident's key; empty gets a generated one.
	IncidentKey string    `json:"incident_key,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// UserSeed is a PagerDuty user.
type UserSeed struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// OnCallSeed puts a user on call for an escalation policy at a level (1 is first),
// permanently (start and end null).
type OnCallSeed struct {
	EscalationPolicyID string `json:"escalation_policy_id"`
	UserID             string `json:"user_id"`
	Level              int    `json:"level"`
}

// ChangeEventSeed is a change event of a service.
type ChangeEventSeed struct {
	ID        string    `json:"id"`
	ServiceID string    `json:"service_id"`
	Summary   string    `json:"summary"`
	Source    string    `json:"source,omitempty"`
	Timestamp time.Time `json:"timestamp"`
	Links     []Link    `json:"links,omitempty"`
}

// Link is a change event link.
type Link struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"`
}

// ServiceMetricsSeed is what POST /analytics/metrics/incidents/services reports for a
// service; services without one have no data, as at PagerDuty.
type ServiceMetricsSeed struct {
	ServiceID                 string `json:"service_id"`
	TotalIncidentCount        int    `json:"total_incident_count"`
	TotalHighUrgencyIncidents int    `json:"total_high_urgency_incidents"`
	TotalInterruptions        int    `json:"total_interruptions"`
	MeanSecondsToResolve      int    `json:"mean_seconds_to_resolve"`
	MeanSecondsToFirstAck     int    `json:"mean_seconds_to_first_ack"`
}

// cardState is an account's card data; guarded by the account's mu.
type cardState struct {
	users        map[string]UserSeed
	userOrder    []string
	oncalls      []OnCallSeed
	changeEvents []ChangeEventSeed
	metrics      map[string]ServiceMetricsSeed
	// incidents are the seeded incidents, oldest first, with their ids reserved; they
	// join the incident book when the account is added (seedIncidents).
	incidents []IncidentSeed
}

// newCardState checks a CardSeed against the account's policies and services; id
// reserves a seeded object id or makes one for "".
func newCardState(a *account, cs *CardSeed, id func(given string) (string, error)) (cardState, error) {
	st := cardState{users: map[string]UserSeed{}, metrics: map[string]ServiceMetricsSeed{}}
	if cs == nil {
		return st, nil
	}
	for _, u := range cs.Users {
		if u.ID == "" || u.Name == "" || st.users[u.ID].ID != "" {
			return st, fmt.Errorf("user %q: id and name are required and the id must be unique", u.ID)
		}
		st.users[u.ID] = u
		st.userOrder = append(st.userOrder, u.ID)
	}
	for _, oc := range cs.OnCalls {
		if a.eps[oc.EscalationPolicyID] == nil || st.users[oc.UserID].ID == "" || oc.Level < 1 {
			return st, fmt.Errorf("on-call %s/%s: unknown policy or user, or level below 1", oc.EscalationPolicyID, oc.UserID)
		}
	}
	st.oncalls = slices.Clone(cs.OnCalls)
	for _, ce := range cs.ChangeEvents {
		if a.services[ce.ServiceID] == nil || ce.ID == "" {
			return st, fmt.Errorf("change event %q: id required and service %q must exist", ce.ID, ce.ServiceID)
		}
	}
	st.changeEvents = slices.Clone(cs.ChangeEvents)
	for _, m := range cs.Metrics {
		if a.services[m.ServiceID] == nil {
			return st, fmt.Errorf("metrics: service %q not found", m.ServiceID)
		}
		st.metrics[m.ServiceID] = m
	}
	for _, in := range cs.Incidents {
		switch {
		case a.services[in.ServiceID] == nil:
			return st, fmt.Errorf("incident %q: service %q not found", in.Title, in.ServiceID)
		case strings.TrimSpace(in.Title) == "" || len(in.Title) > maxSummary:
			return st, fmt.Errorf("incident on %s: a title of 1 to %d characters is required", in.ServiceID, maxSummary)
		case in.Status != "" && in.Status != IncidentTriggered && in.Status != IncidentAcknowledged && in.Status != IncidentResolved:
			return st, fmt.Errorf("incident %q: status %q is not triggered, acknowledged or resolved", in.Title, in.Status)
		case in.Urgency != "" && in.Urgency != "high" && in.Urgency != "low":
			return st, fmt.Errorf("incident %q: urgency %q is not high or low", in.Title, in.Urgency)
		case in.CreatedAt.IsZero():
			return st, fmt.Errorf("incident %q: created_at is required", in.Title)
		}
		var err error
		if in.ID, err = id(in.ID); err != nil {
			return st, fmt.Errorf("incident %q: %w", in.Title, err)
		}
		st.incidents = append(st.incidents, in)
	}
	slices.SortStableFunc(st.incidents, func(x, y IncidentSeed) int { return x.CreatedAt.Compare(y.CreatedAt) })
	return st, nil
}

// cardRoutes registers the endpoints behind the Backstage card.
func (s *Sim) cardRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /users/{id}", s.handleGetUser)
	m.HandleFunc("GET /oncalls", s.handleListOnCalls)
	m.HandleFunc("GET /services/{id}/change_events", s.handleListChangeEvents)
	m.HandleFunc("GET /standards/scores/technical_services/{id}", withObject(servicesOf, "", s.handleStandardsScores))
	m.HandleFunc("POST /analytics/metrics/incidents/services", s.handleServiceMetrics)
}

type userJSON struct {
	ID        string      `json:"id"`
	Type      string      `json:"type"`
	Summary   string      `json:"summary"`
	Self      string      `json:"self"`
	HTMLURL   string      `json:"html_url"`
	Name      string      `json:"name"`
	Email     string      `json:"email"`
	TimeZone  string      `json:"time_zone"`
	Color     string      `json:"color"`
	Role      string      `json:"role"`
	AvatarURL string      `json:"avatar_url"`
	JobTitle  *string     `json:"job_title"`
	Teams     []reference `json:"teams"`
}

func (a *account) renderUser(base string, u UserSeed) userJSON {
	return userJSON{
		ID: u.ID, Type: "user", Summary: u.Name, Self: base + "/users/" + u.ID, HTMLURL: a.webURL("/users/" + u.ID),
		Name: u.Name, Email: u.Email, TimeZone: "Etc/UTC", Color: "purple", Role: "user",
		AvatarURL: "https://secure.gravatar.com/avatar/" + u.ID + ".png?d=mm&r=PG", Teams: []reference{},
	}
}

func (a *account) userReference(base string, u UserSeed) reference {
	return reference{ID: u.ID, Type: "user_reference", Summary: u.Name, Self: base + "/users/" + u.ID, HTMLURL: a.webURL("/users/" + u.ID)}
}

// handleGetUser serves GET /users/{id}.
func (s *Sim) handleGetUser(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.card.users[r.PathValue("id")]
	if !ok {
		writeNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]userJSON{"user": a.renderUser(baseURL(r), u)})
}

// handleListOnCalls serves GET /oncalls: escalation_policy_ids[] and user_ids[]
// filter, include[]=users renders full users, classic pagination. Entries are ordered
// by policy, then level, then user, and are permanent (start and end null).
func (s *Sim) handleListOnCalls(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	q := r.URL.Query()
	p, perr := parsePage(q)
	if perr != nil {
		writeAPIError(w, perr)
		return
	}
	eps, users := queryList(q, "escalation_policy_ids"), queryList(q, "user_ids")
	fullUsers := slices.Contains(queryList(q, "include"), "users")

	a.mu.Lock()
	defer a.mu.Unlock()
	var matched []OnCallSeed
	for _, oc := range a.card.oncalls {
		if (len(eps) == 0 || slices.Contains(eps, oc.EscalationPolicyID)) && (len(users) == 0 || slices.Contains(users, oc.UserID)) {
			matched = append(matched, oc)
		}
	}
	slices.SortStableFunc(matched, func(x, y OnCallSeed) int {
		return cmp.Or(cmp.Compare(x.EscalationPolicyID, y.EscalationPolicyID), cmp.Compare(x.Level, y.Level), cmp.Compare(x.UserID, y.UserID))
	})
	base := baseURL(r)
	type onCallJSON struct {
		User             any       `json:"user"`
		Schedule         any       `json:"schedule"`
		EscalationPolicy reference `json:"escalation_policy"`
		EscalationLevel  int       `json:"escalation_level"`
		Start            *string   `json:"start"`
		End              *string   `json:"end"`
	}
	out, info := pageOf(p, matched, func(oc OnCallSeed) onCallJSON {
		u := a.card.users[oc.UserID]
		var user any = a.userReference(base, u)
		if fullUsers {
			user = a.renderUser(base, u)
		}
		return onCallJSON{User: user, EscalationPolicy: a.epReference(base, a.eps[oc.EscalationPolicyID]), EscalationLevel: oc.Level}
	})
	writeJSON(w, http.StatusOK, struct {
		OnCalls []onCallJSON `json:"oncalls"`
		pageInfo
	}{out, info})
}

// handleListChangeEvents serves GET /services/{id}/change_events, newest first.
func (s *Sim) handleListChangeEvents(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	q := r.URL.Query()
	p, perr := parsePage(q)
	if perr != nil {
		writeAPIError(w, perr)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	svc := a.services[r.PathValue("id")]
	if svc == nil {
		writeNotFound(w)
		return
	}
	var matched []ChangeEventSeed
	for _, ce := range a.card.changeEvents {
		if ce.ServiceID == svc.id {
			matched = append(matched, ce)
		}
	}
	slices.SortStableFunc(matched, func(x, y ChangeEventSeed) int { return y.Timestamp.Compare(x.Timestamp) })
	base := baseURL(r)
	type changeEventJSON struct {
		ID            string         `json:"id"`
		Type          string         `json:"type"`
		Summary       string         `json:"summary"`
		Timestamp     string         `json:"timestamp"`
		Source        *string        `json:"source"`
		Integration   reference      `json:"integration"`
		Services      []reference    `json:"services"`
		CustomDetails map[string]any `json:"custom_details"`
		Links         []Link         `json:"links"`
		Images        []any          `json:"images"`
		HTMLURL       string         `json:"html_url"`
	}
	ref := a.serviceReference(base, svc)
	out, info := pageOf(p, matched, func(ce ChangeEventSeed) changeEventJSON {
		var src *string
		if ce.Source != "" {
			src = &ce.Source
		}
		return changeEventJSON{
			ID: ce.ID, Type: "change_event", Summary: ce.Summary, Timestamp: timestamp(ce.Timestamp), Source: src,
			Integration:   reference{ID: "PCHGINT", Type: "inbound_integration_reference"},
			Services:      []reference{ref},
			CustomDetails: map[string]any{}, Links: append([]Link{}, ce.Links...), Images: []any{},
			HTMLURL: a.webURL("/change_events/" + ce.ID),
		}
	})
	writeJSON(w, http.StatusOK, struct {
		ChangeEvents []changeEventJSON `json:"change_events"`
		pageInfo
	}{out, info})
}

// standardDef is one standard the simulator scores every service against.
type standardDef struct {
	id, name, description string
	pass                  func(a *account, svc *service) bool
}

var simStandards = []standardDef{
	{"PSTD001", "Service has a description", "A description helps responders understand what the service does.",
		func(_ *account, svc *service) bool { return strings.TrimSpace(svc.description) != "" }},
	{"PSTD002", "Service has an integration", "Services need an integration to receive events.",
		func(_ *account, svc *service) bool { return len(svc.integrations) > 0 }},
	{"PSTD003", "Service uses alert grouping", "Alert grouping reduces noise.",
		func(_ *account, svc *service) bool { return svc.grouping != nil || svc.settingID != "" }},
	{"PSTD004", "Service has on-call responders", "The escalation policy has someone on call.",
		func(a *account, svc *service) bool {
			return slices.ContainsFunc(a.card.oncalls, func(oc OnCallSeed) bool { return oc.EscalationPolicyID == svc.epID })
		}},
}

// handleStandardsScores serves GET /standards/scores/technical_services/{id}, with the
// object at the top level as PagerDuty answers.
func (s *Sim) handleStandardsScores(w http.ResponseWriter, _ *http.Request, a *account, svc *service, _ map[string]json.RawMessage) {
	type standardJSON struct {
		Active      bool   `json:"active"`
		Description string `json:"description"`
		ID          string `json:"id"`
		Name        string `json:"name"`
		Pass        bool   `json:"pass"`
		Type        string `json:"type"`
	}
	out := struct {
		ResourceID   string         `json:"resource_id"`
		ResourceType string         `json:"resource_type"`
		Score        map[string]int `json:"score"`
		Standards    []standardJSON `json:"standards"`
	}{ResourceID: svc.id, ResourceType: "technical_service", Standards: []standardJSON{}}
	passing := 0
	for _, d := range simStandards {
		ok := d.pass(a, svc)
		if ok {
			passing++
		}
		out.Standards = append(out.Standards, standardJSON{Active: true, Description: d.description, ID: d.id, Name: d.name, Pass: ok, Type: "technical_service_standard"})
	}
	out.Score = map[string]int{"passing": passing, "total": len(simStandards)}
	writeJSON(w, http.StatusOK, out)
}

// handleServiceMetrics serves POST /analytics/metrics/incidents/services: data for the
// filtered services that have metrics.
func (s *Sim) handleServiceMetrics(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	var in struct {
		Filters struct {
			CreatedAtStart string   `json:"created_at_start"`
			CreatedAtEnd   string   `json:"created_at_end"`
			ServiceIDs     []string `json:"service_ids"`
		} `json:"filters"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeAPIError(w, bodyError(err, "Request body is not valid JSON."))
		return
	}
	start, err1 := time.Parse(time.RFC3339, in.Filters.CreatedAtStart)
	end, err2 := time.Parse(time.RFC3339, in.Filters.CreatedAtEnd)
	if err1 != nil || err2 != nil || end.Before(start) || end.Sub(start) > 366*24*time.Hour {
		writeAPIError(w, invalidInput("created_at_start and created_at_end must be ISO 8601 times at most a year apart."))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	type metricsJSON struct {
		ServiceMetricsSeed
		ServiceName string  `json:"service_name"`
		TeamID      *string `json:"team_id"`
		TeamName    *string `json:"team_name"`
	}
	data := []metricsJSON{}
	ids := in.Filters.ServiceIDs
	if len(ids) == 0 {
		for id := range a.card.metrics {
			ids = append(ids, id)
		}
		slices.Sort(ids)
	}
	for _, id := range ids {
		m, ok := a.card.metrics[id]
		if svc := a.services[id]; ok && svc != nil {
			data = append(data, metricsJSON{ServiceMetricsSeed: m, ServiceName: svc.name})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "filters": in.Filters, "aggregate_unit": nil, "time_zone": "Etc/UTC"})
}
