package pdsim

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// service is a PagerDuty technical service.
type service struct {
	id, name, description, epID string
	status, alertCreation       string
	autoResolveTimeout          *int
	ackTimeout                  *int
	urgencyRule                 json.RawMessage
	supportHours                json.RawMessage
	scheduledActions            json.RawMessage
	autoPause                   autoPause
	// grouping holds service-level alert_grouping_parameters; nil is off. It is unset
	// while the service belongs to an alert grouping setting (settingID).
	grouping     *GroupingParameters
	settingID    string
	integrations []*integration
	createdAt    time.Time
	updatedAt    time.Time
	seq          int64
}

func (svc *service) order() int64 { return svc.seq }

type autoPause struct {
	Enabled bool `json:"enabled"`
	Timeout *int `json:"timeout"`
}

// Values PagerDuty accepts for service fields with a closed set.
var (
	alertCreationValues  = []string{"create_incidents", "create_alerts_and_incidents"}
	statusValues         = []string{"active", "warning", "critical", "maintenance", "disabled"}
	autoPauseTimeouts    = []int{0, 120, 180, 300, 600, 900}
	defaultUrgencyRule   = json.RawMessage(`{"type":"constant","urgency":"high"}`)
	defaultScheduledActs = json.RawMessage(`[]`)
)

// Error details of service validation, worded as PagerDuty words them where known.
const (
	errNameBlank = "Name can't be blank"
	errNameTaken = "Name has already been taken"
	errEPMissing = "Escalation Policy not found"
)

// applyServiceFields validates the plain fields of a create (creating) or partial
// update body and applies them to svc, which the caller commits only when no details
// come back. alert_grouping_parameters is left to applyGrouping.
func (a *account) applyServiceFields(svc *service, in map[string]json.RawMessage, creating bool) []string {
	var errs []string
	if raw, ok := in["name"]; ok || creating {
		var name string
		_ = json.Unmarshal(raw, &name)
		name = strings.TrimSpace(name)
		switch other := a.serviceByName(name); {
		case name == "":
			errs = append(errs, errNameBlank)
		case other != nil && other.id != svc.id:
			errs = append(errs, errNameTaken)
		default:
			svc.name = name
		}
	}
	if _, ok := in["description"]; ok {
		if d, err := nullableString(in, "description"); err != nil {
			errs = append(errs, "Description is invalid")
		} else {
			svc.description = deref(d)
		}
	}
	if raw, ok := in["escalation_policy"]; ok || creating {
		var ref struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &ref) != nil || a.eps[ref.ID] == nil {
			errs = append(errs, errEPMissing)
		} else {
			svc.epID = ref.ID
		}
	}
	if _, ok := in["alert_creation"]; ok {
		if v, ok := stringField(in, "alert_creation"); ok && slices.Contains(alertCreationValues, v) {
			svc.alertCreation = v
		} else {
			errs = append(errs, "Alert creation must be one of create_incidents, create_alerts_and_incidents")
		}
	}
	if _, ok := in["status"]; ok {
		v, ok := stringField(in, "status")
		if !ok || !slices.Contains(statusValues, v) || (creating && v != "active") {
			errs = append(errs, "Status is invalid")
		} else {
			svc.status = v
		}
	}
	for key, dst := range map[string]**int{"auto_resolve_timeout": &svc.autoResolveTimeout, "acknowledgement_timeout": &svc.ackTimeout} {
		if _, ok := in[key]; !ok {
			continue
		}
		v, present, ok := intField(in, key)
		switch {
		case !ok || v < 0:
			errs = append(errs, strings.ReplaceAll(key, "_", " ")+" must be a non-negative integer or null")
		case !present || v == 0:
			*dst = nil
		default:
			*dst = &v
		}
	}
	for key, dst := range map[string]*json.RawMessage{
		"incident_urgency_rule": &svc.urgencyRule, "support_hours": &svc.supportHours, "scheduled_actions": &svc.scheduledActions,
	} {
		raw, ok := in[key]
		if !ok {
			continue
		}
		var v any
		if json.Unmarshal(raw, &v) != nil {
			errs = append(errs, key+" is invalid")
			continue
		}
		*dst = nil
		if v != nil {
			*dst = slices.Clone(raw)
		}
	}
	if raw, ok := in["auto_pause_notifications_parameters"]; ok && !isNull(raw) {
		var ap autoPause
		if json.Unmarshal(raw, &ap) != nil || (ap.Timeout != nil && !slices.Contains(autoPauseTimeouts, *ap.Timeout)) {
			errs = append(errs, "Auto pause notifications parameters timeout must be one of 0, 120, 180, 300, 600, 900")
		} else {
			svc.autoPause = ap
		}
	}
	slices.Sort(errs)
	return errs
}

