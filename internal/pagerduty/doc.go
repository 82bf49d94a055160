// Package pagerduty owns every call this service makes to the PagerDuty REST API: one
// *Client per configured account (Accounts), built on go-pagerduty v1.8.0 and extended on
// the same HTTP stack for what that library lacks (Alert Grouping Settings, exact-name
// service lookup, scoped OAuth client credentials).
//
// Every HTTP attempt of an account, retries and OAuth token fetches included, passes
// through one stack:
//
//	go-pagerduty / own REST helper
//	  → auth      (Authorization header; OAuth token cache; one re-fetch after a 401)
//	  → retry     (go-retryablehttp: transport errors, 429 and 5xx only; ratelimit-reset honoured)
//	  → attempt   (per-account token-bucket budget, metrics, capture of the final status)
//	  → base transport
//
// Errors are classified here and nowhere else: callers receive *APIError (see ClassOf,
// IsRetryable, IsNotFound, IsConflict, IsEntitlement, IsNameTaken) or, when their context
// or the call deadline ended, an error matching context.Canceled / context.DeadlineExceeded
// (IsCallTimeout tells the call deadline apart).
//
// This package imports only internal/secret from this module. It must not import the
// NATS layers (events, workers), actions, internal/httpapi, internal/app or the
// simulator (internal/pdsim is used by tests only).
package pagerduty
