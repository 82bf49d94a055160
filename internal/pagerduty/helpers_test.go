package pagerduty_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/internal/secret"
)

const testToken = "u+TESTtoken-5ecret-abc123"

// testOptions are fast retry settings for tests over httptest.
func testOptions(reg prometheus.Registerer) pagerduty.Options {
	return pagerduty.Options{
		RateLimit:     60000,
		CallTimeout:   5 * time.Second,
		RetryMax:      2,
		RetryWaitMin:  time.Millisecond,
		RetryWaitMax:  5 * time.Millisecond,
		MaxRetryAfter: 2 * time.Second,
		Registerer:    reg,
	}
}

// fixture is one token account pointed at an httptest server.
type fixture struct {
	client *pagerduty.Client
	srv    *httptest.Server
	reg    *prometheus.Registry
	logs   *syncBuffer
}

func newFixture(t *testing.T, h http.Handler, tune ...func(*pagerduty.Options)) *fixture {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	opts := testOptions(reg)
	for _, f := range tune {
		f(&opts)
	}
	logs := &syncBuffer{}
	accts, err := pagerduty.NewAccounts([]pagerduty.AccountConfig{{
		ID:     "acme",
		APIURL: srv.URL,
		Token:  secret.Value(testToken),
	}}, opts, zerolog.New(logs).Level(zerolog.DebugLevel))
	require.NoError(t, err)
	return &fixture{client: accts.Default(), srv: srv, reg: reg, logs: logs}
}

func startServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// writePDError writes PagerDuty's error body with Content-Type application/json.
func writePDError(w http.ResponseWriter, status, code int, msg string, details ...string) {
	body := map[string]any{"message": msg, "code": code}
	if len(details) > 0 {
		body["errors"] = details
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.pagerduty+json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// metricValue sums the counter or histogram-count samples of name whose labels include
// all of want.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsMatch(m, want) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
