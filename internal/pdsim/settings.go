package pdsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Limits of the Alert Grouping Settings API
// (https://developer.pagerduty.com/docs/alert-grouping-settings-api).
const (
	maxContentBasedServices = 250
	maxSettingsPageLimit    = 100
	defaultSettingsLimit    = 25
)

var settingTypes = []string{groupingContentBased, groupingContentBasedIntelligent, groupingIntelligent, groupingTime}

// groupingSetting is an alert grouping setting covering one or more services.
type groupingSetting struct {
	id                string
	name, description *string
	typ               string
	config            GroupingConfig
	serviceIDs        []string
	createdAt         time.Time
	updatedAt         time.Time
	seq               int64
}

func (gs *groupingSetting) order() int64 { return gs.seq }

// withSettingsAPI answers 402/2014 for accounts without the Alert Grouping Settings API.
func withSettingsAPI(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !accountFrom(r.Context()).settingsAPI {
			writeAPIError(w, noAbilities())
			return
		}
		h(w, r)
	}
}

// applySettingInput validates a create (creating) or partial update body against gs
// and applies it; the caller commits only when no details come back. Fields absent
// from an update keep their values, `services` included.
func (a *account) applySettingInput(gs *groupingSetting, in map[string]json.RawMessage, creating bool) []string {
	var errs []string
	for _, key := range []string{"name", "description"} {
		if _, ok := in[key]; !ok {
			continue
		}
		v, err := nullableString(in, key)
		if err != nil {
			errs = append(errs, err.Error()+".")
			continue
		}
		if key == "name" {
			gs.name = v
		} else {
			gs.description = v
		}
	}
	typeChanged := false
	if _, ok := in["type"]; ok || creating {
		typ, _ := stringField(in, "type")
		if !slices.Contains(settingTypes, typ) {
			return append(errs, "type: must be one of content_based, content_based_intelligent, intelligent, time.")
		}
		typeChanged = typ != gs.typ
		gs.typ = typ
	}
	// A new type needs a config of its own, so an absent config is validated as empty.
	if _, ok := in["config"]; ok || creating || typeChanged {
		cfg, cerrs := parseSettingConfig(gs.typ, in["config"])
		errs = append(errs, cerrs...)
		gs.config = cfg
	}
	if raw, ok := in["services"]; ok || creating {
		var refs []struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &refs) != nil {
			return append(errs, "services: must be a list of service references.")
		}
		gs.serviceIDs = gs.serviceIDs[:0:0]
		for _, ref := range refs {
			if !slices.Contains(gs.serviceIDs, ref.ID) {
				gs.serviceIDs = append(gs.serviceIDs, ref.ID)
			}
		}
	}
	return append(errs, a.checkSettingServices(gs)...)
}

// checkSettingServices applies the per-type service count rules and checks that every
// service exists and belongs to no other setting.
func (a *account) checkSettingServices(gs *groupingSetting) []string {
	var errs []string
	n := len(gs.serviceIDs)
	switch {
	case n == 0:
		errs = append(errs, "services: must contain at least one service.")
	case n > 1 && (gs.typ == groupingTime || gs.typ == groupingContentBasedIntelligent):
		errs = append(errs, fmt.Sprintf("services: a %s setting allows only one service.", gs.typ))
	case n > maxContentBasedServices:
		errs = append(errs, fmt.Sprintf("services: a setting allows at most %d services.", maxContentBasedServices))
	}
	if gs.typ == groupingContentBased && n > 1 && gs.config.TimeWindow != nil && *gs.config.TimeWindow == 86400 {
		errs = append(errs, "time_window: 86400 is allowed only for a setting with one service.")
	}
	for _, id := range gs.serviceIDs {
		svc := a.services[id]
		switch {
		case svc == nil:
			errs = append(errs, fmt.Sprintf("services: service %s not found.", id))
		case svc.settingID != "" && svc.settingID != gs.id:
			errs = append(errs, fmt.Sprintf("services: service %s already belongs to alert grouping setting %s.", id, svc.settingID))
		}
	}
	return errs
}

