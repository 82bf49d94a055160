package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pagerduty"
)

// MappingDeps are what the mapping, settings, dependency and catalog routes call into.
// With a nil Store the routes are not registered.
type MappingDeps struct {
	Store    *mapping.Store
	Accounts *pagerduty.Accounts
	// Changed is told the entity refs whose mapping changed (the new and the old one),
	// so that their dependencies get reconciled; nil does nothing.
	Changed func(ctx context.Context, refs ...string)
}

// integrationLockTTL bounds how long one check-then-create of a Backstage integration
// may hold its lock.
const integrationLockTTL = time.Minute

// mappingHandlers serve the official plugin's mapping, settings, dependency and catalog
// routes (anchor routes R1–R10) with its wire shapes.
type mappingHandlers struct {
	cfg  Config
	deps MappingDeps
	log  zerolog.Logger
}

// registerMapping adds the routes; api wraps each handler with auth and the body cap.
func registerMapping(api func(string, http.HandlerFunc), cfg Config, deps MappingDeps, log zerolog.Logger) {
	if deps.Store == nil {
		return
	}
	h := &mappingHandlers{cfg: cfg, deps: deps, log: log.With().Str("routes", "mapping").Logger()}
	api("GET /api/pagerduty/mapping/entity", h.listMappings)
	api("POST /api/pagerduty/mapping/entity", h.putMapping)
	api("GET /api/pagerduty/mapping/entity/service/{serviceId}", h.mappingByService)
	api("GET /api/pagerduty/mapping/entity/{type}/{namespace}/{name}", h.mappingByEntity)
	api("GET /api/pagerduty/settings/{settingId}", h.getSetting)
	api("POST /api/pagerduty/settings", h.putSettings)
	api("GET /api/pagerduty/dependencies/service/{serviceId}", h.listDependencies)
	api("POST /api/pagerduty/dependencies/service/{serviceId}", h.writeDependencies)
	api("DELETE /api/pagerduty/dependencies/service/{serviceId}", h.writeDependencies)
	api("GET /api/pagerduty/catalog/entity/{type}/{namespace}/{name}", h.catalogServiceID)
}

// mappingString answers with a JSON string body, the plugin's shape for validation
// errors, R9/R10 misses and R4.
func mappingString(w http.ResponseWriter, status int, s string) { writeJSON(w, status, s) }

// mappingOK answers 200 with the text body "OK", as Express's sendStatus(200) does.
func mappingOK(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "OK")
}

func (h *mappingHandlers) storeFailed(w http.ResponseWriter, what string, err error) {
	h.log.Error().Err(err).Msg(what)
	writeError(w, http.StatusServiceUnavailable, what+": "+err.Error())
}

// client picks the PagerDuty account of the request's ?account= ("" = default).
func (h *mappingHandlers) client(w http.ResponseWriter, account string) (*pagerduty.Client, bool) {
	if h.deps.Accounts == nil {
		mappingString(w, http.StatusServiceUnavailable, "no PagerDuty account is configured")
		return nil, false
	}
	c, err := h.deps.Accounts.Client(account)
	if err != nil {
		mappingString(w, http.StatusBadRequest, fmt.Sprintf("Bad Request: unknown account %q", account))
		return nil, false
	}
	return c, true
}

func pathRef(r *http.Request) (string, error) {
	return mapping.NormalizeRef(r.PathValue("type") + ":" + r.PathValue("namespace") + "/" + r.PathValue("name"))
}

// annotationRow is the plugin's raw row for a binding that comes from annotations only.
func annotationRow(b mapping.Binding) mapping.Mapping {
	return mapping.Mapping{ServiceID: b.ServiceID, IntegrationKey: b.IntegrationKey, EntityRef: b.EntityRef, Account: b.Account}
}

// mappingByEntity serves R9: {"mapping": row}, the explicit mapping first, else the
// one the entity's annotations give; 404 "Mapping for entityRef <ref> not found.".
func (h *mappingHandlers) mappingByEntity(w http.ResponseWriter, r *http.Request) {
	ref, err := pathRef(r)
	if err != nil {
		mappingString(w, http.StatusBadRequest, "Bad Request: "+err.Error())
		return
	}
	m, err := h.deps.Store.ByEntity(r.Context(), ref)
	if err != nil {
		h.storeFailed(w, "read mapping", err)
		return
	}
	if m == nil {
		v, err := h.deps.Store.View(r.Context())
		if err != nil {
			h.storeFailed(w, "read mappings", err)
			return
		}
		if b, ok := v.Binding(ref); ok {
			row := annotationRow(b)
			m = &row
		}
	}
	if m == nil {
		mappingString(w, http.StatusNotFound, fmt.Sprintf("Mapping for entityRef %s not found.", ref))
		return
	}
	writeJSON(w, http.StatusOK, map[string]mapping.Mapping{"mapping": *m})
}

