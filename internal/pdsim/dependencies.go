package pdsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Service dependencies, as PagerDuty serves them
// (/service_dependencies/associate, /disassociate, /technical_services/{id}).
//
// Semantics chosen where PagerDuty documents none:
//   - A batch is applied as a whole: if any relationship is refused, nothing changes.
//   - Requests name technical services "service" (the *_reference answer types are
//     tolerated too); answers name them "technical_service_reference".
//     "business_service" never matches: the simulator has no business services, so it
//     gets 404 like an unknown id.
//   - Associating an existing dependency is idempotent: 200 with the existing
//     relationship (same id). Disassociating a missing one is ignored, and the answer
//     lists only what was removed.
//   - A dependency that would close a cycle (including a service on itself) is 400,
//     code 2002 "Arguments Caused Error", "Adding these service relationships will
//     cause a circular dependency".
//   - A service depends on at most DependencyLimit services; one more is 400, code
//     2001. The depth limit (100) is not modelled.
//   - Unknown service ids are 404 (code 2100). Deleting a service does not remove its
//     dependencies from the graph, but reads skip those whose services are gone.

// DependencyLimit is the most services one service may depend on.
const DependencyLimit = 2000

const (
	codeArgumentsError = 2002
	msgArgumentsError  = "Arguments Caused Error"
	errCycle           = "Adding these service relationships will cause a circular dependency"
	errLimit           = "A service may not have more than 2000 dependencies"
	typeTechnicalRef   = "technical_service_reference"
)

// dependencyGraph holds an account's dependencies; callers hold the account's mu.
type dependencyGraph struct {
	// supports[dependent] = set of supporting services.
	supports map[string]map[string]bool
	// dependents[supporting] = set of dependent services.
	dependents map[string]map[string]bool
}

func (a *account) depGraph() *dependencyGraph {
	if a.deps == nil {
		a.deps = &dependencyGraph{supports: map[string]map[string]bool{}, dependents: map[string]map[string]bool{}}
	}
	return a.deps
}

func (g *dependencyGraph) has(dependent, supporting string) bool {
	return g.supports[dependent][supporting]
}

func (g *dependencyGraph) add(dependent, supporting string) {
	if g.supports[dependent] == nil {
		g.supports[dependent] = map[string]bool{}
	}
	if g.dependents[supporting] == nil {
		g.dependents[supporting] = map[string]bool{}
	}
	g.supports[dependent][supporting] = true
	g.dependents[supporting][dependent] = true
}

func (g *dependencyGraph) remove(dependent, supporting string) {
	delete(g.supports[dependent], supporting)
	delete(g.dependents[supporting], dependent)
}

// reaches reports whether from depends, directly or not, on to.
func (g *dependencyGraph) reaches(from, to string) bool {
	seen := map[string]bool{from: true}
	stack := []string{from}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == to {
			return true
		}
		for next := range g.supports[n] {
			if !seen[next] {
				seen[next] = true
				stack = append(stack, next)
			}
		}
	}
	return false
}

type depRef struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

type relationship struct {
	ID         string `json:"id,omitempty"`
	Type       string `json:"type,omitempty"`
	Supporting depRef `json:"supporting_service"`
	Dependent  depRef `json:"dependent_service"`
}

func relationshipID(dependent, supporting string) string {
	sum := sha256.Sum256([]byte(dependent + "\x00" + supporting))
	return "D" + strings.ToUpper(hex.EncodeToString(sum[:]))[:13]
}

func renderRelationship(dependent, supporting string) relationship {
	return relationship{
		ID: relationshipID(dependent, supporting), Type: "service_dependency",
		Supporting: depRef{ID: supporting, Type: typeTechnicalRef},
		Dependent:  depRef{ID: dependent, Type: typeTechnicalRef},
	}
}

func (s *Sim) dependencyRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /service_dependencies/associate", withRelationships(s.handleAssociate))
	m.HandleFunc("POST /service_dependencies/disassociate", withRelationships(s.handleDisassociate))
	m.HandleFunc("GET /service_dependencies/technical_services/{id}", withObject(servicesOf, "", s.handleListDependencies))
	m.HandleFunc("GET /service_dependencies/business_services/{id}", func(w http.ResponseWriter, _ *http.Request) {
		writeNotFound(w)
	})
}

// withRelationships serves a batch of relationships: it reads {"relationships":[…]}
// before taking the account's lock, then, with the account locked, checks every
// service named and runs h on the account's dependency graph.
func withRelationships(h func(w http.ResponseWriter, g *dependencyGraph, rels []relationship)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rels, aerr := decodeRelationships(r)
		if aerr != nil {
			writeAPIError(w, aerr)
			return
		}
		a := accountFrom(r.Context())
		a.mu.Lock()
		defer a.mu.Unlock()
		if aerr := a.checkRelationships(rels); aerr != nil {
			writeAPIError(w, aerr)
			return
		}
		h(w, a.depGraph(), rels)
	}
}

