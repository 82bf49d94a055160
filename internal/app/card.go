package app

import (
	"context"
	"fmt"

	"github.com/pdworker/pdworker/internal/backstageauth"
	"github.com/pdworker/pdworker/internal/card"
	"github.com/pdworker/pdworker/internal/mapping"
)

// addCard wires the Backstage card: the cached reads, their invalidation by webhook
// events on every replica (core NATS), the server-side trigger with mapped integration
// keys, and — with BACKSTAGE_URL — the verifier of Backstage tokens for the
// authenticator (nil without it).
func (a *App) addCard(d shared, mappings *mapping.Store) (*card.Cards, *backstageauth.Verifier, error) {
	cards := card.New(d.accounts, mappedIntegrationKey(mappings), card.Config{TTL: a.cfg.CardCacheTTL}, a.registry, a.log)
	if _, err := cards.Subscribe(a.nc, card.WebhookServiceID); err != nil {
		return nil, nil, err
	}
	if a.cfg.Auth.BackstageURL == "" {
		return cards, nil, nil
	}
	v, err := backstageauth.NewVerifier(backstageauth.Config{BaseURL: a.cfg.Auth.BackstageURL, PluginID: a.cfg.Auth.PluginID}, a.log)
	if err != nil {
		return nil, nil, fmt.Errorf("BACKSTAGE_URL: %w", err)
	}
	return cards, v, nil
}

// mappedIntegrationKey reads the integration key mapped to a service, for the
// server-side incident trigger; a mapping of another account does not count.
func mappedIntegrationKey(mappings *mapping.Store) card.IntegrationKeyFunc {
	return func(ctx context.Context, account, serviceID string) (string, error) {
		m, err := mappings.ByService(ctx, serviceID)
		if err != nil || m == nil || !mapping.AccountsMatch(m.Account, account) {
			return "", err
		}
		return m.IntegrationKey, nil
	}
}
