package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/internal/card"
	"github.com/pdworker/pdworker/internal/pagerduty"
)

// StaleHeader is set to "true" on card answers served from the cache because
// PagerDuty is failing.
const StaleHeader = "X-Pdworker-Stale"

// cardHandlers serve the routes the official PagerDuty frontend plugin, entity
// processor and template dropdown call (anchor routes R11–R20), with the anchor's wire
// shapes, plus the server-side incident trigger.
type cardHandlers struct {
	cards    *card.Cards
	readOnly bool
	log      zerolog.Logger
}

// registerCard adds the card routes; without cards it adds none.
func registerCard(api func(pattern string, h http.HandlerFunc), cfg Config, cards *card.Cards, log zerolog.Logger) {
	if cards == nil {
		return
	}
	h := &cardHandlers{cards: cards, readOnly: cfg.ReadOnly, log: log}
	api("GET /api/pagerduty/health", h.health)
	api("GET /api/pagerduty/services", h.services)
	api("GET /api/pagerduty/services/{serviceId}", h.service)
	api("POST /api/pagerduty/services/{serviceId}/integration/{vendorId}", h.createIntegration)
	api("GET /api/pagerduty/services/{serviceId}/incidents", h.incidents)
	api("POST /api/pagerduty/services/{serviceId}/incidents", h.trigger)
	api("GET /api/pagerduty/services/{serviceId}/change-events", h.changeEvents)
	api("GET /api/pagerduty/services/{serviceId}/standards", h.standards)
	api("GET /api/pagerduty/services/{serviceId}/metrics", h.metrics)
	api("GET /api/pagerduty/oncall-users", h.onCallUsers)
	api("GET /api/pagerduty/escalation_policies", h.escalationPolicies)
}

func (h *cardHandlers) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// service serves R13: {"service": <PagerDuty service>}.
func (h *cardHandlers) service(w http.ResponseWriter, r *http.Request) {
	svc, meta, err := h.cards.Service(r.Context(), account(r), r.PathValue("serviceId"))
	h.answer(w, meta, err, func() any { return map[string]json.RawMessage{"service": svc} })
}

// services serves R14: {"service": …} for an integration_key (404 when no service
// owns it), else {"services": […]} with an "account" field on each.
func (h *cardHandlers) services(w http.ResponseWriter, r *http.Request) {
	if key := r.URL.Query().Get("integration_key"); key != "" {
		svc, meta, err := h.cards.ServiceByIntegrationKey(r.Context(), account(r), key)
		if err == nil && svc == nil {
			writeJSON(w, http.StatusNotFound, upstreamErrors{Errors: []string{"no PagerDuty service has that integration key"}})
			return
		}
		h.answer(w, meta, err, func() any { return map[string]json.RawMessage{"service": svc} })
		return
	}
	list, meta, err := h.cards.Services(r.Context(), account(r))
	h.answer(w, meta, err, func() any { return map[string][]json.RawMessage{"services": list} })
}

// createIntegration serves R15: a bare JSON string holding the integration key.
func (h *cardHandlers) createIntegration(w http.ResponseWriter, r *http.Request) {
	if h.readOnly {
		writeJSON(w, http.StatusForbidden, upstreamErrors{Errors: []string{card.ErrReadOnly.Error()}})
		return
	}
	k, err := h.cards.EnsureIntegration(r.Context(), account(r), r.PathValue("serviceId"), r.PathValue("vendorId"))
	h.answer(w, card.Meta{}, err, func() any { return k })
}

func (h *cardHandlers) incidents(w http.ResponseWriter, r *http.Request) {
	l, meta, err := h.cards.Incidents(r.Context(), account(r), r.PathValue("serviceId"))
	h.answer(w, meta, err, func() any { return map[string][]json.RawMessage{"incidents": l} })
}

func (h *cardHandlers) changeEvents(w http.ResponseWriter, r *http.Request) {
	l, meta, err := h.cards.ChangeEvents(r.Context(), account(r), r.PathValue("serviceId"))
	h.answer(w, meta, err, func() any { return map[string][]json.RawMessage{"change_events": l} })
}

func (h *cardHandlers) standards(w http.ResponseWriter, r *http.Request) {
	s, meta, err := h.cards.Standards(r.Context(), account(r), r.PathValue("serviceId"))
	h.answer(w, meta, err, func() any { return map[string]json.RawMessage{"standards": s} })
}

func (h *cardHandlers) metrics(w http.ResponseWriter, r *http.Request) {
	m, meta, err := h.cards.Metrics(r.Context(), account(r), r.PathValue("serviceId"))
	h.answer(w, meta, err, func() any { return map[string]json.RawMessage{"metrics": m} })
}

