package pdsim

import (
	"slices"
	"time"
)

// ServiceState is a copy of a service for assertions.
type ServiceState struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	Description        string `json:"description,omitempty"`
	EscalationPolicyID string `json:"escalation_policy_id"`
	Status             string `json:"status"`
	AlertCreation      string `json:"alert_creation"`
	// AlertGroupingParameters are the service's own parameters; nil when grouping is
	// off or comes from an alert grouping setting.
	AlertGroupingParameters *GroupingParameters `json:"alert_grouping_parameters,omitempty"`
	// AlertGroupingSettingID is the setting the service belongs to, or "".
	AlertGroupingSettingID string             `json:"alert_grouping_setting_id,omitempty"`
	Integrations           []IntegrationState `json:"integrations"`
	CreatedAt              time.Time          `json:"created_at"`
	UpdatedAt              time.Time          `json:"updated_at"`
}

// IntegrationState is a copy of an integration for assertions.
type IntegrationState struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Type           string    `json:"type"`
	VendorID       string    `json:"vendor_id,omitempty"`
	IntegrationKey string    `json:"integration_key"`
	CreatedAt      time.Time `json:"created_at"`
}

// AlertGroupingSettingState is a copy of an alert grouping setting for assertions.
type AlertGroupingSettingState struct {
	ID          string         `json:"id"`
	Name        string         `json:"name,omitempty"`
	Description string         `json:"description,omitempty"`
	Type        string         `json:"type"`
	Config      GroupingConfig `json:"config"`
	ServiceIDs  []string       `json:"service_ids"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
}

// Services returns copies of an account's services in creation order; nil for an
// unknown account.
func (s *Sim) Services(account string) []ServiceState {
	a := s.account(account)
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.serviceStates()
}

// AlertGroupingSettings returns copies of an account's alert grouping settings in
// creation order; nil for an unknown account.
func (s *Sim) AlertGroupingSettings(account string) []AlertGroupingSettingState {
	a := s.account(account)
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.settingStates()
}

// serviceStates copies the services; callers hold a.mu.
func (a *account) serviceStates() []ServiceState {
	out := []ServiceState{}
	for _, svc := range sortedBySeq(a.services) {
		st := ServiceState{
			ID: svc.id, Name: svc.name, Description: svc.description, EscalationPolicyID: svc.epID,
			Status: svc.status, AlertCreation: svc.alertCreation,
			AlertGroupingParameters: svc.grouping.clone(), AlertGroupingSettingID: svc.settingID,
			Integrations: []IntegrationState{}, CreatedAt: svc.createdAt, UpdatedAt: svc.updatedAt,
		}
		for _, it := range svc.integrations {
			st.Integrations = append(st.Integrations, IntegrationState{
				ID: it.id, Name: it.name, Type: it.typ, VendorID: it.vendorID, IntegrationKey: it.key, CreatedAt: it.createdAt,
			})
		}
		out = append(out, st)
	}
	return out
}

// settingStates copies the settings; callers hold a.mu.
func (a *account) settingStates() []AlertGroupingSettingState {
	out := []AlertGroupingSettingState{}
	for _, gs := range sortedBySeq(a.settings) {
		out = append(out, AlertGroupingSettingState{
			ID: gs.id, Name: deref(gs.name), Description: deref(gs.description), Type: gs.typ,
			Config: *gs.config.clone(), ServiceIDs: slices.Clone(gs.serviceIDs),
			CreatedAt: gs.createdAt, UpdatedAt: gs.updatedAt,
		})
	}
	return out
}

// accountState is one account in GET /_sim/state. Credentials are left out.
type accountState struct {
	ID                       string                      `json:"id"`
	Subdomain                string                      `json:"subdomain"`
	Region                   string                      `json:"region"`
	Abilities                []string                    `json:"abilities"`
	AlertGroupingSettingsAPI bool                        `json:"alert_grouping_settings_api"`
	EmptySettingsList404     bool                        `json:"empty_settings_list_404,omitempty"`
	EscalationPolicies       []EscalationPolicySeed      `json:"escalation_policies"`
	Services                 []ServiceState              `json:"services"`
	AlertGroupingSettings    []AlertGroupingSettingState `json:"alert_grouping_settings"`
}

func (a *account) state() accountState {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := accountState{
		ID: a.id, Subdomain: a.subdomain, Region: a.region, Abilities: slices.Clone(a.abilities),
		AlertGroupingSettingsAPI: a.settingsAPI, EmptySettingsList404: a.settingsList404,
		EscalationPolicies: []EscalationPolicySeed{},
		Services:           a.serviceStates(), AlertGroupingSettings: a.settingStates(),
	}
	for _, ep := range sortedBySeq(a.eps) {
		st.EscalationPolicies = append(st.EscalationPolicies, EscalationPolicySeed{ID: ep.id, Name: ep.name, Description: ep.description})
	}
	return st
}
