// Package webhook owns PagerDuty's Webhooks v3 wire format: the typed envelope and
// data structs (go-pagerduty has none), a strict decoder, and the verification of the
// X-PagerDuty-Signature header against one or more signing secrets.
//
// It is pure: no I/O, no NATS, no HTTP server. It imports only internal/secret from
// this module, so the receiver, the webhook worker and the frontend cache can all use
// it. It must not import events, workers, internal/httpapi or internal/app.
package webhook
