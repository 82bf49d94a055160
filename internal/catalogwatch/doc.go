// Package catalogwatch is the bridge from the Backstage catalog to NATS: Backstage
// emits no catalog-change events, so one replica (a lease in the catalog_entities
// bucket) polls GET /api/catalog/entities/by-query every CATALOG_POLL_INTERVAL with
// BACKSTAGE_TOKEN, walks the cursor pages asking only for the fields mapping and
// dependency sync read, diffs each entity's metadata.etag by metadata.uid against the
// last state it recorded (kept in the same bucket, so a restart or another replica does
// not publish everything again), and publishes catalog.entity.upserted and
// catalog.entity.deleted with a Nats-Msg-Id derived from uid and etag.
//
// A poll that fails anywhere publishes no deletion; failures are logged with a clear
// reason and retried with growing waits, never ending the process.
//
// It imports events, internal/mapping (ref normalisation) and internal/secret; it must
// not import internal/httpapi, internal/app, internal/catalog, internal/depsync or
// workers: consumers do not care who publishes.
package catalogwatch
