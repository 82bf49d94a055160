package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
)

// startSimulation runs the PagerDuty simulator in-process on a free loopback port with
// the demo accounts, points the configuration at it, adds a generated API token for
// callers, and prepares the demo instructions.
func (a *App) startSimulation() error {
	sim := pdsim.New(pdsim.Options{Log: a.log.With().Str("component", "pdsim").Logger()})
	seed := pdsim.DemoSeedWithCard()
	if err := sim.Load(seed); err != nil {
		return fmt.Errorf("seed simulator: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("simulator listener: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error().Err(err).Msg("simulator stopped")
		}
	}()
	a.cleanups = append(a.cleanups, func(ctx context.Context) { _ = srv.Shutdown(ctx) })
	url := "http://" + l.Addr().String()

	a.cfg.PagerDuty.Accounts = nil
	for i, acc := range seed.Accounts {
		a.cfg.PagerDuty.Accounts = append(a.cfg.PagerDuty.Accounts, pagerduty.AccountConfig{
			ID: acc.ID, Default: i == 0, APIURL: url, EventsURL: url, Token: secret.Value(acc.Tokens[0]),
		})
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("generate API token: %w", err)
	}
	token := "pdw_" + hex.EncodeToString(b[:])
	a.cfg.Auth.APITokens = append(a.cfg.Auth.APITokens, secret.Value(token))
	a.demo = demoInstructions(url, token, seed)
	a.log.Info().Str("pagerduty_url", url).Msg("PagerDuty simulator started with demo accounts acme (AIOps) and globex (no AIOps)")
	return nil
}

// DemoInstructions returns what --simulate prints: where things are and ready-to-paste
// curl commands. Empty when not simulating.
func (a *App) DemoInstructions() string {
	if a.demo == "" {
		return ""
	}
	return strings.ReplaceAll(a.demo, "{{HTTP}}", "http://"+loopback(a.HTTPAddr()))
}

func demoInstructions(simURL, token string, seed pdsim.Seed) string {
	acme, globex := seed.Accounts[0], seed.Accounts[1]
	var b strings.Builder
	fmt.Fprintf(&b, `
pdworker is running against the PagerDuty simulator (no PagerDuty account needed).

  pdworker API      {{HTTP}}/api/pagerduty   (token: %[1]s)
  simulator         %[2]s                (request log: %[2]s/_sim/requests)
  accounts          %[3]s (AIOps: alert grouping)   %[4]s (no AIOps)
  escalation policies  %[3]s: %[5]s   %[4]s: %[6]s

List the actions and their JSON Schemas:

  curl -s {{HTTP}}/api/pagerduty/actions -H 'Authorization: Bearer %[1]s'

Create a service with intelligent alert grouping and a Backstage integration:

  curl -s -X POST {{HTTP}}/api/pagerduty/actions/pagerduty:service:create \
    -H 'Authorization: Bearer %[1]s' -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-checkout' \
    -d '{"name":"checkout","description":"Checkout API","escalationPolicyId":"%[5]s","alertGrouping":"intelligent"}'

Run it again with the same Idempotency-Key: same answer, still one service. Ask for grouping on an
account without AIOps: the service is created without grouping, and a warning says why:

  curl -s -X POST {{HTTP}}/api/pagerduty/actions/pagerduty:service:create \
    -H 'Authorization: Bearer %[1]s' -H 'Content-Type: application/json' \
    -d '{"name":"storefront","description":"Storefront","escalationPolicyId":"%[6]s","alertGrouping":"time"}'

What the Backstage PagerDuty card shows for the service %[7]s: the users on call at the first level of
its escalation policy, and its open incidents (one is six weeks old, which the official backend misses):

  curl -sg '{{HTTP}}/api/pagerduty/oncall-users?escalation_policy_ids[]=%[8]s' -H 'Authorization: Bearer %[1]s'
  curl -s {{HTTP}}/api/pagerduty/services/%[7]s/incidents -H 'Authorization: Bearer %[1]s'

See what reached "PagerDuty":

  curl -s '%[2]s/_sim/requests?method=POST'
`, token, simURL, acme.ID, globex.ID, acme.EscalationPolicies[0].ID, globex.EscalationPolicies[0].ID,
		acme.Services[0].ID, acme.Services[0].EscalationPolicyID)
	return b.String()
}

// loopback turns a wildcard listen address into one a browser or curl can reach.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
