package pagerduty_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/secret"
)

func abilitiesOK(w http.ResponseWriter) {
	writeJSON(w, 200, map[string]any{"abilities": []string{"teams", "urgencies"}})
}

// sequence answers the n-th request with steps[n] and the last step afterwards.
func sequence(steps ...func(w http.ResponseWriter)) (http.Handler, *atomic.Int32) {
	var n atomic.Int32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		steps[min(i, len(steps)-1)](w)
	}), &n
}

func TestServerErrorsRetriedThenSuccess(t *testing.T) {
	h, n := sequence(
		func(w http.ResponseWriter) { writePDError(w, 503, 2000, "unavailable") },
		func(w http.ResponseWriter) { w.WriteHeader(502) },
		abilitiesOK,
	)
	f := newFixture(t, h)
	abilities, err := f.client.ListAbilities(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"teams", "urgencies"}, abilities)
	assert.Equal(t, int32(3), n.Load())
	assert.Equal(t, 2.0, metricValue(t, f.reg, "pdworker_pagerduty_retries_total", map[string]string{"account": "acme", "reason": "server_error"}))
	assert.Equal(t, 1.0, metricValue(t, f.reg, "pdworker_pagerduty_requests_total", map[string]string{"route": "GET /abilities", "status": "503"}))
	assert.Equal(t, 1.0, metricValue(t, f.reg, "pdworker_pagerduty_requests_total", map[string]string{"route": "GET /abilities", "status": "200"}))
}

func TestBadRequestNotRetried(t *testing.T) {
	h, n := sequence(func(w http.ResponseWriter) {
		writePDError(w, 400, 2001, "Invalid Input Provided", "Config is invalid.")
	})
	f := newFixture(t, h)
	_, err := f.client.CreateService(context.Background(), pagerduty.Service{Name: "x"})
	require.Error(t, err)
	assert.Equal(t, int32(1), n.Load())
	assert.Equal(t, pagerduty.ClassPermanent, pagerduty.ClassOf(err))
	assert.Equal(t, 0.0, metricValue(t, f.reg, "pdworker_pagerduty_retries_total", nil))
}

func TestBare429RetriedThenSuccess(t *testing.T) {
	h, n := sequence(func(w http.ResponseWriter) { w.WriteHeader(429) }, abilitiesOK)
	f := newFixture(t, h)
	_, err := f.client.ListAbilities(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int32(2), n.Load())
	assert.Equal(t, 1.0, metricValue(t, f.reg, "pdworker_pagerduty_retries_total", map[string]string{"reason": "rate_limited"}))
}

func TestRatelimitResetHonoured(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	h, _ := sequence(
		func(w http.ResponseWriter) {
			w.Header().Set("ratelimit-limit", "960")
			w.Header().Set("ratelimit-remaining", "0")
			w.Header().Set("ratelimit-reset", "1")
			writePDError(w, 429, 2020, "Rate Limit Exceeded")
		},
		abilitiesOK,
	)
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	_, err := f.client.ListAbilities(context.Background())
	require.NoError(t, err)
	require.Len(t, arrivals, 2)
	assert.GreaterOrEqual(t, arrivals[1].Sub(arrivals[0]), time.Second, "the retry waited for ratelimit-reset")
}

func TestLongRatelimitResetReturnedToCaller(t *testing.T) {
	h, n := sequence(func(w http.ResponseWriter) {
		w.Header().Set("ratelimit-reset", "30")
		writePDError(w, 429, 2020, "Rate Limit Exceeded")
	})
	f := newFixture(t, h)
	_, err := f.client.ListAbilities(context.Background())
	require.Error(t, err)
	assert.Equal(t, int32(1), n.Load(), "no in-process wait beyond MaxRetryAfter")
	var ae *pagerduty.APIError
	require.ErrorAs(t, err, &ae)
	assert.True(t, ae.Temporary())
	assert.Equal(t, 30*time.Second, ae.RetryAfter())
	assert.Equal(t, "pagerduty list abilities (account acme): 429 Rate Limit Exceeded (code 2020) (retry after 30s)", err.Error())
}

func TestRetriesExhausted(t *testing.T) {
	h, n := sequence(func(w http.ResponseWriter) { w.WriteHeader(500) })
	f := newFixture(t, h)
	_, err := f.client.ListAbilities(context.Background())
	assert.True(t, pagerduty.IsRetryable(err))
	assert.Equal(t, int32(3), n.Load())
}

