package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// Resource types of a v3 event (event.resource_type).
const (
	ResourceIncident = "incident"
	ResourceService  = "service"
	ResourcePagey    = "pagey"
)

// Event types the worker acts on. Every other type is accepted, stored and skipped.
const (
	TypeIncidentTriggered      = "incident.triggered"
	TypeIncidentAcknowledged   = "incident.acknowledged"
	TypeIncidentUnacknowledged = "incident.unacknowledged"
	TypeIncidentResolved       = "incident.resolved"
	TypeIncidentReopened       = "incident.reopened"
	TypeIncidentReassigned     = "incident.reassigned"
	TypeIncidentEscalated      = "incident.escalated"
	TypeIncidentDelegated      = "incident.delegated"
	TypeIncidentPriority       = "incident.priority_updated"
	TypeIncidentServiceUpdated = "incident.service_updated"
	TypeServiceCreated         = "service.created"
	TypeServiceUpdated         = "service.updated"
	TypeServiceDeleted         = "service.deleted"
	TypePing                   = "pagey.ping"
)

// Incident statuses.
const (
	StatusTriggered    = "triggered"
	StatusAcknowledged = "acknowledged"
	StatusResolved     = "resolved"
)

// ErrNotEnvelope is wrapped by every Decode error: the body is not a v3 envelope.
var ErrNotEnvelope = errors.New("not a PagerDuty v3 webhook envelope")

// Envelope is one v3 webhook delivery body; PagerDuty never batches events.
type Envelope struct {
	Event Event `json:"event"`
}

// Event is the envelope's event. Data keeps its raw form; Incident and Service decode
// it by type.
type Event struct {
	ID           string          `json:"id"`
	EventType    string          `json:"event_type"`
	ResourceType string          `json:"resource_type"`
	OccurredAt   time.Time       `json:"occurred_at"`
	Agent        json.RawMessage `json:"agent"`
	Client       json.RawMessage `json:"client"`
	Data         json.RawMessage `json:"data"`
	// Raw is the event object as sent (set by Decode), for passing it on unchanged.
	Raw json.RawMessage `json:"-"`
}

// Reference is a PagerDuty object reference (service, user, escalation policy, team).
type Reference struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Summary string `json:"summary,omitempty"`
	Self    string `json:"self,omitempty"`
	HTMLURL string `json:"html_url,omitempty"`
}

// IncidentData is event.data of incident lifecycle events (data.type "incident").
// Note that PagerDuty names the incident number "number" here, not "incident_number".
type IncidentData struct {
	ID               string          `json:"id"`
	Type             string          `json:"type"`
	Self             string          `json:"self,omitempty"`
	HTMLURL          string          `json:"html_url,omitempty"`
	Number           int             `json:"number,omitempty"`
	Status           string          `json:"status"`
	IncidentKey      string          `json:"incident_key,omitempty"`
	CreatedAt        *time.Time      `json:"created_at,omitempty"`
	ReopenedAt       *time.Time      `json:"reopened_at,omitempty"`
	Title            string          `json:"title"`
	Service          *Reference      `json:"service"`
	Assignees        []Reference     `json:"assignees"`
	EscalationPolicy *Reference      `json:"escalation_policy,omitempty"`
	Teams            []Reference     `json:"teams,omitempty"`
	Priority         *Reference      `json:"priority,omitempty"`
	Urgency          string          `json:"urgency"`
	ConferenceBridge json.RawMessage `json:"conference_bridge,omitempty"`
	ResolveReason    json.RawMessage `json:"resolve_reason,omitempty"`
	IncidentType     json.RawMessage `json:"incident_type,omitempty"`
}

// ServiceData is event.data of service.* events. It is not a full service object.
type ServiceData struct {
	ID            string      `json:"id"`
	Type          string      `json:"type"`
	Self          string      `json:"self,omitempty"`
	HTMLURL       string      `json:"html_url,omitempty"`
	Summary       string      `json:"summary,omitempty"`
	Name          string      `json:"name,omitempty"`
	AlertCreation string      `json:"alert_creation,omitempty"`
	Teams         []Reference `json:"teams,omitempty"`
}

// incidentChild is the common part of data that hangs off an incident (notes, status
// updates, responders, tasks, …): an incident reference, sometimes with its service.
// Service is also where incident data itself names its service.
type incidentChild struct {
	Incident *struct {
		ID      string     `json:"id"`
		Service *Reference `json:"service"`
	} `json:"incident"`
	Service *Reference `json:"service"`
}