// mappingByService serves R10 the same way, keyed by service.
func (h *mappingHandlers) mappingByService(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("serviceId")
	m, err := h.deps.Store.ByService(r.Context(), id)
	if err != nil {
		h.storeFailed(w, "read mapping", err)
		return
	}
	if m == nil {
		ref, ok, err := h.deps.Store.ResolveService(r.Context(), "", id)
		if err != nil {
			h.storeFailed(w, "resolve service", err)
			return
		}
		if ok {
			e, err := h.deps.Store.Entity(r.Context(), ref)
			if err != nil {
				h.storeFailed(w, "read entity", err)
				return
			}
			row := mapping.Mapping{ServiceID: id, EntityRef: ref}
			if e != nil {
				row.IntegrationKey, row.Account = e.IntegrationKey, e.Account
			}
			m = &row
		}
	}
	if m == nil {
		mappingString(w, http.StatusNotFound, fmt.Sprintf("Mapping for serviceId %s not found.", id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]mapping.Mapping{"mapping": *m})
}

type mappingRequest struct {
	EntityRef      string  `json:"entityRef"`
	ServiceID      string  `json:"serviceId"`
	IntegrationKey string  `json:"integrationKey"`
	Account        string  `json:"account"`
	Status         *string `json:"status,omitempty"`
}

type mappingResponse struct {
	ID             string  `json:"id"`
	EntityRef      string  `json:"entityRef"`
	IntegrationKey string  `json:"integrationKey"`
	ServiceID      string  `json:"serviceId"`
	Status         *string `json:"status,omitempty"`
	Account        string  `json:"account"`
}

// putMapping serves R7: upsert by serviceId. A mapping to an entity without an
// integration key gets the service's Backstage integration key, creating the
// integration only when the service has none (under a lock shared by replicas, so never
// twice).
func (h *mappingHandlers) putMapping(w http.ResponseWriter, r *http.Request) {
	var in mappingRequest
	if !mappingDecode(w, r, &in) {
		return
	}
	if strings.TrimSpace(in.ServiceID) == "" {
		mappingString(w, http.StatusBadRequest, "Bad Request: 'serviceId' must be provided as part of the request body")
		return
	}
	if in.EntityRef != "" {
		ref, err := mapping.NormalizeRef(in.EntityRef)
		if err != nil {
			mappingString(w, http.StatusBadRequest, "Bad Request: "+err.Error())
			return
		}
		in.EntityRef = ref
	}
	ctx := r.Context()
	old, err := h.deps.Store.ByService(ctx, in.ServiceID)
	if err != nil {
		h.storeFailed(w, "read mapping", err)
		return
	}
	if in.EntityRef != "" && in.IntegrationKey == "" {
		key, ok := h.backstageIntegration(w, r, in.Account, in.ServiceID)
		if !ok {
			return
		}
		in.IntegrationKey = key
	}
	m, err := h.deps.Store.Put(ctx, mapping.Mapping{ServiceID: in.ServiceID, IntegrationKey: in.IntegrationKey, EntityRef: in.EntityRef, Account: in.Account})
	if err != nil {
		h.storeFailed(w, "store mapping", err)
		return
	}
	if h.deps.Changed != nil {
		refs := []string{}
		for _, ref := range []string{m.EntityRef, refOf(old)} {
			if ref != "" && !slices.Contains(refs, ref) {
				refs = append(refs, ref)
			}
		}
		if len(refs) > 0 {
			h.deps.Changed(ctx, refs...)
		}
	}
	writeJSON(w, http.StatusOK, mappingResponse{ID: m.ID, EntityRef: m.EntityRef, IntegrationKey: m.IntegrationKey, ServiceID: m.ServiceID, Status: in.Status, Account: m.Account})
}

func refOf(m *mapping.Mapping) string {
	if m == nil {
		return ""
	}
	return m.EntityRef
}

// backstageIntegration returns the key of the service's Backstage (PRO19CT)
// integration, creating it if the service has none.
func (h *mappingHandlers) backstageIntegration(w http.ResponseWriter, r *http.Request, account, serviceID string) (string, bool) {
	c, ok := h.client(w, account)
	if !ok {
		return "", false
	}
	ctx := r.Context()
	unlock, err := h.deps.Store.Lock(ctx, "integration."+c.Account()+"."+serviceID, integrationLockTTL)
	if err != nil {
		h.storeFailed(w, "lock integration", err)
		return "", false
	}
	defer unlock()
	svc, err := c.GetService(ctx, serviceID, "integrations")
	if err != nil {
		writeUpstreamError(w, err)
		return "", false
	}
	if key, ok := pagerduty.IntegrationKeyOf(svc, pagerduty.VendorBackstage); ok {
		return key, true
	}
	if h.cfg.ReadOnly {
		writeError(w, http.StatusForbidden, "READ_ONLY is set: the service has no Backstage integration and pdworker may not create one")
		return "", false
	}
	created, err := c.CreateIntegration(ctx, serviceID, pagerduty.Integration{
		Name:   "Backstage",
		Vendor: &pagerduty.APIObject{ID: pagerduty.VendorBackstage, Type: "vendor_reference"},
	})
	if err != nil {
		writeUpstreamError(w, err)
		return "", false
	}
	h.log.Info().Str("service_id", serviceID).Str("account", c.Account()).Msg("created the Backstage integration for a mapping")
	return created.IntegrationKey, true
}

// mappingListEntry is one element of R8's {"mappings":[…]}.
type mappingListEntry struct {
	EntityRef        string `json:"entityRef"`
	EntityName       string `json:"entityName"`
	IntegrationKey   string `json:"integrationKey"`
	ServiceID        string `json:"serviceId"`
	Status           string `json:"status"`
	ServiceName      string `json:"serviceName"`
	Team             string `json:"team"`
	EscalationPolicy string `json:"escalationPolicy"`
	ServiceURL       string `json:"serviceUrl"`
	Account          string `json:"account"`
}

type listedService struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	HTMLURL          string `json:"html_url"`
	EscalationPolicy *struct {
		Name    string `json:"name"`
		Summary string `json:"summary"`
	} `json:"escalation_policy"`
	Teams []struct {
		Name    string `json:"name"`
		Summary string `json:"summary"`
	} `json:"teams"`
	Integrations []struct {
		IntegrationKey string `json:"integration_key"`
		Vendor         *struct {
			ID string `json:"id"`
		} `json:"vendor"`
	} `json:"integrations"`
}