// applyGrouping validates alert_grouping_parameters, if the body has them, checks the
// account's abilities for anything but "off", and applies them to svc. A service that
// takes its own parameters leaves its alert grouping setting; the caller commits that
// with leaveSetting when svc is stored.
func (a *account) applyGrouping(svc *service, in map[string]json.RawMessage) (leaveSetting bool, err *apiError) {
	raw, ok := in["alert_grouping_parameters"]
	if !ok {
		return false, nil
	}
	params, ignore, err := parseServiceGrouping(raw)
	if err != nil || ignore {
		return false, err
	}
	if params != nil && !(a.hasAbility(AbilityIntelligentGrouping) && a.hasAbility(AbilityTimeBasedGrouping)) {
		return false, noAbilities()
	}
	svc.grouping = params
	return svc.settingID != "", nil
}

// commitLeaveSetting takes a service out of its alert grouping setting; callers hold a.mu.
func (a *account) commitLeaveSetting(svc *service) {
	if gs := a.settings[svc.settingID]; gs != nil {
		gs.serviceIDs = slices.DeleteFunc(gs.serviceIDs, func(id string) bool { return id == svc.id })
		if len(gs.serviceIDs) == 0 {
			delete(a.settings, gs.id)
		}
	}
	svc.settingID = ""
}

