package card_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/card"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/pdworker/pdworker/internal/secret"
)

func setup(t *testing.T, cfg card.Config) (*card.Cards, *pdsim.Sim) {
	t.Helper()
	return setupWith(t, cfg, nil)
}

// setupWith is setup with the simulator behind front (nil: none), a middleware that
// lets a test see requests arrive.
func setupWith(t *testing.T, cfg card.Config, front func(http.Handler) http.Handler) (*card.Cards, *pdsim.Sim) {
	t.Helper()
	sim := pdsim.New(pdsim.Options{Seed: 1})
	require.NoError(t, sim.Load(pdsim.Seed{Accounts: []pdsim.AccountSeed{{
		ID: "default", Tokens: []string{"pd"},
		EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PEP0001", Name: "Platform"}},
		Services:           []pdsim.ServiceSeed{{ID: "PSVC001", Name: "Checkout", EscalationPolicyID: "PEP0001"}},
	}}}))
	var h http.Handler = sim
	if front != nil {
		h = front(sim)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	accounts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{{ID: "default", Default: true, APIURL: srv.URL, EventsURL: srv.URL, Token: secret.Value("pd")}},
		pagerduty.Options{RetryMax: -1}, zerolog.Nop())
	require.NoError(t, err)
	return card.New(accounts, nil, cfg, nil, zerolog.Nop()), sim
}

// TestWebhookEventInvalidates: a webhook event about a service, published on
// pagerduty.webhook.* (core NATS), expires that service's cached answers at once.
func TestWebhookEventInvalidates(t *testing.T) {
	cards, sim := setup(t, card.Config{TTL: time.Hour})
	_, nc, _ := natstest.Start(t)
	sub, err := cards.Subscribe(nc, card.WebhookServiceID)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nc.Flush())
	ctx := context.Background()

	for range 3 {
		_, _, err := cards.Service(ctx, "", "PSVC001")
		require.NoError(t, err)
	}
	require.Equal(t, 1, sim.Count(http.MethodGet, "/services/PSVC001"), "cached within the TTL")

	other, _ := json.Marshal(map[string]any{"event": map[string]any{
		"id": "01EVT1", "event_type": "incident.triggered", "resource_type": "incident", "occurred_at": "2026-01-10T12:00:00Z",
		"data": map[string]any{"id": "PINC1", "type": "incident", "service": map[string]any{"id": "POTHER1", "type": "service_reference"}},
	}})
	require.NoError(t, nc.Publish("pagerduty.webhook.incident.triggered", other))
	ours, _ := json.Marshal(map[string]any{"event": map[string]any{
		"id": "01EVT2", "event_type": "incident.triggered", "resource_type": "incident", "occurred_at": "2026-01-10T12:00:01Z",
		"data": map[string]any{"id": "PINC2", "type": "incident", "service": map[string]any{"id": "PSVC001", "type": "service_reference"}},
	}})
	require.NoError(t, nc.Publish("pagerduty.webhook.incident.triggered", []byte("not json")))
	require.NoError(t, nc.Publish("pagerduty.webhook.incident.triggered", ours))
	require.NoError(t, nc.Flush())

	require.Eventually(t, func() bool {
		_, _, err := cards.Service(ctx, "", "PSVC001")
		require.NoError(t, err)
		return sim.Count(http.MethodGet, "/services/PSVC001") == 2
	}, 5*time.Second, 10*time.Millisecond, "the event about PSVC001 expired its entry")
	_, _, err = cards.Service(ctx, "", "PSVC001")
	require.NoError(t, err)
	assert.Equal(t, 2, sim.Count(http.MethodGet, "/services/PSVC001"), "cached again after the refetch")
}

// TestSingleFlight: concurrent readers of one key share one PagerDuty call.
func TestSingleFlight(t *testing.T) {
	cards, sim := setup(t, card.Config{TTL: time.Hour})
	sim.InjectFault(pdsim.Fault{Kind: pdsim.FaultLatency, Latency: 200 * time.Millisecond, PathPrefix: "/services/PSVC001"})
	done := make(chan error, 50)
	for range 50 {
		go func() {
			_, _, err := cards.Service(context.Background(), "", "PSVC001")
			done <- err
		}()
	}
	for range 50 {
		require.NoError(t, <-done)
	}
	assert.Equal(t, 1, sim.Count(http.MethodGet, "/services/PSVC001"))
}

// TestCallerLeavingDoesNotCancelTheSharedFetch: the first caller's context ending does
// not fail the fetch the others wait on.
func TestCallerLeavingDoesNotCancelTheSharedFetch(t *testing.T) {
	arrived := make(chan struct{})
	var once sync.Once
	cards, sim := setupWith(t, card.Config{TTL: time.Hour}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			once.Do(func() { close(arrived) })
			next.ServeHTTP(w, r)
		})
	})
	sim.InjectFault(pdsim.Fault{Kind: pdsim.FaultLatency, Latency: 200 * time.Millisecond, PathPrefix: "/services/PSVC001"})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, _, err := cards.Service(ctx, "", "PSVC001")
		first <- err
	}()
	<-arrived // the first caller's fetch has reached PagerDuty
	cancel()
	_, _, err := cards.Service(context.Background(), "", "PSVC001")
	require.NoError(t, err)
	require.Error(t, <-first)
	assert.Equal(t, 1, sim.Count(http.MethodGet, "/services/PSVC001"))
}

