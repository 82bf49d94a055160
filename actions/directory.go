package actions

import (
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/pdworker/pdworker/internal/pagerduty"
)

// Abilities that PagerDuty's own code requires before it sends alert grouping.
var groupingAbilities = []string{"preview_intelligent_alert_grouping", "time_based_alert_grouping"}

// directory caches what actions need to know about accounts and rarely changes: which
// account owns an escalation policy, and which abilities an account has. It keeps the
// happy path of an action free of PagerDuty reads. Safe for concurrent use; concurrent
// misses for the same key share one lookup.
type directory struct {
	accounts     *pagerduty.Accounts
	policyTTL    time.Duration
	abilitiesTTL time.Duration

	flight singleflight.Group

	mu        sync.Mutex
	policies  map[string]cached[string]   // policy id → owning account ("" = owned by none)
	abilities map[string]cached[[]string] // account → abilities
}

// policyNegativeTTL is how long a policy that no account owns is remembered: briefly,
// since it may be created any moment.
const policyNegativeTTL = 30 * time.Second

type cached[T any] struct {
	value   T
	expires time.Time
}

func newDirectory(accounts *pagerduty.Accounts, policyTTL, abilitiesTTL time.Duration) *directory {
	return &directory{
		accounts:     accounts,
		policyTTL:    policyTTL,
		abilitiesTTL: abilitiesTTL,
		policies:     map[string]cached[string]{},
		abilities:    map[string]cached[[]string]{},
	}
}

// client returns the client of the named account, or a permanent failure that lists
// the configured accounts.
func (d *directory) client(account string) (*pagerduty.Client, error) {
	c, err := d.accounts.Client(account)
	if err != nil {
		return nil, Fail(CodeUnknownAccount, err, "account %q is not configured (configured accounts: %s)", account, strings.Join(d.accountIDs(), ", "))
	}
	return c, nil
}

func (d *directory) accountIDs() []string {
	var ids []string
	for _, c := range d.accounts.All() {
		ids = append(ids, c.Account())
	}
	return ids
}

// policyAccount returns the client of the account that owns escalation policy id. When
// account is set, the policy must belong to that account.
func (d *directory) policyAccount(ctx context.Context, policyID, account string) (*pagerduty.Client, error) {
	if account != "" {
		c, err := d.client(account)
		if err != nil {
			return nil, err
		}
		owner, err := d.lookupPolicy(ctx, policyID, []*pagerduty.Client{c})
		if err != nil {
			return nil, err
		}
		if owner == "" {
			return nil, Fail(CodeUnknownEscalationPolicy, nil, "escalation policy %s does not exist in account %s", policyID, account)
		}
		return c, nil
	}
	owner, err := d.lookupPolicy(ctx, policyID, d.accounts.All())
	if err != nil {
		return nil, err
	}
	if owner == "" {
		return nil, Fail(CodeUnknownEscalationPolicy, nil, "escalation policy %s does not exist in any configured account (%s)", policyID, strings.Join(d.accountIDs(), ", "))
	}
	return d.client(owner)
}

// lookupPolicy finds which of the candidate accounts owns the policy: from the cache,
// else by asking each candidate in turn (one GET each, stopping at the first owner).
func (d *directory) lookupPolicy(ctx context.Context, policyID string, candidates []*pagerduty.Client) (string, error) {
	d.mu.Lock()
	e, ok := d.policies[policyID]
	d.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		if e.value == "" {
			// Cached as nobody's: only final if the candidates are all accounts.
			if len(candidates) == len(d.accounts.All()) {
				return "", nil
			}
		} else {
			for _, c := range candidates {
				if c.Account() == e.value {
					return e.value, nil
				}
			}
			return "", nil
		}
	}
	var names []string
	for _, c := range candidates {
		names = append(names, c.Account())
	}
	v, err, _ := d.flight.Do("policy/"+policyID+"/"+strings.Join(names, ","), func() (any, error) {
		for _, c := range candidates {
			_, err := c.GetEscalationPolicy(ctx, policyID)
			switch {
			case err == nil:
				d.remember(policyID, c.Account(), d.policyTTL)
				return c.Account(), nil
			case pagerduty.IsNotFound(err):
				continue
			default:
				return "", pagerDutyFailure(err, "look up escalation policy %s in account %s", policyID, c.Account())
			}
		}
		if len(candidates) == len(d.accounts.All()) {
			d.remember(policyID, "", policyNegativeTTL)
		}
		return "", nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (d *directory) remember(policyID, account string, ttl time.Duration) {
	d.mu.Lock()
	d.policies[policyID] = cached[string]{value: account, expires: time.Now().Add(ttl)}
	d.mu.Unlock()
}

// groupingAllowed reports whether the account has the abilities PagerDuty requires for
// alert grouping.
func (d *directory) groupingAllowed(ctx context.Context, c *pagerduty.Client) (bool, error) {
	abilities, err := d.accountAbilities(ctx, c)
	if err != nil {
		return false, err
	}
	have := map[string]bool{}
	for _, a := range abilities {
		have[a] = true
	}
	for _, want := range groupingAbilities {
		if !have[want] {
			return false, nil
		}
	}
	return true, nil
}

func (d *directory) accountAbilities(ctx context.Context, c *pagerduty.Client) ([]string, error) {
	d.mu.Lock()
	e, ok := d.abilities[c.Account()]
	d.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.value, nil
	}
	v, err, _ := d.flight.Do("abilities/"+c.Account(), func() (any, error) {
		abilities, err := c.ListAbilities(ctx)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		d.abilities[c.Account()] = cached[[]string]{value: abilities, expires: time.Now().Add(d.abilitiesTTL)}
		d.mu.Unlock()
		return abilities, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]string), nil
}
