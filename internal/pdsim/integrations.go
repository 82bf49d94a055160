package pdsim

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// VendorBackstage is the PagerDuty vendor ID of the Backstage integration.
const VendorBackstage = "PRO19CT"

// vendor is an integration vendor the simulator knows.
type vendor struct {
	name string
	// integrationType is the type an integration created with this vendor gets.
	integrationType string
}

var vendors = map[string]vendor{
	VendorBackstage: {name: "Backstage", integrationType: "app_event_transform_inbound_integration"},
}

// integrationTypes are the types accepted on a create without a vendor.
var integrationTypes = []string{
	"events_api_v2_inbound_integration", "generic_events_api_inbound_integration", "events_api_inbound_integration",
}

// integration is an inbound integration of a service; every type the simulator makes
// has a routing key.
type integration struct {
	id, name, typ, vendorID, key string
	createdAt                    time.Time
}

type integrationJSON struct {
	ID             string     `json:"id"`
	Type           string     `json:"type"`
	Summary        string     `json:"summary"`
	Self           string     `json:"self"`
	HTMLURL        string     `json:"html_url"`
	Name           string     `json:"name"`
	Service        reference  `json:"service"`
	CreatedAt      string     `json:"created_at"`
	Vendor         *reference `json:"vendor"`
	IntegrationKey string     `json:"integration_key"`
}

// handleCreateIntegration serves POST /services/{id}/integrations. With a vendor the
// type follows from it (no `type` needed); without one, `type` must be an Events API
// inbound type. The answer has a 32-character integration_key.
func (s *Sim) handleCreateIntegration(w http.ResponseWriter, r *http.Request, a *account, svc *service, in map[string]json.RawMessage) {
	var body struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		Vendor *struct {
			ID string `json:"id"`
		} `json:"vendor"`
	}
	raw, _ := json.Marshal(in)
	if json.Unmarshal(raw, &body) != nil {
		writeAPIError(w, invalidInput("Integration is invalid."))
		return
	}
	it := &integration{name: body.Name, typ: body.Type, createdAt: s.now().UTC()}
	switch {
	case body.Vendor != nil && body.Vendor.ID != "":
		v, ok := vendors[body.Vendor.ID]
		if !ok {
			writeAPIError(w, invalidInput("Vendor not found"))
			return
		}
		it.vendorID, it.typ, it.name = body.Vendor.ID, v.integrationType, cmp.Or(body.Name, v.name)
	case slices.Contains(integrationTypes, body.Type):
		it.name = cmp.Or(body.Name, "Events API V2")
	default:
		writeAPIError(w, invalidInput("Type must be one of "+strings.Join(integrationTypes, ", ")+", or a vendor must be given"))
		return
	}
	it.id, it.key = s.ids.objectID(), s.ids.integrationKey()
	svc.integrations = append(svc.integrations, it)
	writeJSON(w, http.StatusCreated, map[string]integrationJSON{"integration": a.renderIntegration(baseURL(r), svc, it)})
}

// handleGetIntegration serves GET /services/{id}/integrations/{iid}.
func (s *Sim) handleGetIntegration(w http.ResponseWriter, r *http.Request, a *account, svc *service, _ map[string]json.RawMessage) {
	i := slices.IndexFunc(svc.integrations, func(it *integration) bool { return it.id == r.PathValue("iid") })
	if i < 0 {
		writeNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]integrationJSON{"integration": a.renderIntegration(baseURL(r), svc, svc.integrations[i])})
}

func (a *account) integrationReference(base string, svc *service, it *integration) reference {
	return reference{
		ID: it.id, Type: it.typ + "_reference", Summary: it.name,
		Self:    base + "/services/" + svc.id + "/integrations/" + it.id,
		HTMLURL: a.webURL("/services/" + svc.id + "/integrations/" + it.id),
	}
}

// renderIntegration renders a full integration; callers hold a.mu.
func (a *account) renderIntegration(base string, svc *service, it *integration) integrationJSON {
	ref := a.integrationReference(base, svc, it)
	out := integrationJSON{
		ID: it.id, Type: it.typ, Summary: it.name, Self: ref.Self, HTMLURL: ref.HTMLURL, Name: it.name,
		Service: a.serviceReference(base, svc), CreatedAt: timestamp(it.createdAt), IntegrationKey: it.key,
	}
	if v, ok := vendors[it.vendorID]; ok {
		out.Vendor = &reference{ID: it.vendorID, Type: "vendor_reference", Summary: v.name, Self: base + "/vendors/" + it.vendorID}
	}
	return out
}
