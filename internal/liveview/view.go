package liveview

import (
	"cmp"
	"time"

	"github.com/pdworker/pdworker/internal/webhook"
)

// TombstoneRetention is how long a resolved incident is remembered after the newest
// event of its service: longer than PagerDuty retries a delivery (48 h).
const TombstoneRetention = 72 * time.Hour

// Service is the live view of one PagerDuty service.
type Service struct {
	Account   string `json:"account"`
	ServiceID string `json:"serviceId"`
	// Name and HTMLURL come from service events or from the service reference of
	// incident events.
	Name    string `json:"name,omitempty"`
	HTMLURL string `json:"htmlUrl,omitempty"`
	// Deleted is set by service.deleted; DeletedAt is its occurred_at.
	Deleted   bool       `json:"deleted,omitempty"`
	DeletedAt *time.Time `json:"deletedAt,omitempty"`
	// Open holds the triggered and acknowledged incidents by incident id.
	Open map[string]Incident `json:"open"`
	// Counts counts Open by status, and "resolved" counts the tombstones.
	Counts map[string]int `json:"counts"`
	// Resolved holds tombstones of resolved incidents (or incidents that moved to
	// another service), by incident id.
	Resolved map[string]Change `json:"resolved,omitempty"`
	// ServiceChange is the last service.* event applied.
	ServiceChange *Change `json:"serviceChange,omitempty"`
	// LastChange is the occurred_at of the newest event applied to this service.
	LastChange time.Time `json:"lastChange"`
}

// Incident is one open incident in the live view.
type Incident struct {
	ID        string     `json:"id"`
	Number    int        `json:"number,omitempty"`
	Title     string     `json:"title"`
	Status    string     `json:"status"`
	Urgency   string     `json:"urgency,omitempty"`
	HTMLURL   string     `json:"htmlUrl,omitempty"`
	Assignees []Assignee `json:"assignees"`
	CreatedAt *time.Time `json:"createdAt,omitempty"`
	// LastChange is the event that set this state.
	LastChange Change `json:"lastChange"`
}

// Assignee is a user an incident is assigned to.
type Assignee struct {
	ID      string `json:"id"`
	Summary string `json:"summary,omitempty"`
	HTMLURL string `json:"htmlUrl,omitempty"`
}

// Change identifies the event behind a state: its occurred_at, id, type and the
// incident status it set. Changes are ordered by time; within one millisecond (the
// precision of occurred_at) by status, triggered < acknowledged < resolved, then by
// event id, so that deliveries applied in any order end in the same state.
type Change struct {
	At        time.Time `json:"at"`
	EventID   string    `json:"eventId"`
	EventType string    `json:"eventType"`
	Status    string    `json:"status,omitempty"`
}

// after reports whether c is newer than o.
func (c Change) after(o Change) bool {
	if !c.At.Equal(o.At) {
		return c.At.After(o.At)
	}
	if r := cmp.Compare(statusRank(c.Status), statusRank(o.Status)); r != 0 {
		return r > 0
	}
	return cmp.Compare(c.EventID, o.EventID) > 0
}

func statusRank(s string) int {
	switch s {
	case webhook.StatusTriggered:
		return 1
	case webhook.StatusAcknowledged:
		return 2
	case webhook.StatusResolved:
		return 3
	}
	return 0
}

func newService(account, serviceID string) *Service {
	return &Service{Account: account, ServiceID: serviceID, Open: map[string]Incident{}, Counts: map[string]int{}, Resolved: map[string]Change{}}
}

// current returns the change behind the incident's state in this view, if any.
func (s *Service) current(id string) (Change, bool) {
	if inc, ok := s.Open[id]; ok {
		return inc.LastChange, true
	}
	c, ok := s.Resolved[id]
	return c, ok
}

// applyIncident sets the incident's state from data when ch is newer than what the
// view holds; it reports whether anything changed.
func (s *Service) applyIncident(ch Change, d *webhook.IncidentData) bool {
	ch.Status = d.Status
	if cur, ok := s.current(d.ID); ok && !ch.after(cur) {
		return false
	}
	if d.Service != nil && s.ServiceChange == nil {
		// Service events name the service with authority; incident references only
		// until one arrives.
		s.Name = cmp.Or(d.Service.Summary, s.Name)
	}
	if d.Status == webhook.StatusResolved {
		delete(s.Open, d.ID)
		s.Resolved[d.ID] = ch
	} else {
		delete(s.Resolved, d.ID)
		inc := Incident{
			ID: d.ID, Number: d.Number, Title: d.Title, Status: d.Status, Urgency: d.Urgency,
			HTMLURL: d.HTMLURL, Assignees: []Assignee{}, CreatedAt: d.CreatedAt, LastChange: ch,
		}
		for _, a := range d.Assignees {
			inc.Assignees = append(inc.Assignees, Assignee{ID: a.ID, Summary: a.Summary, HTMLURL: a.HTMLURL})
		}
		s.Open[d.ID] = inc
	}
	s.touch(ch.At)
	return true
}

// leave removes an incident that moved to another service, unless the view already
// holds a newer state of it.
func (s *Service) leave(id string, ch Change) bool {
	if cur, ok := s.current(id); ok && !ch.after(cur) {
		return false
	}
	delete(s.Open, id)
	s.Resolved[id] = ch
	s.touch(ch.At)
	return true
}

// applyService applies a service.* event when it is newer than the last one.
func (s *Service) applyService(ch Change, d *webhook.ServiceData) bool {
	if s.ServiceChange != nil && !ch.after(*s.ServiceChange) {
		return false
	}
	s.ServiceChange = &ch
	s.Name = cmp.Or(d.Name, d.Summary, s.Name)
	s.HTMLURL = cmp.Or(d.HTMLURL, s.HTMLURL)
	if ch.EventType == webhook.TypeServiceDeleted {
		at := ch.At
		s.Deleted, s.DeletedAt = true, &at
		for id, inc := range s.Open {
			s.Resolved[id] = inc.LastChange
		}
		clear(s.Open)
	} else {
		s.Deleted, s.DeletedAt = false, nil
	}
	s.touch(ch.At)
	return true
}

// touch advances LastChange, drops tombstones older than the retention and
// recounts.
func (s *Service) touch(at time.Time) {
	if at.After(s.LastChange) {
		s.LastChange = at
	}
	horizon := s.LastChange.Add(-TombstoneRetention)
	for id, c := range s.Resolved {
		if c.At.Before(horizon) {
			delete(s.Resolved, id)
		}
	}
	clear(s.Counts)
	for _, inc := range s.Open {
		s.Counts[inc.Status]++
	}
	s.Counts[webhook.StatusResolved] = len(s.Resolved)
}
