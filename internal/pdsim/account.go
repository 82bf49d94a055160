package pdsim

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// account is one simulated PagerDuty account and everything it owns.
type account struct {
	id, subdomain, region string
	abilities             []string
	settingsAPI           bool
	settingsList404       bool
	limiter               limiter

	// mu guards everything below. Handlers hold it for the whole operation, so each
	// request sees and leaves a consistent account.
	mu       sync.Mutex
	seq      int64
	eps      map[string]*escalationPolicy
	services map[string]*service
	settings map[string]*groupingSetting
	deps     *dependencyGraph // service dependencies (dependencies.go), created on first use
	// card is what the Backstage card reads besides services (card.go).
	card cardState
}

func (a *account) hasAbility(name string) bool { return slices.Contains(a.abilities, name) }

// webURL is the account's web UI address for path, as PagerDuty puts in html_url.
func (a *account) webURL(path string) string {
	host := a.subdomain + ".pagerduty.com"
	if a.region == "eu" {
		host = a.subdomain + ".eu.pagerduty.com"
	}
	return "https://" + host + path
}

// nextSeq orders objects by creation; callers hold a.mu.
func (a *account) nextSeq() int64 {
	a.seq++
	return a.seq
}

// serviceByName finds a service by case-insensitive name; callers hold a.mu.
func (a *account) serviceByName(name string) *service {
	for _, svc := range a.services {
		if strings.EqualFold(svc.name, name) {
			return svc
		}
	}
	return nil
}

// AddAccount adds one account. It fails when the ID, a token, an OAuth client or an
// object ID is already in use, or when the seed is inconsistent (a service naming an
// unknown escalation policy, duplicate service names, an unknown region).
func (s *Sim) AddAccount(a AccountSeed) error { return s.Load(Seed{Accounts: []AccountSeed{a}}) }

// Load adds every account of seed, or none of them if any is invalid.
func (s *Sim) Load(seed Seed) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	built := make([]*account, 0, len(seed.Accounts))
	var reserved []string
	fail := func(err error) error {
		s.ids.release(reserved)
		return err
	}
	seenTokens, seenClients, seenAccounts := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, as := range seed.Accounts {
		if as.ID == "" {
			return fail(errors.New("account id is required"))
		}
		if s.accounts[as.ID] != nil || seenAccounts[as.ID] {
			return fail(fmt.Errorf("account %q already exists", as.ID))
		}
		seenAccounts[as.ID] = true
		for _, t := range as.Tokens {
			if t == "" || s.tokens[t] != nil || seenTokens[t] {
				return fail(fmt.Errorf("account %q: a token is empty or already in use", as.ID))
			}
			seenTokens[t] = true
		}
		for _, c := range as.OAuthClients {
			if c.ID == "" || c.Secret == "" || s.oauthClients[c.ID] != nil || seenClients[c.ID] {
				return fail(fmt.Errorf("account %q: oauth client %q is incomplete or already in use", as.ID, c.ID))
			}
			seenClients[c.ID] = true
		}
		a, ids, err := s.buildAccount(as)
		reserved = append(reserved, ids...)
		if err != nil {
			return fail(fmt.Errorf("account %q: %w", as.ID, err))
		}
		built = append(built, a)
	}

	for i, a := range built {
		s.accounts[a.id] = a
		s.accountOrder = append(s.accountOrder, a.id)
		for _, t := range seed.Accounts[i].Tokens {
			s.tokens[t] = a
		}
		for _, c := range seed.Accounts[i].OAuthClients {
			s.oauthClients[c.ID] = &oauthClient{id: c.ID, secret: c.Secret, account: a.id}
		}
		s.seedIncidents(a) // CardSeed.Incidents (incidents.go)
	}
	return nil
}

// buildAccount turns a seed into an account, returning the object IDs it reserved.
func (s *Sim) buildAccount(as AccountSeed) (*account, []string, error) {
	a := &account{
		id:              as.ID,
		subdomain:       as.Subdomain,
		region:          as.Region,
		abilities:       sortedUnique(as.Abilities),
		settingsAPI:     as.AlertGroupingSettingsAPI,
		settingsList404: as.EmptySettingsList404,
		limiter:         limiter{limit: s.opts.RateLimit, window: s.opts.RateWindow},
		eps:             map[string]*escalationPolicy{},
		services:        map[string]*service{},
		settings:        map[string]*groupingSetting{},
	}
	if a.subdomain == "" {
		a.subdomain = as.ID
	}
	if a.region == "" {
		a.region = "us"
	}
	var reserved []string
	if a.region != "us" && a.region != "eu" {
		return nil, reserved, fmt.Errorf("region %q is not us or eu", a.region)
	}
	id := func(given string) (string, error) {
		if given == "" {
			given = s.ids.objectID()
		} else if !s.ids.reserve(given) {
			return "", fmt.Errorf("id %q is already in use", given)
		}
		reserved = append(reserved, given)
		return given, nil
	}
	now := s.now().UTC()
	for _, es := range as.EscalationPolicies {
		if es.Name == "" {
			return nil, reserved, errors.New("escalation policy name is required")
		}
		epID, err := id(es.ID)
		if err != nil {
			return nil, reserved, err
		}
		a.eps[epID] = &escalationPolicy{id: epID, name: es.Name, description: es.Description, seq: a.nextSeq()}
	}
	for _, ss := range as.Services {
		if ss.Name == "" || a.serviceByName(ss.Name) != nil {
			return nil, reserved, fmt.Errorf("service name %q is empty or repeated", ss.Name)
		}
		if a.eps[ss.EscalationPolicyID] == nil {
			return nil, reserved, fmt.Errorf("service %q: escalation policy %q not found", ss.Name, ss.EscalationPolicyID)
		}
		svcID, err := id(ss.ID)
		if err != nil {
			return nil, reserved, err
		}
		a.services[svcID] = newService(svcID, ss.Name, ss.Description, ss.EscalationPolicyID, now, a.nextSeq())
	}
	card, err := newCardState(a, as.Card, id)
	if err != nil {
		return nil, reserved, err
	}
	a.card = card
	return a, reserved, nil
}

// newService returns a service with PagerDuty's defaults for fields a create omits.
func newService(id, name, description, epID string, now time.Time, seq int64) *service {
	return &service{
		id: id, name: name, description: description, epID: epID,
		status: "active", alertCreation: "create_alerts_and_incidents",
		createdAt: now, updatedAt: now, seq: seq,
	}
}

// sortedUnique returns a sorted copy of in without repeats.
func sortedUnique(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
