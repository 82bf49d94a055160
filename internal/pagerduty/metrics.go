package pagerduty

import (
	"errors"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the collectors shared by all accounts of one Accounts. Labels never carry
// credentials or object ids: routes are path templates.
type metrics struct {
	requests *prometheus.CounterVec   // account, route, status
	duration *prometheus.HistogramVec // account, route
	wait     *prometheus.CounterVec   // account
	retries  *prometheus.CounterVec   // account, reason
}

// Retry reasons used in pdworker_pagerduty_retries_total.
const (
	retryTransport    = "transport"
	retryRateLimited  = "rate_limited"
	retryServerError  = "server_error"
	retryUnauthorized = "unauthorized"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_pagerduty_requests_total",
			Help: "HTTP attempts sent to PagerDuty (retries and OAuth token fetches included), by final status or \"error\" when no response arrived.",
		}, []string{"account", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pdworker_pagerduty_request_duration_seconds",
			Help:    "Duration of single HTTP attempts to PagerDuty, excluding time spent waiting for the rate budget.",
			Buckets: prometheus.DefBuckets,
		}, []string{"account", "route"}),
		wait: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_pagerduty_ratelimit_wait_seconds_total",
			Help: "Time requests spent waiting for the per-account client-side rate budget (PAGERDUTY_RATE_LIMIT).",
		}, []string{"account"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_pagerduty_retries_total",
			Help: "In-process retries of PagerDuty requests, by reason (transport, rate_limited, server_error, unauthorized).",
		}, []string{"account", "reason"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.requests = register(reg, m.requests, &err)
	m.duration = register(reg, m.duration, &err)
	m.wait = register(reg, m.wait, &err)
	m.retries = register(reg, m.retries, &err)
	return m, err
}

// register registers c, or returns the collector already registered under the same
// description (a second Accounts on the same registry shares the series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		*errp = errors.Join(*errp, err)
	}
	return c
}

var staticSegment = regexp.MustCompile(`^[a-z][a-z_]*$`)

// routeOf turns a request path into a low-cardinality template: "POST /services/{id}".
// Segments that are not lowercase words (PagerDuty ids, keys, ULIDs) become {id}. The
// account's API base path, if any, is removed first.
func routeOf(method, path, basePath string) string {
	if basePath != "" && strings.HasPrefix(path, basePath) {
		path = strings.TrimPrefix(path, basePath)
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		if s != "" && !staticSegment.MatchString(s) {
			segs[i] = "{id}"
		}
	}
	return method + " /" + strings.Join(segs, "/")
}
