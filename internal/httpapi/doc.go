// Package httpapi owns the HTTP surface of pdworker: the /api/pagerduty routes
// (scaffolder actions, and the routes of later capabilities), the operations routes
// (/healthz, /readyz, /metrics), and what every request goes through on the way in —
// panic recovery, request metrics, caller authentication and body-size caps — and the
// one place that turns errors into statuses and the service's JSON error shape.
//
// Handlers are thin: decode, validate, hand the work to NATS (through events), answer.
// It never calls PagerDuty for an action itself. It must not import internal/app.
package httpapi
