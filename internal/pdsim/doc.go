// Package pdsim is a stateful, in-memory stand-in for the PagerDuty REST API, used by
// tests, benchmarks, the demo (`pdworker --simulate`) and the standalone `pdsim` binary.
//
// A *Sim is an http.Handler. It keeps state per account (escalation policies, services,
// integrations, alert grouping settings, abilities, incidents), chooses the account from the
// request's credentials (`Authorization: Token token=…`, or `Bearer …` with a token
// issued by its own `POST /oauth/token`), enforces a per-account rate limit with
// PagerDuty's `ratelimit-*` headers, can be told to inject faults, and records every
// request so callers can count PagerDuty calls. A control API under `/_sim/` exposes the
// request log, fault injection, state and seeding over HTTP without authentication.
//
// Fidelity follows /work/shared/reference/pagerduty-api.md section 12. Where PagerDuty's
// behaviour is undocumented the simulator picks one behaviour and says so next to the
// code that implements it:
//
//   - Rate limit: a fixed window per account (60 seconds; Options.RateWindow shortens
//     it), opened by the first request after the previous window ended;
//     `ratelimit-reset` is the whole seconds left in it (at least 1). Requests refused
//     with 429 still count toward the window. Only authenticated REST requests are
//     limited; `/oauth/token` and `/_sim/` are not.
//   - Order of checks for a REST request: fault injection, authentication (401/2006),
//     rate limit (429/2020), then the endpoint. Faults therefore apply before any state
//     changes, except Fault5xxAfter, which lets the endpoint run and then answers 502.
//   - Service names are unique per account, compared case-insensitively. `query` on
//     `GET /services` matches a case-insensitive substring of the name or an integration
//     key exactly; `name` matches the whole name exactly (case-sensitive).
//   - Service-level `alert_grouping_parameters` are validated strictly and, unless they
//     turn grouping off, need both grouping abilities (402/2014 otherwise). Checks run in
//     this order: name and escalation policy (all problems in one 400), grouping config
//     (400 "Config is invalid."), abilities (402). They live on the service and do not appear
//     in `/alert_grouping_settings`. Setting them (or `type: null`) takes the service out
//     of any alert grouping setting; adding the service to a setting clears them. An
//     echoed `alert_grouping_setting_reference` is ignored.
//   - Alert grouping settings: `time` and `content_based_intelligent` take exactly one
//     service, `intelligent` and `content_based` many (content_based at most 250). A
//     `timeout` or `time_window` of 0 is rejected; omit it or send null instead. A
//     setting left with no services (by service deletion or by the service taking its
//     own parameters) is deleted.
//   - OAuth scopes are not enforced on REST calls (no 403); the `as_account-…` scope
//     must name the client's own account.
//   - The request log holds at most one million entries; older ones are dropped.
//   - Incidents: the Events API v2 (`POST /v2/enqueue`, authenticated by routing key,
//     not rate limited) opens an incident on trigger and acknowledges or resolves the
//     open incident of a `dedup_key`; REST `PUT /incidents/{id}` does the same. A
//     resolved incident stays resolved. Each escalation policy has one on-call user,
//     to whom incidents are assigned. `GET /incidents` defaults to the last month.
//   - Webhooks (v3): subscriptions (`/webhook_subscriptions`, or AddWebhookSubscription)
//     receive incident.triggered/acknowledged/resolved on every incident change and
//     service.created/updated/deleted on every REST service change, signed with every
//     current secret (two during a rotation), with `X-Webhook-Id`,
//     `X-Webhook-Subscription` and `User-Agent: PagerDuty-Webhook/V3.0`. Deliveries of
//     one incident or service leave in order; timeouts, 5xx and 429 are retried with
//     doubling intervals (undocumented at PagerDuty), other 4xx drop the delivery, and
//     3 drops in a row disable the subscription for a day. occurred_at has millisecond
//     precision and increases across the events of one incident or service.
//
// pdsim imports only the standard library and zerolog. It must not import any other
// package of this module, so that every package can use it in tests.
package pdsim