// handleCreateService serves POST /services. `type` is not required and
// `escalation_policy.teams: null` is accepted, as go-pagerduty sends it.
func (s *Sim) handleCreateService(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	in, derr := decodeWrapped(r, "service")
	if derr != nil {
		writeAPIError(w, derr)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	svc := newService("", "", "", "", s.now().UTC(), 0)
	if errs := a.applyServiceFields(svc, in, true); len(errs) > 0 {
		writeAPIError(w, invalidInput(errs...))
		return
	}
	if _, err := a.applyGrouping(svc, in); err != nil {
		writeAPIError(w, err)
		return
	}
	svc.id, svc.seq = s.ids.objectID(), a.nextSeq()
	a.services[svc.id] = svc
	s.emitService(a, svc, "service.created")
	writeJSON(w, http.StatusCreated, map[string]serviceJSON{"service": a.renderService(baseURL(r), svc, nil)})
}

// handleGetService serves GET /services/{id} with include[]=integrations and
// include[]=escalation_policies.
func (s *Sim) handleGetService(w http.ResponseWriter, r *http.Request, a *account, svc *service, _ map[string]json.RawMessage) {
	writeJSON(w, http.StatusOK, map[string]serviceJSON{"service": a.renderService(baseURL(r), svc, queryList(r.URL.Query(), "include"))})
}

// handleUpdateService serves PUT /services/{id}: a partial update; fields absent from
// the body keep their values.
func (s *Sim) handleUpdateService(w http.ResponseWriter, r *http.Request, a *account, cur *service, in map[string]json.RawMessage) {
	next := *cur
	if errs := a.applyServiceFields(&next, in, false); len(errs) > 0 {
		writeAPIError(w, invalidInput(errs...))
		return
	}
	leave, err := a.applyGrouping(&next, in)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	if leave {
		a.commitLeaveSetting(&next)
	}
	next.updatedAt = s.now().UTC()
	a.services[next.id] = &next
	s.emitService(a, &next, "service.updated")
	writeJSON(w, http.StatusOK, map[string]serviceJSON{"service": a.renderService(baseURL(r), &next, nil)})
}

// handleDeleteService serves DELETE /services/{id}: 204, and the service leaves its
// alert grouping setting.
func (s *Sim) handleDeleteService(w http.ResponseWriter, _ *http.Request, a *account, svc *service, _ map[string]json.RawMessage) {
	a.commitLeaveSetting(svc)
	delete(a.services, svc.id)
	s.emitService(a, svc, "service.deleted")
	w.WriteHeader(http.StatusNoContent)
}

// handleListServices serves GET /services. `query` matches a case-insensitive
// substring of the name, or an integration key exactly (as the Backstage plugin relies
// on); `name` matches the whole name; sort_by is name (default) or name:desc.
func (s *Sim) handleListServices(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	q := r.URL.Query()
	p, desc, perr := parseNameSortedPage(q)
	if perr != nil {
		writeAPIError(w, perr)
		return
	}
	query, name := q.Get("query"), q.Get("name")
	teamFilter := len(queryList(q, "team_ids")) > 0

	a.mu.Lock()
	defer a.mu.Unlock()
	var matched []*service
	for _, svc := range a.services {
		if teamFilter || (name != "" && svc.name != name) {
			continue
		}
		if query != "" && !strings.Contains(strings.ToLower(svc.name), strings.ToLower(query)) && !svc.hasIntegrationKey(query) {
			continue
		}
		matched = append(matched, svc)
	}
	sortByName(matched, func(svc *service) (string, string) { return svc.name, svc.id }, desc)
	includes := queryList(q, "include")
	base := baseURL(r)
	out, info := pageOf(p, matched, func(svc *service) serviceJSON { return a.renderService(base, svc, includes) })
	writeJSON(w, http.StatusOK, struct {
		Services []serviceJSON `json:"services"`
		pageInfo
	}{out, info})
}

func (svc *service) hasIntegrationKey(key string) bool {
	return slices.ContainsFunc(svc.integrations, func(in *integration) bool { return in.key == key })
}

// serviceJSON is a service as PagerDuty renders it.
type serviceJSON struct {
	ID                               string          `json:"id"`
	Type                             string          `json:"type"`
	Summary                          string          `json:"summary"`
	Self                             string          `json:"self"`
	HTMLURL                          string          `json:"html_url"`
	Name                             string          `json:"name"`
	Description                      string          `json:"description"`
	AutoResolveTimeout               *int            `json:"auto_resolve_timeout"`
	AcknowledgementTimeout           *int            `json:"acknowledgement_timeout"`
	CreatedAt                        string          `json:"created_at"`
	UpdatedAt                        string          `json:"updated_at"`
	Status                           string          `json:"status"`
	LastIncidentTimestamp            *string         `json:"last_incident_timestamp"`
	Teams                            []reference     `json:"teams"`
	Integrations                     []any           `json:"integrations"`
	EscalationPolicy                 any             `json:"escalation_policy"`
	AlertCreation                    string          `json:"alert_creation"`
	AlertGroupingParameters          any             `json:"alert_grouping_parameters"`
	IncidentUrgencyRule              json.RawMessage `json:"incident_urgency_rule"`
	SupportHours                     json.RawMessage `json:"support_hours"`
	ScheduledActions                 json.RawMessage `json:"scheduled_actions"`
	Addons                           []any           `json:"addons"`
	AutoPauseNotificationsParameters autoPause       `json:"auto_pause_notifications_parameters"`
	ResponsePlay                     *reference      `json:"response_play"`
}

func (a *account) serviceReference(base string, svc *service) reference {
	return reference{
		ID: svc.id, Type: "service_reference", Summary: svc.name,
		Self: base + "/services/" + svc.id, HTMLURL: a.webURL("/service-directory/" + svc.id),
	}
}

// renderService renders svc with the requested includes; callers hold a.mu.
func (a *account) renderService(base string, svc *service, includes []string) serviceJSON {
	ref := a.serviceReference(base, svc)
	out := serviceJSON{
		ID: svc.id, Type: "service", Summary: svc.name, Self: ref.Self, HTMLURL: ref.HTMLURL,
		Name: svc.name, Description: svc.description,
		AutoResolveTimeout: clonePtr(svc.autoResolveTimeout), AcknowledgementTimeout: clonePtr(svc.ackTimeout),
		CreatedAt: timestamp(svc.createdAt), UpdatedAt: timestamp(svc.updatedAt),
		Status: svc.status, Teams: []reference{}, Integrations: []any{}, AlertCreation: svc.alertCreation,
		AlertGroupingParameters:          a.renderGrouping(base, svc),
		IncidentUrgencyRule:              orDefault(svc.urgencyRule, defaultUrgencyRule),
		SupportHours:                     svc.supportHours,
		ScheduledActions:                 orDefault(svc.scheduledActions, defaultScheduledActs),
		Addons:                           []any{},
		AutoPauseNotificationsParameters: svc.autoPause,
	}
	fullIntegrations := slices.Contains(includes, "integrations")
	for _, in := range svc.integrations {
		if fullIntegrations {
			out.Integrations = append(out.Integrations, a.renderIntegration(base, svc, in))
		} else {
			out.Integrations = append(out.Integrations, a.integrationReference(base, svc, in))
		}
	}
	if ep := a.eps[svc.epID]; ep != nil {
		if slices.Contains(includes, "escalation_policies") {
			out.EscalationPolicy = a.renderEP(base, ep, a.servicesByEP())
		} else {
			out.EscalationPolicy = a.epReference(base, ep)
		}
	}
	return out
}

// renderGrouping is a service's alert_grouping_parameters: its own, the setting's when
// the service API can express it, a read-only setting reference otherwise, or
// `{"type":null}`.
func (a *account) renderGrouping(base string, svc *service) any {
	if gs := a.settings[svc.settingID]; gs != nil {
		if p, ok := paramsFromSetting(gs); ok {
			return p
		}
		return reference{
			ID: gs.id, Type: groupingSettingReference, Summary: cmp.Or(deref(gs.name), gs.id),
			Self: base + "/alert_grouping_settings/" + gs.id, HTMLURL: a.webURL("/alert-grouping-settings/" + gs.id),
		}
	}
	if svc.grouping != nil {
		return svc.grouping
	}
	return map[string]any{"type": nil}
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func orDefault(raw, def json.RawMessage) json.RawMessage {
	if raw == nil {
		return def
	}
	return raw
}
