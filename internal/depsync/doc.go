// Package depsync keeps PagerDuty service dependencies in step with the Backstage
// catalog's dependsOn: it computes a plan from the mapping store's view and PagerDuty's
// side, applies it in batches through the PagerDuty client's rate budget under the
// configured strategy (disabled, backstage, both) and a safety guard against mass
// removal, reports every run on depsync.report, and runs a periodic full reconcile on
// exactly one replica (a lease in the depsync bucket).
//
// PagerDuty's side is cached per service in the depsync bucket; the periodic job
// refreshes only a slice of the stale observations on each tick, so reads are spread
// over DEPSYNC_INTERVAL. Only edges between two mapped services of the same account are
// managed: PagerDuty dependencies on unmapped services are never touched.
//
// It imports internal/mapping, internal/pagerduty, events, schemas and workers (for
// the depsync.run handler); it must not import internal/httpapi, internal/app or
// actions.
package depsync