// parseSettingConfig validates a setting's config for its type. Times are seconds:
// `timeout` 60–86400, `time_window` 300–3600 (content_based also 86400). Omit a value
// (or send null) for "until resolved" / "recommended"; 0 is refused.
func parseSettingConfig(typ string, raw json.RawMessage) (GroupingConfig, []string) {
	var cfg GroupingConfig
	var m map[string]json.RawMessage
	if !isNull(raw) && json.Unmarshal(raw, &m) != nil {
		return cfg, []string{"config: must be an object."}
	}
	allowed := map[string][]string{
		groupingTime:                    {"timeout"},
		groupingIntelligent:             {"time_window", "iag_fields"},
		groupingContentBased:            {"aggregate", "fields", "time_window"},
		groupingContentBasedIntelligent: {"aggregate", "fields", "time_window"},
	}[typ]
	if k := unknownKey(m, allowed...); k != "" {
		return cfg, []string{fmt.Sprintf("config: unknown field %q for type %s.", k, typ)}
	}
	var errs []string
	window := func(allow86400 bool) {
		tw, present, ok := intField(m, "time_window")
		switch {
		case !present && ok:
		case ok && ((tw >= 300 && tw <= 3600) || (allow86400 && tw == 86400)):
			cfg.TimeWindow = &tw
		case allow86400:
			errs = append(errs, "time_window: must be an integer between 300 and 3600 seconds, or 86400.")
		default:
			errs = append(errs, "time_window: must be an integer between 300 and 3600 seconds.")
		}
	}
	switch typ {
	case groupingTime:
		t, present, ok := intField(m, "timeout")
		switch {
		case !present && ok:
		case ok && t >= 60 && t <= 86400:
			cfg.Timeout = &t
		default:
			errs = append(errs, "timeout: must be an integer between 60 and 86400 seconds.")
		}
	case groupingIntelligent:
		window(false)
		cfg.IAGFields = []string{"summary"}
		if _, ok := m["iag_fields"]; ok && !isNull(m["iag_fields"]) {
			if f, ok := stringListField(m, "iag_fields"); ok {
				cfg.IAGFields = f
			} else {
				errs = append(errs, "iag_fields: must be a non-empty list of strings.")
			}
		}
	case groupingContentBased, groupingContentBasedIntelligent:
		if agg, ok := stringField(m, "aggregate"); ok && (agg == "all" || agg == "any") {
			cfg.Aggregate = agg
		} else {
			errs = append(errs, "aggregate: must be one of all, any.")
		}
		if f, ok := stringListField(m, "fields"); ok {
			cfg.Fields = f
		} else {
			errs = append(errs, "fields: must be a non-empty list of strings.")
		}
		window(typ == groupingContentBased)
	}
	return cfg, errs
}

// commitSetting stores gs and points its services at it, taking them out of the
// setting's previous service list (old) and clearing their own parameters; callers
// hold a.mu.
func (a *account) commitSetting(gs *groupingSetting, old []string) {
	for _, id := range old {
		if svc := a.services[id]; svc != nil && !slices.Contains(gs.serviceIDs, id) {
			svc.settingID = ""
		}
	}
	for _, id := range gs.serviceIDs {
		svc := a.services[id]
		svc.settingID, svc.grouping = gs.id, nil
	}
	a.settings[gs.id] = gs
}

