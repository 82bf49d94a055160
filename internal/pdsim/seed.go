package pdsim

import (
	"fmt"
	"slices"
	"time"
)

// Seed is initial data for one or more accounts. It is what `pdsim --seed file.json`
// and `POST /_sim/seed` read.
type Seed struct {
	Accounts []AccountSeed `json:"accounts"`
}

// AccountSeed describes one PagerDuty account.
type AccountSeed struct {
	// ID names the account in the request log, in fault matching and in state queries.
	ID string `json:"id"`
	// Subdomain is the first label of <subdomain>.pagerduty.com; default ID.
	Subdomain string `json:"subdomain,omitempty"`
	// Region is "us" (default) or "eu"; it goes into the OAuth scope and html_url.
	Region string `json:"region,omitempty"`
	// Tokens are REST API tokens accepted as `Authorization: Token token=<t>`.
	Tokens []string `json:"tokens,omitempty"`
	// OAuthClients may obtain bearer tokens for this account from /oauth/token.
	OAuthClients []OAuthClient `json:"oauth_clients,omitempty"`
	// Abilities are what GET /abilities lists. Service-level alert grouping needs
	// preview_intelligent_alert_grouping and time_based_alert_grouping.
	Abilities []string `json:"abilities,omitempty"`
	// AlertGroupingSettingsAPI enables /alert_grouping_settings; when false every call
	// there answers 402/2014.
	AlertGroupingSettingsAPI bool `json:"alert_grouping_settings_api,omitempty"`
	// EmptySettingsList404 turns on a quirk PagerDuty has shown: a
	// GET /alert_grouping_settings filtered by service_ids[] that matches nothing
	// answers 404 with no body.
	EmptySettingsList404 bool                   `json:"empty_settings_list_404,omitempty"`
	EscalationPolicies   []EscalationPolicySeed `json:"escalation_policies,omitempty"`
	Services             []ServiceSeed          `json:"services,omitempty"`
	// Card holds users, on-calls, change events and metrics (card.go).
	Card *CardSeed `json:"card,omitempty"`
}