// listMappings serves R8: every service of every account with its mapping status
// (InSync, OutOfSync, NotMapped), sorted by service name. Entity data comes from the
// snapshots the catalog consumers keep, not from a catalog scan.
func (h *mappingHandlers) listMappings(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	view, err := h.deps.Store.View(ctx)
	if err != nil {
		h.storeFailed(w, "read mappings", err)
		return
	}
	// The catalog's own view: service → annotated entity, ignoring explicit mappings.
	annotated := map[string]string{}
	for _, e := range view.Entities {
		if e.ServiceID != "" {
			if cur, ok := annotated[e.ServiceID]; !ok || e.Ref < cur {
				annotated[e.ServiceID] = e.Ref
			}
		}
	}
	out := []mappingListEntry{}
	if h.deps.Accounts == nil {
		writeJSON(w, http.StatusOK, map[string][]mappingListEntry{"mappings": out})
		return
	}
	for _, c := range h.deps.Accounts.All() {
		raws, err := c.ListServicesJSON(ctx)
		if err != nil {
			writeUpstreamError(w, err)
			return
		}
		for _, raw := range raws {
			var s listedService
			if json.Unmarshal(raw, &s) != nil {
				continue
			}
			out = append(out, h.listEntry(view, annotated, c.Account(), s))
		}
	}
	slices.SortStableFunc(out, func(a, b mappingListEntry) int { return strings.Compare(a.ServiceName, b.ServiceName) })
	writeJSON(w, http.StatusOK, map[string][]mappingListEntry{"mappings": out})
}

func (h *mappingHandlers) listEntry(view *mapping.View, annotated map[string]string, account string, s listedService) mappingListEntry {
	e := mappingListEntry{ServiceID: s.ID, ServiceName: s.Name, ServiceURL: s.HTMLURL, Account: account, Status: "NotMapped"}
	if s.EscalationPolicy != nil {
		e.EscalationPolicy = mappingOr(s.EscalationPolicy.Name, s.EscalationPolicy.Summary)
	}
	if len(s.Teams) > 0 {
		e.Team = mappingOr(s.Teams[0].Name, s.Teams[0].Summary)
	}
	name := func(ref string) string {
		_, _, n := mapping.SplitRef(ref)
		return n
	}
	catalogRef := annotated[s.ID]
	if m, ok := view.Mappings[s.ID]; ok {
		e.IntegrationKey = m.IntegrationKey
		switch {
		case m.EntityRef == "": // explicitly unmapped: NotMapped, whatever the catalog says
		case m.EntityRef == catalogRef:
			e.Status, e.EntityRef, e.EntityName = "InSync", m.EntityRef, name(m.EntityRef)
		default:
			e.Status, e.EntityRef, e.EntityName = "OutOfSync", m.EntityRef, name(m.EntityRef)
		}
		return e
	}
	for _, in := range s.Integrations {
		if in.Vendor != nil && in.Vendor.ID == pagerduty.VendorBackstage {
			e.IntegrationKey = in.IntegrationKey
			break
		}
	}
	if catalogRef != "" {
		e.Status, e.EntityRef, e.EntityName = "InSync", catalogRef, name(catalogRef)
	}
	return e
}

func mappingOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// getSetting serves R6: the raw row, or 404 {}.
func (h *mappingHandlers) getSetting(w http.ResponseWriter, r *http.Request) {
	st, err := h.deps.Store.Setting(r.Context(), r.PathValue("settingId"))
	if err != nil {
		h.storeFailed(w, "read setting", err)
		return
	}
	if st == nil {
		writeJSON(w, http.StatusNotFound, struct{}{})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// putSettings serves R5: a JSON array of {id, value}. Every element is checked before
// anything is written, so a bad element changes nothing.
func (h *mappingHandlers) putSettings(w http.ResponseWriter, r *http.Request) {
	var in []struct {
		ID    string `json:"id"`
		Value string `json:"value"`
	}
	if !mappingDecode(w, r, &in) {
		return
	}
	if len(in) == 0 {
		mappingString(w, http.StatusBadRequest, "Bad Request: the body must be a non-empty array of {id, value}")
		return
	}
	for _, s := range in {
		if s.ID == "" {
			mappingString(w, http.StatusBadRequest, "Bad Request: 'id' is required")
			return
		}
		if s.ID == mapping.SettingDependencySyncStrategy && !mapping.ValidStrategy(s.Value) {
			mappingString(w, http.StatusBadRequest, "Bad Request: Invalid value for setting 'settings::service-dependency-sync-strategy'. Valid values are 'backstage', 'pagerduty', 'both' or 'disabled'.")
			return
		}
	}
	for _, s := range in {
		if _, err := h.deps.Store.PutSetting(r.Context(), s.ID, s.Value); err != nil {
			h.storeFailed(w, "store setting", err)
			return
		}
	}
	mappingOK(w)
}

// listDependencies serves R3: PagerDuty's relationships passed through.
func (h *mappingHandlers) listDependencies(w http.ResponseWriter, r *http.Request) {
	c, ok := h.client(w, r.URL.Query().Get("account"))
	if !ok {
		return
	}
	deps, err := c.ServiceDependencies(r.Context(), r.PathValue("serviceId"))
	if err != nil {
		writeUpstreamError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]pagerduty.Dependency{"relationships": deps})
}

// writeDependencies serves R1 (DELETE) and R2 (POST): the body is a JSON array of
// supporting service ids that :serviceId depends on; the write goes to ?account=.
func (h *mappingHandlers) writeDependencies(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("serviceId")
	var ids []string
	if !mappingDecode(w, r, &ids) {
		return
	}
	if len(ids) == 0 || slices.Contains(ids, "") {
		mappingString(w, http.StatusBadRequest, "Bad Request: the body must be a non-empty array of service ids")
		return
	}
	if h.cfg.ReadOnly {
		writeError(w, http.StatusForbidden, "READ_ONLY is set: dependency writes to PagerDuty are refused")
		return
	}
	c, ok := h.client(w, r.URL.Query().Get("account"))
	if !ok {
		return
	}
	rels := make([]pagerduty.Dependency, 0, len(ids))
	for _, sup := range ids {
		rels = append(rels, pagerduty.ServiceDependency(id, sup))
	}
	var err error
	if r.Method == http.MethodDelete {
		_, err = c.DisassociateDependencies(r.Context(), rels)
	} else {
		_, err = c.AssociateDependencies(r.Context(), rels)
	}
	if err != nil {
		writeUpstreamError(w, err)
		return
	}
	mappingOK(w)
}

// catalogServiceID serves R4: the entity's effective PagerDuty service id as a bare
// JSON string, an empty 200 body when it has none, and 404 when the entity is unknown.
func (h *mappingHandlers) catalogServiceID(w http.ResponseWriter, r *http.Request) {
	ref, err := pathRef(r)
	if err != nil {
		mappingString(w, http.StatusBadRequest, "Bad Request: "+err.Error())
		return
	}
	view, err := h.deps.Store.View(r.Context())
	if err != nil {
		h.storeFailed(w, "read mappings", err)
		return
	}
	b, mapped := view.Binding(ref)
	if _, known := view.Entities[ref]; !known && !mapped {
		mappingString(w, http.StatusNotFound, fmt.Sprintf("Entity %s not found.", ref))
		return
	}
	if !mapped {
		w.WriteHeader(http.StatusOK)
		return
	}
	mappingString(w, http.StatusOK, b.ServiceID)
}

// mappingDecode reads a JSON body into v; on failure it answers 413 or a 400 JSON string
// and returns false.
func mappingDecode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if !writeTooLarge(w, err) {
			mappingString(w, http.StatusBadRequest, "Bad Request: cannot read the body")
		}
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		mappingString(w, http.StatusBadRequest, "Bad Request: invalid JSON body: "+err.Error())
		return false
	}
	return true
}