func TestCallDeadline(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}), func(o *pagerduty.Options) { o.CallTimeout = 100 * time.Millisecond })

	_, err := f.client.ListAbilities(context.Background())
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, pagerduty.IsRetryable(err))
	assert.Equal(t, pagerduty.Class(0), pagerduty.ClassOf(err))
	assert.Contains(t, err.Error(), "pagerduty list abilities (account acme)")
	assert.Contains(t, err.Error(), "call timeout of 100ms")
	assert.True(t, pagerduty.IsCallTimeout(err))
}

func TestCallerDeadlineIsNotACallTimeout(t *testing.T) {
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := f.client.ListAbilities(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, pagerduty.IsCallTimeout(err), "the caller gave up, PagerDuty was not slow: %v", err)
}

func TestCallerCancellation(t *testing.T) {
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := f.client.ListAbilities(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, pagerduty.IsRetryable(err))
	assert.False(t, pagerduty.IsCallTimeout(err))
}

func TestTransportErrorRetriedAndRetryable(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()

	reg := prometheus.NewRegistry()
	accts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{{ID: "acme", APIURL: url, Token: secret.Value(testToken)}},
		testOptions(reg), zerolog.Nop())
	require.NoError(t, err)
	_, err = accts.Default().ListAbilities(context.Background())
	require.Error(t, err)
	assert.True(t, pagerduty.IsRetryable(err))
	var ae *pagerduty.APIError
	require.ErrorAs(t, err, &ae)
	assert.Zero(t, ae.Status)
	assert.Contains(t, err.Error(), "pagerduty list abilities (account acme): request failed:")
	assert.Equal(t, 3.0, metricValue(t, reg, "pdworker_pagerduty_requests_total", map[string]string{"status": "error"}))
	assert.Equal(t, 2.0, metricValue(t, reg, "pdworker_pagerduty_retries_total", map[string]string{"reason": "transport"}))
}

func TestBudgetExhaustedBeforeDeadline(t *testing.T) {
	h, n := sequence(abilitiesOK)
	f := newFixture(t, h, func(o *pagerduty.Options) {
		o.RateLimit = 2 // burst 1, then one request per minute
		o.CallTimeout = 500 * time.Millisecond
	})
	_, err := f.client.ListAbilities(context.Background())
	require.NoError(t, err)

	_, err = f.client.ListAbilities(context.Background())
	require.Error(t, err)
	assert.Equal(t, int32(1), n.Load())
	var ae *pagerduty.APIError
	require.ErrorAs(t, err, &ae)
	assert.True(t, ae.Temporary())
	assert.Greater(t, ae.RetryAfter(), 30*time.Second)
	assert.Contains(t, err.Error(), "client-side rate budget exhausted")
	assert.False(t, errors.Is(err, context.DeadlineExceeded))
}

// A create that fails with a 5xx or a lost connection may have been carried out, so it
// is handed back to the caller instead of being sent again; a 429 (rejected before any
// work) and a connection that was never made are retried.
func TestCreatesAreNotRepeatedAfterAmbiguousFailures(t *testing.T) {
	created := func(w http.ResponseWriter) {
		writeJSON(w, 201, map[string]any{"service": map[string]any{"id": "PNEW123"}})
	}
	cases := []struct {
		name      string
		first     func(w http.ResponseWriter)
		wantCalls int32
		wantErr   bool
	}{
		{"5xx", func(w http.ResponseWriter) { writePDError(w, 502, 2000, "bad gateway") }, 1, true},
		{"dropped connection", func(w http.ResponseWriter) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}, 1, true},
		{"429", func(w http.ResponseWriter) { writePDError(w, 429, 2020, "Rate Limit Exceeded") }, 2, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, n := sequence(tc.first, created)
			f := newFixture(t, h)
			_, err := f.client.CreateService(context.Background(), pagerduty.Service{Name: "x"})
			assert.Equal(t, tc.wantCalls, n.Load())
			if tc.wantErr {
				require.Error(t, err)
				assert.True(t, pagerduty.IsRetryable(err), "the caller may retry after looking: %v", err)
			} else {
				require.NoError(t, err)
			}
		})
	}

	t.Run("reads are repeated after a 5xx", func(t *testing.T) {
		h, n := sequence(func(w http.ResponseWriter) { writePDError(w, 502, 2000, "bad gateway") }, abilitiesOK)
		f := newFixture(t, h)
		_, err := f.client.ListAbilities(context.Background())
		require.NoError(t, err)
		assert.Equal(t, int32(2), n.Load())
	})
}