// OAuthClient is a scoped OAuth app's client-credentials pair.
type OAuthClient struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// EscalationPolicySeed is an escalation policy; an empty ID gets a generated one.
type EscalationPolicySeed struct {
	ID          string `json:"id,omitempty"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// ServiceSeed is a pre-existing service; an empty ID gets a generated one.
type ServiceSeed struct {
	ID                 string `json:"id,omitempty"`
	Name               string `json:"name"`
	Description        string `json:"description,omitempty"`
	EscalationPolicyID string `json:"escalation_policy_id"`
}

// Credentials of the demo accounts in DemoSeed. They are fixed so that demos and
// docs can quote them.
const (
	DemoAcmeToken         = "pdsim-acme-token"
	DemoGlobexToken       = "pdsim-globex-token"
	DemoAcmeOAuthClientID = "pdsim-acme-client"
	DemoAcmeOAuthSecret   = "pdsim-acme-secret"
	// LargeSeedToken is the API token of the account LargeSeed makes.
	LargeSeedToken = "pdsim-large-token"
)

// Ability names that gate service-level alert grouping.
const (
	AbilityIntelligentGrouping = "preview_intelligent_alert_grouping"
	AbilityTimeBasedGrouping   = "time_based_alert_grouping"
)

// StandardAbilities returns the abilities of an account without the AIOps add-on.
func StandardAbilities() []string {
	return []string{
		"manage_schedules", "read_only_users", "service_support_hours", "teams", "urgencies",
	}
}

// AIOpsAbilities returns the abilities of an account with the AIOps add-on: the
// standard ones plus the alert grouping and event intelligence ones.
func AIOpsAbilities() []string {
	out := append(StandardAbilities(),
		AbilityIntelligentGrouping, AbilityTimeBasedGrouping,
		"event_intelligence", "content_based_alert_grouping",
	)
	slices.Sort(out)
	return out
}

// knownAbilities are names GET /abilities/{name} recognises even when the account
// lacks them (402 rather than 404).
func knownAbilities() []string { return AIOpsAbilities() }

// DemoSeed returns two accounts: "acme" (US, AIOps abilities, alert grouping settings
// API, API token DemoAcmeToken and OAuth client DemoAcmeOAuthClientID) and "globex"
// (EU, standard abilities only, no settings API, API token DemoGlobexToken), each with
// three escalation policies and no services.
func DemoSeed() Seed {
	return Seed{Accounts: []AccountSeed{
		{
			ID: "acme", Subdomain: "acme", Region: "us",
			Tokens:                   []string{DemoAcmeToken},
			OAuthClients:             []OAuthClient{{ID: DemoAcmeOAuthClientID, Secret: DemoAcmeOAuthSecret}},
			Abilities:                AIOpsAbilities(),
			AlertGroupingSettingsAPI: true,
			EscalationPolicies: []EscalationPolicySeed{
				{ID: "PACME01", Name: "Platform On-Call", Description: "Platform team, follow the sun"},
				{ID: "PACME02", Name: "Payments Primary", Description: "Payments engineers, business hours first"},
				{ID: "PACME03", Name: "Data Infrastructure", Description: "Databases and streaming"},
			},
		},
		{
			ID: "globex", Subdomain: "globex", Region: "eu",
			Tokens:    []string{DemoGlobexToken},
			Abilities: StandardAbilities(),
			EscalationPolicies: []EscalationPolicySeed{
				{ID: "PGLBX01", Name: "Globex Operations"},
				{ID: "PGLBX02", Name: "Globex Web Team"},
				{ID: "PGLBX03", Name: "Globex Security"},
			},
		},
	}}
}

// DemoServiceID is the service DemoSeedWithCard gives account acme.
const DemoServiceID = "PPAYAPI"

// DemoSeedWithCard is DemoSeed plus, in acme, what the Backstage card shows: the
// service DemoServiceID ("Payments API", on "Payments Primary"), users on call at
// several levels of every policy, change events, incident metrics and incidents, one
// of them open for six weeks (times relative to now). `pdworker --simulate` loads it;
// DemoSeed itself stays without services or incidents.
func DemoSeedWithCard() Seed {
	seed := DemoSeed()
	acme := &seed.Accounts[0]
	acme.Services = append(acme.Services,
		ServiceSeed{ID: DemoServiceID, Name: "Payments API", Description: "Card payments and refunds", EscalationPolicyID: "PACME02"})
	acme.Card = demoCard(time.Now().UTC().Truncate(time.Minute))
	return seed
}

// demoCard is acme's card data in DemoSeedWithCard.
func demoCard(now time.Time) *CardSeed {
	users := []UserSeed{
		{ID: "PUADA01", Name: "Ada Lovelace", Email: "ada@acme.example"},
		{ID: "PUGRC01", Name: "Grace Hopper", Email: "grace@acme.example"},
		{ID: "PUALN01", Name: "Alan Turing", Email: "alan@acme.example"},
		{ID: "PUKAT01", Name: "Katherine Johnson", Email: "katherine@acme.example"},
	}
	deploy := func(id, summary string, ago time.Duration, build int) ChangeEventSeed {
		return ChangeEventSeed{ID: id, ServiceID: DemoServiceID, Summary: summary, Source: "github-actions", Timestamp: now.Add(-ago),
			Links: []Link{{Href: fmt.Sprintf("https://ci.acme.example/payments-api/builds/%d", build), Text: "build"}}}
	}
	return &CardSeed{
		Users: users,
		OnCalls: []OnCallSeed{
			{EscalationPolicyID: "PACME02", UserID: "PUKAT01", Level: 1},
			{EscalationPolicyID: "PACME02", UserID: "PUADA01", Level: 1},
			{EscalationPolicyID: "PACME02", UserID: "PUALN01", Level: 2},
			{EscalationPolicyID: "PACME02", UserID: "PUGRC01", Level: 3},
			{EscalationPolicyID: "PACME01", UserID: "PUGRC01", Level: 1},
			{EscalationPolicyID: "PACME01", UserID: "PUALN01", Level: 2},
			{EscalationPolicyID: "PACME03", UserID: "PUALN01", Level: 1},
		},
		ChangeEvents: []ChangeEventSeed{
			deploy("01DEMOCHANGE0000000000000001", "Deploy payments-api v2.14.0", 26*time.Hour, 1412),
			deploy("01DEMOCHANGE0000000000000002", "Deploy payments-api v2.14.1 (refund rounding fix)", 5*time.Hour, 1420),
			deploy("01DEMOCHANGE0000000000000003", "Feature flag instant-refunds on for 10% of merchants", 40*time.Minute, 1423),
		},
		Metrics: []ServiceMetricsSeed{{
			ServiceID: DemoServiceID, TotalIncidentCount: 7, TotalHighUrgencyIncidents: 3, TotalInterruptions: 11,
			MeanSecondsToResolve: 2640, MeanSecondsToFirstAck: 185,
		}},
		Incidents: []IncidentSeed{
			{ID: "PDEMOI1", ServiceID: DemoServiceID, Title: "Settlement file for EU merchants not delivered", Status: IncidentAcknowledged,
				Urgency: "low", IncidentKey: "demo-settlement-eu", CreatedAt: now.Add(-42 * 24 * time.Hour)},
			{ID: "PDEMOI2", ServiceID: DemoServiceID, Title: "Refund API p99 latency above 2s", IncidentKey: "demo-refund-latency", CreatedAt: now.Add(-35 * time.Minute)},
			{ID: "PDEMOI3", ServiceID: DemoServiceID, Title: "Card authorisations failing for one acquirer", Status: IncidentResolved,
				IncidentKey: "demo-acquirer", CreatedAt: now.Add(-9 * 24 * time.Hour)},
		},
	}
}

// LargeSeed returns one account, "large" (token LargeSeedToken, AIOps, settings API),
// with numEPs escalation policies named "Escalation Policy 00001"… and IDs
// "PE00001"…, for benchmarks of paginated reads.
func LargeSeed(numEPs int) Seed {
	eps := make([]EscalationPolicySeed, 0, numEPs)
	for i := 1; i <= numEPs; i++ {
		eps = append(eps, EscalationPolicySeed{ID: fmt.Sprintf("PE%05d", i), Name: fmt.Sprintf("Escalation Policy %05d", i)})
	}
	return Seed{Accounts: []AccountSeed{{
		ID: "large", Subdomain: "large", Region: "us",
		Tokens:                   []string{LargeSeedToken},
		Abilities:                AIOpsAbilities(),
		AlertGroupingSettingsAPI: true,
		EscalationPolicies:       eps,
	}}}
}