// handleCreateSetting serves POST /alert_grouping_settings.
func (s *Sim) handleCreateSetting(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	in, derr := decodeWrapped(r, "alert_grouping_setting")
	if derr != nil {
		writeAPIError(w, derr)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := s.now().UTC()
	gs := &groupingSetting{createdAt: now, updatedAt: now}
	if errs := a.applySettingInput(gs, in, true); len(errs) > 0 {
		writeAPIError(w, invalidInput(errs...))
		return
	}
	gs.id, gs.seq = s.ids.objectID(), a.nextSeq()
	a.commitSetting(gs, nil)
	writeJSON(w, http.StatusCreated, map[string]settingJSON{"alert_grouping_setting": a.renderSetting(gs)})
}

// handleGetSetting serves GET /alert_grouping_settings/{id}.
func (s *Sim) handleGetSetting(w http.ResponseWriter, _ *http.Request, a *account, gs *groupingSetting, _ map[string]json.RawMessage) {
	writeJSON(w, http.StatusOK, map[string]settingJSON{"alert_grouping_setting": a.renderSetting(gs)})
}

// handleUpdateSetting serves PUT /alert_grouping_settings/{id}.
func (s *Sim) handleUpdateSetting(w http.ResponseWriter, _ *http.Request, a *account, cur *groupingSetting, in map[string]json.RawMessage) {
	next := *cur
	next.config = *cur.config.clone()
	next.serviceIDs = slices.Clone(cur.serviceIDs)
	if errs := a.applySettingInput(&next, in, false); len(errs) > 0 {
		writeAPIError(w, invalidInput(errs...))
		return
	}
	next.updatedAt = s.now().UTC()
	a.commitSetting(&next, cur.serviceIDs)
	writeJSON(w, http.StatusOK, map[string]settingJSON{"alert_grouping_setting": a.renderSetting(&next)})
}

// handleDeleteSetting serves DELETE /alert_grouping_settings/{id}; its services are left
// without grouping.
func (s *Sim) handleDeleteSetting(w http.ResponseWriter, _ *http.Request, a *account, gs *groupingSetting, _ map[string]json.RawMessage) {
	for _, id := range gs.serviceIDs {
		if svc := a.services[id]; svc != nil {
			svc.settingID = ""
		}
	}
	delete(a.settings, gs.id)
	w.WriteHeader(http.StatusNoContent)
}

// handleListSettings serves GET /alert_grouping_settings with cursor pagination:
// `after` and `before` are opaque cursors from a previous answer, `limit` (default 25,
// at most 100), `total=true`, and `service_ids[]` (settings covering any of them).
// With the account's EmptySettingsList404 quirk, a service_ids[] filter that matches
// nothing answers 404 with no body.
func (s *Sim) handleListSettings(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	q := r.URL.Query()
	limit := defaultSettingsLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeAPIError(w, invalidInput("limit: must be a positive integer."))
			return
		}
		limit = min(n, maxSettingsPageLimit)
	}
	after, afterOK := parseCursor(q.Get("after"))
	before, beforeOK := parseCursor(q.Get("before"))
	if !afterOK || !beforeOK || (after > 0 && before > 0) {
		writeAPIError(w, invalidInput("after, before: must be a cursor from a previous answer, and not both."))
		return
	}
	serviceIDs := queryList(q, "service_ids")

	a.mu.Lock()
	defer a.mu.Unlock()
	var all []*groupingSetting
	for _, gs := range sortedBySeq(a.settings) {
		if len(serviceIDs) == 0 || slices.ContainsFunc(gs.serviceIDs, func(id string) bool { return slices.Contains(serviceIDs, id) }) {
			all = append(all, gs)
		}
	}
	if len(all) == 0 && len(serviceIDs) > 0 && a.settingsList404 {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	start, end := 0, min(limit, len(all))
	switch {
	case after > 0:
		start = len(all)
		if i := slices.IndexFunc(all, func(gs *groupingSetting) bool { return gs.seq > after }); i >= 0 {
			start = i
		}
		end = min(start+limit, len(all))
	case before > 0:
		end = len(all)
		if i := slices.IndexFunc(all, func(gs *groupingSetting) bool { return gs.seq >= before }); i >= 0 {
			end = i
		}
		start = max(end-limit, 0)
	}
	resp := settingsPage{Settings: make([]settingJSON, 0, end-start), Limit: limit}
	for _, gs := range all[start:end] {
		resp.Settings = append(resp.Settings, a.renderSetting(gs))
	}
	if end < len(all) && end > start {
		resp.After = cursor(all[end-1].seq)
	}
	if start > 0 && end > start {
		resp.Before = cursor(all[start].seq)
	}
	if q.Get("total") == "true" {
		n := len(all)
		resp.Total = &n
	}
	writeJSON(w, http.StatusOK, resp)
}

type settingsPage struct {
	Settings []settingJSON `json:"alert_grouping_settings"`
	After    *string       `json:"after"`
	Before   *string       `json:"before"`
	Limit    int           `json:"limit"`
	Total    *int          `json:"total"`
}

// cursor encodes a position in creation order.
func cursor(seq int64) *string {
	c := "c" + strconv.FormatInt(seq, 10)
	return &c
}

// parseCursor decodes a cursor; "" is no cursor (0, true).
func parseCursor(c string) (int64, bool) {
	if c == "" {
		return 0, true
	}
	if len(c) < 2 || c[0] != 'c' {
		return 0, false
	}
	n, err := strconv.ParseInt(c[1:], 10, 64)
	return n, err == nil && n > 0
}

type settingServiceJSON struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

type settingJSON struct {
	ID          string               `json:"id"`
	Name        *string              `json:"name"`
	Description *string              `json:"description"`
	Type        string               `json:"type"`
	Config      GroupingConfig       `json:"config"`
	Services    []settingServiceJSON `json:"services"`
	CreatedAt   string               `json:"created_at"`
	UpdatedAt   string               `json:"updated_at"`
}

// renderSetting renders gs; callers hold a.mu.
func (a *account) renderSetting(gs *groupingSetting) settingJSON {
	out := settingJSON{
		ID: gs.id, Name: gs.name, Description: gs.description, Type: gs.typ, Config: *gs.config.clone(),
		Services: []settingServiceJSON{}, CreatedAt: timestamp(gs.createdAt), UpdatedAt: timestamp(gs.updatedAt),
	}
	for _, id := range gs.serviceIDs {
		ref := settingServiceJSON{ID: id}
		if svc := a.services[id]; svc != nil {
			ref.Name = svc.name
		}
		out.Services = append(out.Services, ref)
	}
	return out
}