// decodeRelationships reads a non-empty {"relationships":[…]} body.
func decodeRelationships(r *http.Request) ([]relationship, *apiError) {
	body, aerr := readBody(r)
	if aerr != nil {
		return nil, aerr
	}
	var in struct {
		Relationships []relationship `json:"relationships"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, invalidInput("Request body is not valid JSON.")
	}
	if len(in.Relationships) == 0 {
		return nil, invalidInput("relationships must be a non-empty array.")
	}
	return in.Relationships, nil
}

// checkRelationships checks both sides of every relationship: a technical service of
// the account. Callers hold a.mu.
func (a *account) checkRelationships(rels []relationship) *apiError {
	for _, rel := range rels {
		for _, side := range []depRef{rel.Supporting, rel.Dependent} {
			if side.ID == "" || side.Type == "" {
				return invalidInput("Each relationship needs supporting_service and dependent_service with id and type.")
			}
			switch side.Type {
			case "service", typeTechnicalRef:
			case "business_service", "business_service_reference":
				return notFound()
			default:
				return invalidInput("type must be service or business_service.")
			}
			if a.services[side.ID] == nil {
				return notFound()
			}
		}
	}
	return nil
}

// handleAssociate serves POST /service_dependencies/associate.
func (s *Sim) handleAssociate(w http.ResponseWriter, g *dependencyGraph, rels []relationship) {
	var added [][2]string
	undo := func() {
		for _, e := range added {
			g.remove(e[0], e[1])
		}
	}
	out := make([]relationship, 0, len(rels))
	for _, rel := range rels {
		d, sup := rel.Dependent.ID, rel.Supporting.ID
		if !g.has(d, sup) {
			if d == sup || g.reaches(sup, d) {
				undo()
				writeAPIError(w, &apiError{Status: http.StatusBadRequest, Message: msgArgumentsError, Code: codeArgumentsError, Errors: []string{errCycle}})
				return
			}
			if len(g.supports[d]) >= DependencyLimit {
				undo()
				writeAPIError(w, invalidInput(errLimit))
				return
			}
			g.add(d, sup)
			added = append(added, [2]string{d, sup})
		}
		out = append(out, renderRelationship(d, sup))
	}
	writeJSON(w, http.StatusOK, map[string][]relationship{"relationships": out})
}

// handleDisassociate serves POST /service_dependencies/disassociate.
func (s *Sim) handleDisassociate(w http.ResponseWriter, g *dependencyGraph, rels []relationship) {
	out := []relationship{}
	for _, rel := range rels {
		d, sup := rel.Dependent.ID, rel.Supporting.ID
		if g.has(d, sup) {
			g.remove(d, sup)
			out = append(out, renderRelationship(d, sup))
		}
	}
	writeJSON(w, http.StatusOK, map[string][]relationship{"relationships": out})
}

// handleListDependencies serves GET /service_dependencies/technical_services/{id}: the
// service's dependencies in both directions, skipping services that are gone.
func (s *Sim) handleListDependencies(w http.ResponseWriter, _ *http.Request, a *account, svc *service, _ map[string]json.RawMessage) {
	id := svc.id
	g := a.depGraph()
	out := []relationship{}
	for _, sup := range slices.Sorted(maps.Keys(g.supports[id])) {
		if a.services[sup] != nil {
			out = append(out, renderRelationship(id, sup))
		}
	}
	for _, dep := range slices.Sorted(maps.Keys(g.dependents[id])) {
		if a.services[dep] != nil {
			out = append(out, renderRelationship(dep, id))
		}
	}
	writeJSON(w, http.StatusOK, map[string][]relationship{"relationships": out})
}

// DependencyState is one dependency for assertions: Dependent depends on Supporting.
type DependencyState struct {
	Dependent  string `json:"dependent"`
	Supporting string `json:"supporting"`
}

// Dependencies returns an account's dependencies between existing services, sorted by
// dependent then supporting; nil for an unknown account.
func (s *Sim) Dependencies(account string) []DependencyState {
	a := s.account(account)
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []DependencyState{}
	g := a.depGraph()
	for _, d := range slices.Sorted(maps.Keys(g.supports)) {
		if a.services[d] == nil {
			continue
		}
		for _, sup := range slices.Sorted(maps.Keys(g.supports[d])) {
			if a.services[sup] != nil {
				out = append(out, DependencyState{Dependent: d, Supporting: sup})
			}
		}
	}
	return out
}
