package pdsim

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
)

// Events API v2 limits (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/).
const (
	maxDedupKey = 255
	maxSummary  = 1024
)

var severities = []string{"critical", "error", "warning", "info"}

// enqueueEvent is an Events API v2 alert event.
type enqueueEvent struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Payload     *struct {
		Summary       string         `json:"summary"`
		Source        string         `json:"source"`
		Severity      string         `json:"severity"`
		CustomDetails map[string]any `json:"custom_details"`
	} `json:"payload"`
}

// handleEnqueue serves POST /v2/enqueue: trigger opens an incident on the service
// whose integration has the routing key (or, while one with the same dedup_key is
// open, adds nothing); acknowledge and resolve change the open incident of that
// dedup_key and are dropped silently when there is none. Answers 202 with the
// dedup_key, or 400 "invalid event" listing what is wrong.
func (s *Sim) handleEnqueue(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var ev enqueueEvent
	if err != nil || json.Unmarshal(body, &ev) != nil {
		writeInvalidEvent(w, "JSON parse error")
		return
	}
	var errs []string
	switch {
	case len(ev.RoutingKey) != 32:
		errs = append(errs, "'routing_key' is invalid")
	case !slices.Contains([]string{"trigger", "acknowledge", "resolve"}, ev.EventAction):
		errs = append(errs, "'event_action' is invalid")
	}
	if len(ev.DedupKey) > maxDedupKey {
		errs = append(errs, "'dedup_key' is too long")
	}
	if ev.EventAction == "trigger" {
		switch {
		case ev.Payload == nil:
			errs = append(errs, "'payload' is missing or blank")
		default:
			if strings.TrimSpace(ev.Payload.Summary) == "" {
				errs = append(errs, "'payload.summary' is missing or blank")
			} else if len(ev.Payload.Summary) > maxSummary {
				errs = append(errs, "'payload.summary' is too long")
			}
			if strings.TrimSpace(ev.Payload.Source) == "" {
				errs = append(errs, "'payload.source' is missing or blank")
			}
			if !slices.Contains(severities, ev.Payload.Severity) {
				errs = append(errs, "'payload.severity' is invalid (expected one of critical, error, warning, info)")
			}
		}
	} else if ev.DedupKey == "" && len(errs) == 0 {
		errs = append(errs, "'dedup_key' is missing or blank")
	}
	if len(errs) > 0 {
		writeInvalidEvent(w, errs...)
		return
	}
	a, svc := s.serviceByRoutingKey(ev.RoutingKey)
	if a == nil {
		writeInvalidEvent(w, "Invalid routing key")
		return
	}
	defer a.mu.Unlock()
	if ev.DedupKey == "" {
		ev.DedupKey = s.ids.integrationKey()
	}
	b := s.incidents
	b.mu.Lock()
	open := b.open[ev.RoutingKey+"\x00"+ev.DedupKey]
	switch ev.EventAction {
	case "trigger":
		if open == nil {
			s.openIncident(a, svc, ev.Payload.Summary, ev.DedupKey, ev.RoutingKey).details = ev.Payload.CustomDetails
		}
	case "acknowledge":
		if open != nil {
			s.setStatus(a, open, IncidentAcknowledged)
		}
	case "resolve":
		if open != nil {
			s.setStatus(a, open, IncidentResolved)
		}
	}
	b.mu.Unlock()
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "success", "message": "Event processed", "dedup_key": ev.DedupKey})
}

// writeInvalidEvent sends the Events API's 400 answer listing what is wrong.
func writeInvalidEvent(w http.ResponseWriter, errs ...string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"status": "invalid event", "message": "Event object is invalid", "errors": errs})
}

// serviceByRoutingKey finds the service with an integration of that key and returns
// it with its account locked (the caller unlocks a.mu), or nils.
func (s *Sim) serviceByRoutingKey(key string) (*account, *service) {
	for _, a := range s.accountList() {
		a.mu.Lock()
		for _, svc := range a.services {
			if svc.hasIntegrationKey(key) {
				return a, svc
			}
		}
		a.mu.Unlock()
	}
	return nil, nil
}
