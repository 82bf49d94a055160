package pagerduty

import "github.com/pdworker/pdworker/internal/secret"

// Default URLs of PagerDuty's US service region.
const (
	DefaultAPIURL        = "https://api.pagerduty.com"
	DefaultEventsURL     = "https://events.pagerduty.com"
	DefaultOAuthTokenURL = "https://identity.pagerduty.com/oauth/token"
)

// AccountConfig describes one PagerDuty account this service talks to: how to reach it
// and how to authenticate. Exactly one of Token and OAuth is set.
type AccountConfig struct {
	// ID is the account key used by the `account` input, the `pagerduty.com/account`
	// annotation and the `?account=` query parameter. Single-account setups use "default".
	ID string `json:"id"`
	// Default marks the account used when a request names none. Exactly one account is
	// the default.
	Default bool `json:"default"`
	// APIURL is the REST base URL (EU: https://api.eu.pagerduty.com).
	APIURL string `json:"apiUrl"`
	// EventsURL is the Events API v2 base URL (EU: https://events.eu.pagerduty.com).
	EventsURL string `json:"eventsUrl"`
	// Token is a REST API token sent as `Authorization: Token token=…`.
	Token secret.Value `json:"token"`
	// OAuth configures a scoped OAuth app (client credentials) instead of a token.
	OAuth *OAuthConfig `json:"oauth,omitempty"`
}

// OAuthConfig is a PagerDuty scoped OAuth app used with the client-credentials grant.
type OAuthConfig struct {
	ClientID     string       `json:"clientId"`
	ClientSecret secret.Value `json:"clientSecret"`
	// Subdomain is the first label of <subdomain>.pagerduty.com; it goes into the
	// `as_account-<region>.<subdomain>` scope.
	Subdomain string `json:"subdomain"`
	// Region is "us" or "eu".
	Region string `json:"region"`
	// TokenURL is the token endpoint; the same host serves both regions.
	TokenURL string `json:"tokenUrl"`
}
