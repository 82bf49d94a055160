package pdsim

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// escalationPolicy is a seeded escalation policy; the simulator has no endpoint that
// changes them.
type escalationPolicy struct {
	id, name, description string
	seq                   int64
}

// reference is PagerDuty's `*_reference` object.
type reference struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Summary string `json:"summary,omitempty"`
	Self    string `json:"self,omitempty"`
	HTMLURL string `json:"html_url,omitempty"`
}

type escalationPolicyJSON struct {
	ID                         string      `json:"id"`
	Type                       string      `json:"type"`
	Summary                    string      `json:"summary"`
	Self                       string      `json:"self"`
	HTMLURL                    string      `json:"html_url"`
	Name                       string      `json:"name"`
	Description                string      `json:"description"`
	NumLoops                   int         `json:"num_loops"`
	OnCallHandoffNotifications string      `json:"on_call_handoff_notifications"`
	EscalationRules            []any       `json:"escalation_rules"`
	Services                   []reference `json:"services"`
	Teams                      []reference `json:"teams"`
}

// baseURL is the simulator's own address as the client reached it, for `self` links.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (a *account) epReference(base string, ep *escalationPolicy) reference {
	return reference{
		ID: ep.id, Type: "escalation_policy_reference", Summary: ep.name,
		Self: base + "/escalation_policies/" + ep.id, HTMLURL: a.webURL("/escalation_policies/" + ep.id),
	}
}

// renderEP renders an escalation policy with references to the services using it;
// callers hold a.mu and pass services grouped by policy ID.
func (a *account) renderEP(base string, ep *escalationPolicy, byEP map[string][]*service) escalationPolicyJSON {
	ref := a.epReference(base, ep)
	out := escalationPolicyJSON{
		ID: ep.id, Type: "escalation_policy", Summary: ep.name, Self: ref.Self, HTMLURL: ref.HTMLURL,
		Name: ep.name, Description: ep.description, OnCallHandoffNotifications: "if_has_services",
		EscalationRules: []any{}, Services: []reference{}, Teams: []reference{},
	}
	for _, svc := range byEP[ep.id] {
		out.Services = append(out.Services, a.serviceReference(base, svc))
	}
	return out
}

// servicesByEP groups services by escalation policy, in creation order; callers hold a.mu.
func (a *account) servicesByEP() map[string][]*service {
	out := map[string][]*service{}
	for _, svc := range sortedBySeq(a.services) {
		out[svc.epID] = append(out[svc.epID], svc)
	}
	return out
}

// handleListEscalationPolicies serves GET /escalation_policies: `query` matches a
// case-insensitive substring of the name; sort_by is name (default) or name:desc.
func (s *Sim) handleListEscalationPolicies(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	q := r.URL.Query()
	p, desc, perr := parseNameSortedPage(q)
	if perr != nil {
		writeAPIError(w, perr)
		return
	}
	needle := strings.ToLower(q.Get("query"))

	a.mu.Lock()
	defer a.mu.Unlock()
	var eps []*escalationPolicy
	for _, ep := range a.eps {
		if strings.Contains(strings.ToLower(ep.name), needle) {
			eps = append(eps, ep)
		}
	}
	sortByName(eps, func(ep *escalationPolicy) (string, string) { return ep.name, ep.id }, desc)
	byEP := a.servicesByEP()
	base := baseURL(r)
	out, info := pageOf(p, eps, func(ep *escalationPolicy) escalationPolicyJSON { return a.renderEP(base, ep, byEP) })
	writeJSON(w, http.StatusOK, struct {
		EscalationPolicies []escalationPolicyJSON `json:"escalation_policies"`
		pageInfo
	}{out, info})
}

// handleGetEscalationPolicy serves GET /escalation_policies/{id}.
func (s *Sim) handleGetEscalationPolicy(w http.ResponseWriter, r *http.Request, a *account, ep *escalationPolicy, _ map[string]json.RawMessage) {
	writeJSON(w, http.StatusOK, map[string]escalationPolicyJSON{"escalation_policy": a.renderEP(baseURL(r), ep, a.servicesByEP())})
}

// sortedBySeq returns a map's values in creation order.
func sortedBySeq[T interface{ order() int64 }](m map[string]T) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(x, y T) int { return cmp.Compare(x.order(), y.order()) })
	return out
}

func (ep *escalationPolicy) order() int64 { return ep.seq }
