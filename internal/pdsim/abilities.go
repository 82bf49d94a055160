package pdsim

import (
	"net/http"
	"slices"
)

// handleListAbilities serves GET /abilities.
func (s *Sim) handleListAbilities(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	writeJSON(w, http.StatusOK, map[string][]string{"abilities": slices.Clone(a.abilities)})
}

// handleTestAbility serves GET /abilities/{name}: 204 when the account has the ability,
// 402/2014 when it lacks a known one, 404 for a name PagerDuty does not know.
func (s *Sim) handleTestAbility(w http.ResponseWriter, r *http.Request) {
	a := accountFrom(r.Context())
	name := r.PathValue("name")
	switch {
	case a.hasAbility(name):
		w.WriteHeader(http.StatusNoContent)
	case slices.Contains(knownAbilities(), name):
		writeError(w, http.StatusPaymentRequired, codeMissingAbility, msgMissingAbility)
	default:
		writeNotFound(w)
	}
}