// Decode parses a v3 webhook body. It is strict about what identifies an event
// (exactly one JSON object with an "event" object holding id, event_type,
// resource_type and an RFC 3339 occurred_at, no trailing data) and tolerant about the
// rest, since PagerDuty adds fields and event types without notice. Errors wrap
// ErrNotEnvelope and say what is wrong.
//
// It reads only the fields it needs and keeps agent, client and data as slices of
// body, which the caller must therefore not change: the receiver decodes every
// delivery on the hot path, the worker decodes data later by type.
func Decode(body []byte) (*Envelope, error) {
	if !gjson.ValidBytes(body) {
		return nil, fmt.Errorf("%w: the body is not valid JSON", ErrNotEnvelope)
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return nil, fmt.Errorf("%w: the body is not a JSON object", ErrNotEnvelope)
	}
	ev := root.Get("event")
	if !ev.IsObject() {
		return nil, fmt.Errorf("%w: no \"event\" object", ErrNotEnvelope)
	}
	// One pass over the event's members picks out the ones Decode reads.
	var id, eventType, resourceType, occurredAt, agent, client, data gjson.Result
	ev.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "id":
			id = v
		case "event_type":
			eventType = v
		case "resource_type":
			resourceType = v
		case "occurred_at":
			occurredAt = v
		case "agent":
			agent = v
		case "client":
			client = v
		case "data":
			data = v
		}
		return true
	})
	var missing []string
	for _, f := range []struct {
		name string
		v    gjson.Result
	}{{"event_type", eventType}, {"id", id}, {"occurred_at", occurredAt}, {"resource_type", resourceType}} {
		if f.v.Type != gjson.String || strings.TrimSpace(f.v.Str) == "" {
			missing = append(missing, "event."+f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: missing %s", ErrNotEnvelope, strings.Join(missing, ", "))
	}
	at, err := time.Parse(time.RFC3339Nano, occurredAt.Str)
	if err != nil {
		return nil, fmt.Errorf("%w: event.occurred_at %q is not an RFC 3339 time", ErrNotEnvelope, occurredAt.Str)
	}
	if data.Exists() && data.Type != gjson.Null && !data.IsObject() {
		return nil, fmt.Errorf("%w: event.data is not an object", ErrNotEnvelope)
	}
	return &Envelope{Event: Event{
		ID: id.Str, EventType: eventType.Str, ResourceType: resourceType.Str, OccurredAt: at,
		Agent: raw(body, agent), Client: raw(body, client), Data: raw(body, data), Raw: raw(body, ev),
	}}, nil
}

// raw returns the JSON text of v as it appears in body (sharing its bytes), or nil
// when absent.
func raw(body []byte, v gjson.Result) json.RawMessage {
	switch {
	case !v.Exists():
		return nil
	case v.Index > 0 && v.Index+len(v.Raw) <= len(body):
		return json.RawMessage(body[v.Index : v.Index+len(v.Raw) : v.Index+len(v.Raw)])
	}
	return json.RawMessage(v.Raw)
}

// Incident decodes the data of an incident lifecycle event (resource_type "incident",
// data.type "incident"). It fails for other events.
func (e Event) Incident() (*IncidentData, error) {
	if e.ResourceType != ResourceIncident {
		return nil, fmt.Errorf("event %s (%s) is not about an incident", e.ID, e.EventType)
	}
	var d IncidentData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return nil, fmt.Errorf("decode incident data of event %s: %w", e.ID, err)
	}
	if d.Type != "incident" {
		return nil, fmt.Errorf("event %s (%s) carries %q data, not an incident", e.ID, e.EventType, d.Type)
	}
	if d.ID == "" {
		return nil, fmt.Errorf("event %s (%s): incident data without id", e.ID, e.EventType)
	}
	return &d, nil
}

// Service decodes the data of a service.* event. It fails for other events.
func (e Event) Service() (*ServiceData, error) {
	if e.ResourceType != ResourceService {
		return nil, fmt.Errorf("event %s (%s) is not about a service", e.ID, e.EventType)
	}
	var d ServiceData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return nil, fmt.Errorf("decode service data of event %s: %w", e.ID, err)
	}
	if d.ID == "" {
		return nil, fmt.Errorf("event %s (%s): service data without id", e.ID, e.EventType)
	}
	return &d, nil
}

// ServiceID returns the ID of the PagerDuty service the event concerns: data.service
// for incidents, data.id for services, data.incident.service (or data.service) for
// data that hangs off an incident; "" when the event names no service (pagey.ping,
// unknown shapes).
func (e Event) ServiceID() string {
	if len(e.Data) == 0 {
		return ""
	}
	switch e.ResourceType {
	case ResourceService:
		var d struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(e.Data, &d) == nil {
			return d.ID
		}
		return ""
	case ResourceIncident:
		var d incidentChild
		if json.Unmarshal(e.Data, &d) != nil {
			return ""
		}
		switch {
		case d.Service != nil && d.Service.ID != "":
			return d.Service.ID
		case d.Incident != nil && d.Incident.Service != nil:
			return d.Incident.Service.ID
		}
	}
	return ""
}

// IncidentID returns the ID of the incident the event concerns (data.id for incident
// data, data.incident.id for data that hangs off an incident), or "".
func (e Event) IncidentID() string {
	if e.ResourceType != ResourceIncident || len(e.Data) == 0 {
		return ""
	}
	var d struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		incidentChild
	}
	if json.Unmarshal(e.Data, &d) != nil {
		return ""
	}
	if d.Type == "incident" {
		return d.ID
	}
	if d.Incident != nil {
		return d.Incident.ID
	}
	return ""
}
