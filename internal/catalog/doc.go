// Package catalog brings Backstage catalog changes in: the consumer handler for
// catalog.entity.upserted and catalog.entity.deleted (validate, keep the entity
// snapshot in the mapping store, resolve integration-key-only entities to their
// PagerDuty service, mark the entity for dependency reconcile).
//
// It imports internal/mapping, internal/pagerduty, schemas and workers (for the
// handler signature); it must not import internal/httpapi, internal/app or actions.
package catalog