// newClock is a Config.Now source that moves only when told to.
func newClock() *clockwork.FakeClock {
	return clockwork.NewFakeClockAt(time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC))
}

// TestAnswerStoredMeanwhileIsNotFetchedAgain: a reader that found the entry expired,
// and whose key's fetch finished and stored a fresh answer before the reader joined
// it, is answered from that entry instead of asking PagerDuty a second time in one
// cache period; unless the service was invalidated in between.
func TestAnswerStoredMeanwhileIsNotFetchedAgain(t *testing.T) {
	for _, invalidate := range []bool{false, true} {
		t.Run(fmt.Sprintf("invalidated meanwhile %v", invalidate), func(t *testing.T) {
			clk := newClock()
			cards, sim := setup(t, card.Config{TTL: time.Minute, Now: clk.Now})
			ctx := context.Background()
			_, _, err := cards.Service(ctx, "", "PSVC001")
			require.NoError(t, err)
			clk.Advance(2 * time.Minute)

			// The outer read finds the entry expired; before it joins a fetch, the
			// inner read fetches and stores a fresh answer, and its fetch ends.
			checks := 0
			card.SetAfterCheck(cards, func() {
				checks++
				if checks > 1 {
					return
				}
				_, _, err := cards.Service(ctx, "", "PSVC001")
				require.NoError(t, err)
				require.Equal(t, 2, sim.Count(http.MethodGet, "/services/PSVC001"), "the inner read fetched")
				if invalidate {
					cards.Invalidate("PSVC001")
				}
			})
			svc, _, err := cards.Service(ctx, "", "PSVC001")
			require.NoError(t, err)
			assert.Contains(t, string(svc), "PSVC001")
			require.Equal(t, 2, checks, "the inner read ran while the outer one was between its check and the fetch")
			want := 2
			if invalidate {
				want = 3
			}
			assert.Equal(t, want, sim.Count(http.MethodGet, "/services/PSVC001"))

			_, _, err = cards.Service(ctx, "", "PSVC001")
			require.NoError(t, err)
			assert.Equal(t, want, sim.Count(http.MethodGet, "/services/PSVC001"), "the answer is cached")
		})
	}
}

// TestLookupByIntegrationKeyCachedAfterItsServiceChanged: a lookup by integration key
// learns its service from the answer; after that service was invalidated (here by
// creating the integration), the next lookup is cached for the TTL again, and a later
// invalidation of the service expires it.
func TestLookupByIntegrationKeyCachedAfterItsServiceChanged(t *testing.T) {
	cards, sim := setup(t, card.Config{TTL: time.Hour})
	ctx := context.Background()
	integrationKey, err := cards.EnsureIntegration(ctx, "", "PSVC001", pagerduty.VendorBackstage)
	require.NoError(t, err)
	lookups := func() int {
		n := 0
		for _, r := range sim.Requests() {
			if r.Method == http.MethodGet && r.Path == "/services" {
				n++
			}
		}
		return n
	}
	for range 3 {
		svc, _, err := cards.ServiceByIntegrationKey(ctx, "", integrationKey)
		require.NoError(t, err)
		require.Contains(t, string(svc), "PSVC001")
	}
	assert.Equal(t, 1, lookups(), "cached within the TTL")

	cards.Invalidate("PSVC001")
	for range 2 {
		_, _, err := cards.ServiceByIntegrationKey(ctx, "", integrationKey)
		require.NoError(t, err)
	}
	assert.Equal(t, 2, lookups(), "expired by the invalidation, then cached again")
}

// TestStaleAnswerWhenTheDeadlinePasses: when PagerDuty does not answer within
// Config.Deadline, the last good answer is served, flagged stale.
func TestStaleAnswerWhenTheDeadlinePasses(t *testing.T) {
	clk := newClock()
	cards, sim := setup(t, card.Config{TTL: time.Minute, Now: clk.Now})
	ctx := context.Background()
	// Warmed under the default deadline, so that a slow machine cannot fail it.
	first, _, err := cards.Service(ctx, "", "PSVC001")
	require.NoError(t, err)

	card.SetDeadline(cards, 100*time.Millisecond)
	clk.Advance(2 * time.Minute)
	sim.InjectFault(pdsim.Fault{Kind: pdsim.FaultLatency, Latency: time.Minute, PathPrefix: "/services/PSVC001"})
	got, meta, err := cards.Service(ctx, "", "PSVC001")
	require.NoError(t, err)
	assert.True(t, meta.Stale)
	assert.JSONEq(t, string(first), string(got))
}
