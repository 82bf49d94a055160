// Package mapping owns the link between PagerDuty services and Backstage entities:
// explicit mappings (set through POST /mapping/entity; an empty entity ref means
// "explicitly unmapped"), the catalog entity snapshots whose pagerduty.com/*
// annotations are the second source, the effective resolution of a service to an
// entity (explicit first, annotations second), the plugin settings rows, and the
// normalisation of entity refs.
//
// Everything lives in JetStream key-value buckets (events.BucketMappings and
// events.BucketCatalogEntities), so every replica sees the same mappings. The package
// does not talk to PagerDuty or Backstage: callers resolve integration keys before they
// store a snapshot. It must not import internal/httpapi, internal/app, workers,
// actions or internal/pagerduty.
package mapping