// onCallUsers serves R12. Both escalation_policy_ids and escalation_policy_ids[] are
// accepted (the frontend sends the bracket form, unencoded).
func (h *cardHandlers) onCallUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var ids []string
	for _, v := range append(q["escalation_policy_ids[]"], q["escalation_policy_ids"]...) {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		writeJSON(w, http.StatusBadRequest, "Bad Request: 'escalation_policy_ids[]' is required")
		return
	}
	users, meta, err := h.cards.OnCallUsers(r.Context(), account(r), ids)
	h.answer(w, meta, err, func() any { return map[string][]json.RawMessage{"users": users} })
}

// escalationPolicies serves R11: a bare [{"label","value"}] array across accounts.
func (h *cardHandlers) escalationPolicies(w http.ResponseWriter, r *http.Request) {
	opts, meta, err := h.cards.EscalationPolicies(r.Context(), account(r))
	h.answer(w, meta, err, func() any { return opts })
}

// triggerRequest is the body of POST /services/{serviceId}/incidents.
type triggerRequest struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Severity    string `json:"severity"`
	DedupKey    string `json:"dedupKey"`
}

// trigger opens an incident on the service through the Events API v2, with the
// integration key kept server-side; 202 {"dedupKey","serviceId"}.
func (h *cardHandlers) trigger(w http.ResponseWriter, r *http.Request) {
	if h.readOnly {
		writeError(w, http.StatusForbidden, "READ_ONLY is set: triggering incidents is refused")
		return
	}
	var in triggerRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		if !writeTooLarge(w, err) {
			writeError(w, http.StatusBadRequest, "the body must be a JSON object {\"title\",\"description\"?,\"severity\"?,\"dedupKey\"?}: "+err.Error())
		}
		return
	}
	var bad []string
	switch {
	case strings.TrimSpace(in.Title) == "":
		bad = append(bad, "title: is required")
	case len(in.Title) > 1024:
		bad = append(bad, "title: at most 1024 characters")
	}
	if in.Severity != "" && !slices.Contains(card.Severities, in.Severity) {
		bad = append(bad, "severity: must be one of "+strings.Join(card.Severities, ", "))
	}
	if len(in.DedupKey) > 255 {
		bad = append(bad, "dedupKey: at most 255 characters")
	}
	if len(bad) > 0 {
		writeError(w, http.StatusBadRequest, "invalid incident: "+strings.Join(bad, "; "))
		return
	}
	serviceID := r.PathValue("serviceId")
	dedup, err := h.cards.TriggerIncident(r.Context(), account(r), serviceID, card.Trigger{
		Title: in.Title, Description: in.Description, Severity: in.Severity, DedupKey: in.DedupKey,
		User: CallerFrom(r.Context()),
	})
	if err != nil {
		status, msg := errorStatus(err)
		if errors.Is(err, card.ErrNoIntegrationKey) {
			status, msg = http.StatusConflict, fmt.Sprintf("service %s has no integration key: map one, or create the Backstage integration with POST /api/pagerduty/services/%s/integration/%s", serviceID, serviceID, pagerduty.VendorBackstage)
		}
		writeError(w, status, msg)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"dedupKey": dedup, "serviceId": serviceID})
}

// upstreamErrors is the anchor's failure body: {"errors":["…"]}.
type upstreamErrors struct {
	Errors []string `json:"errors"`
}

// writeUpstreamError answers a failed PagerDuty call with the anchor's {"errors":["…"]}
// shape and the status errorStatus picks, and returns that status.
func writeUpstreamError(w http.ResponseWriter, err error) int {
	status, msg := errorStatus(err)
	writeJSON(w, status, upstreamErrors{Errors: []string{msg}})
	return status
}

// answer writes body() with 200, flagging stale answers, or the anchor's error shape.
func (h *cardHandlers) answer(w http.ResponseWriter, meta card.Meta, err error, body func() any) {
	if err != nil {
		if status := writeUpstreamError(w, err); status >= 500 {
			h.log.Warn().Err(err).Int("status", status).Msg("card read failed")
		}
		return
	}
	if meta.Stale {
		w.Header().Set(StaleHeader, "true")
		w.Header().Set("Warning", `110 - "Response is Stale"`)
	}
	writeJSON(w, http.StatusOK, body())
}

// errorStatus maps a card error to a status: PagerDuty's own status passed through
// (as the anchor does), 400 for an unknown account or a bad id, 502 when PagerDuty
// could not be reached, 504 when the deadline passed.
func errorStatus(err error) (int, string) {
	var ae *pagerduty.APIError
	switch {
	case errors.Is(err, pagerduty.ErrUnknownAccount):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, card.ErrDeadline), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, err.Error()
	case errors.As(err, &ae) && ae.Status >= 400:
		return ae.Status, ae.Error()
	case errors.As(err, &ae) && ae.Class == pagerduty.ClassPermanent:
		return http.StatusBadRequest, ae.Error()
	case errors.As(err, &ae) && ae.Wait > 0:
		return http.StatusTooManyRequests, ae.Error()
	default:
		return http.StatusBadGateway, err.Error()
	}
}

// account is the optional ?account= of every card route.
func account(r *http.Request) string { return r.URL.Query().Get("account") }
