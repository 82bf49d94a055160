package pdsim_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

// TestSeededIncidents loads incidents of any age through the incident model: numbered
// in creation order, with their seeded status, and refused when inconsistent.
func TestSeededIncidents(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	account := func(incidents ...pdsim.IncidentSeed) pdsim.AccountSeed {
		return pdsim.AccountSeed{
			ID: "x", Tokens: []string{"x-token"},
			EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PEPX001", Name: "X"}},
			Services:           []pdsim.ServiceSeed{{ID: "PSVCX01", Name: "X", EscalationPolicyID: "PEPX001"}},
			Card:               &pdsim.CardSeed{Incidents: incidents},
		}
	}

	t.Run("loaded oldest first", func(t *testing.T) {
		sim := pdsim.New(pdsim.Options{})
		require.NoError(t, sim.AddAccount(account(
			pdsim.IncidentSeed{ID: "PINCX02", ServiceID: "PSVCX01", Title: "recent", Status: pdsim.IncidentResolved, CreatedAt: now.AddDate(0, 0, -1)},
			pdsim.IncidentSeed{ID: "PINCX01", ServiceID: "PSVCX01", Title: "old", Urgency: "low", CreatedAt: now.AddDate(0, -2, 0)},
		)))
		got := sim.Incidents("x")
		require.Len(t, got, 2)
		assert.Equal(t, "PINCX01", got[0].ID)
		assert.Equal(t, 1, got[0].Number)
		assert.Equal(t, pdsim.IncidentTriggered, got[0].Status)
		assert.Equal(t, "low", got[0].Urgency)
		assert.Equal(t, now.AddDate(0, -2, 0), got[0].CreatedAt)
		assert.Equal(t, []string{"UEPX001"}, got[0].AssigneeIDs)
		assert.NotEmpty(t, got[0].IncidentKey, "a key is generated")
		assert.Equal(t, "PINCX02", got[1].ID)
		assert.Equal(t, pdsim.IncidentResolved, got[1].Status)
		require.NotNil(t, got[1].ResolvedAt)
		assert.Empty(t, got[1].AssigneeIDs)
	})

	tests := []struct {
		name    string
		seed    pdsim.IncidentSeed
		wantErr string
	}{
		{"unknown service", pdsim.IncidentSeed{ServiceID: "PNOSUCH", Title: "t", CreatedAt: now}, "not found"},
		{"no title", pdsim.IncidentSeed{ServiceID: "PSVCX01", CreatedAt: now}, "title"},
		{"bad status", pdsim.IncidentSeed{ServiceID: "PSVCX01", Title: "t", Status: "open", CreatedAt: now}, "status"},
		{"bad urgency", pdsim.IncidentSeed{ServiceID: "PSVCX01", Title: "t", Urgency: "urgent", CreatedAt: now}, "urgency"},
		{"no creation time", pdsim.IncidentSeed{ServiceID: "PSVCX01", Title: "t"}, "created_at"},
		{"id in use", pdsim.IncidentSeed{ID: "PEPX001", ServiceID: "PSVCX01", Title: "t", CreatedAt: now}, "already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := pdsim.New(pdsim.Options{})
			assert.ErrorContains(t, sim.AddAccount(account(tt.seed)), tt.wantErr)
			assert.Nil(t, sim.Incidents("x"))
		})
	}
}
