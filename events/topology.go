package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	StreamScaffolderJobs    = "SCAFFOLDER_JOBS"
	StreamScaffolderResults = "SCAFFOLDER_RESULTS"
	StreamPagerDutyWebhooks = "PAGERDUTY_WEBHOOKS"
	StreamPagerDutyEntity   = "PAGERDUTY_ENTITY"
	StreamCatalog           = "CATALOG"
	StreamDepsync           = "DEPSYNC"
	StreamDeadLetter        = "DEADLETTER"
)

// Key-value bucket names.
const (
	// BucketActionResults holds the JobResult of every finished job, keyed by job id.
	BucketActionResults = "action_results"
	// BucketActionState holds job claims (Idempotency-Key fingerprints) and the step
	// checkpoints of running jobs.
	BucketActionState = "action_state"

	// PagerDuty webhooks.

	// BucketWebhookSeen holds one record per processed webhook delivery (by
	// X-Webhook-Id), kept longer than PagerDuty retries, so a late duplicate is
	// recognised after JetStream's duplicate window has passed.
	BucketWebhookSeen = "webhook_seen"
	// BucketLiveView holds the live view of PagerDuty services built from webhooks:
	// open incidents and counts per service, and the incident → service index.
	BucketLiveView = "pagerduty_live"

	// Catalog, mappings and dependency sync.

	// BucketMappings holds explicit PagerDuty service ↔ Backstage entity mappings and
	// the plugin settings rows.
	BucketMappings = "mappings"
	// BucketCatalogEntities holds the snapshot of every Backstage entity the catalog
	// consumers saw (annotations, dependsOn) and the catalog watcher's etags.
	BucketCatalogEntities = "catalog_entities"
	// BucketDepsync holds the dependency-sync lease, the last observed PagerDuty
	// dependencies per service and edges PagerDuty refused.
	BucketDepsync = "depsync"
)

const (
	day = 24 * time.Hour
	// jobRetention bounds how long jobs, results, claims and checkpoints are kept.
	jobRetention = 7 * day
)

// Streams returns the definition of every JetStream stream pdworker uses, with the
// given number of replicas (values below 1 mean 1). It is the single place where
// subjects are mapped to streams; Provision applies it.
//
// Work-queue streams (SCAFFOLDER_JOBS, CATALOG) delete a message once it is
// acknowledged or terminated and admit only one consumer per subject, so each of
// their subjects has exactly one durable consumer. Every stream uses file storage.
func Streams(replicas int) []jetstream.StreamConfig {
	streams := []jetstream.StreamConfig{
		{
			Name:        StreamScaffolderJobs,
			Description: "scaffolder action jobs, one message per job id",
			Subjects:    []string{SubjectActionPrefix + ">"},
			Retention:   jetstream.WorkQueuePolicy,
			MaxAge:      jobRetention,
			Duplicates:  10 * time.Minute,
		},
		{
			Name:        StreamScaffolderResults,
			Description: "results of scaffolder action jobs (also kept in the action_results bucket)",
			Subjects:    []string{SubjectResultPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      day,
		},
		{
			Name:        StreamPagerDutyWebhooks,
			Description: "PagerDuty v3 webhook deliveries as received, de-duplicated by webhook id",
			Subjects:    []string{SubjectWebhookPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      7 * day,
			Duplicates:  2 * time.Minute,
		},
		{
			Name:        StreamPagerDutyEntity,
			Description: "PagerDuty webhook events resolved to the Backstage entity they concern",
			Subjects:    []string{SubjectEntityPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      day,
		},
		{
			Name:        StreamCatalog,
			Description: "Backstage catalog entity changes to apply to mappings and dependencies",
			Subjects:    []string{"catalog.entity.>"},
			Retention:   jetstream.WorkQueuePolicy,
			MaxAge:      7 * day,
		},
		{
			Name:        StreamDepsync,
			Description: "dependency-sync run requests and reports",
			Subjects:    []string{"depsync.>"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      7 * day,
		},
		{
			Name:        StreamDeadLetter,
			Description: "messages a consumer gave up on, with the reason in Pdworker-Dlq-* headers",
			Subjects:    []string{SubjectDeadLetterPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      30 * day,
		},
	}
	for i := range streams {
		streams[i].Storage = jetstream.FileStorage
		streams[i].Replicas = max(replicas, 1)
	}
	return streams
}

// Buckets returns the definition of every key-value bucket pdworker uses, with the
// given number of replicas (values below 1 mean 1).
func Buckets(replicas int) []jetstream.KeyValueConfig {
	r := max(replicas, 1)
	return []jetstream.KeyValueConfig{
		{
			Bucket:      BucketActionResults,
			Description: "scaffolder job results by job id",
			TTL:         jobRetention,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		{
			Bucket:      BucketActionState,
			Description: "scaffolder job claims and step checkpoints",
			TTL:         jobRetention,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		// PagerDuty webhooks: seen records expire after WebhookSeenTTL; the
		// live view is kept until changed.
		{
			Bucket:      BucketWebhookSeen,
			Description: "processed PagerDuty webhook deliveries by webhook id",
			TTL:         WebhookSeenTTL,
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		{
			Bucket:      BucketLiveView,
			Description: "live view of PagerDuty services built from webhooks",
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		// Catalog, mappings and dependency sync: kept until changed.
		{
			Bucket:      BucketMappings,
			Description: "PagerDuty service to Backstage entity mappings and plugin settings",
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		{
			Bucket:      BucketCatalogEntities,
			Description: "Backstage catalog entity snapshots and watcher state",
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
		{
			Bucket:      BucketDepsync,
			Description: "dependency-sync lease, observed PagerDuty dependencies and refused edges",
			Storage:     jetstream.FileStorage,
			Replicas:    r,
		},
	}
}

// IsKVConflict reports a lost compare-and-set on a key-value bucket: a Create of a key
// that exists or an Update of a revision that is no longer the last. A replicated
// bucket may report either case with either error, so callers check both through here.
func IsKVConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// Provision creates every stream of Streams and every bucket of Buckets that does not
// exist yet, and updates those whose settings drifted from the table (subjects,
// retention, limits, duplicate window, storage, replicas, description). On a setup
// that already matches it only reads. Changes the server cannot apply in place (for
// example the retention policy of an existing stream) come back as errors naming the
// stream.
func Provision(ctx context.Context, js jetstream.JetStream, replicas int) error {
	for _, want := range Streams(replicas) {
		if err := provisionStream(ctx, js, want); err != nil {
			return fmt.Errorf("provision stream %s (NATS_REPLICAS=%d): %w", want.Name, replicas, err)
		}
	}
	for _, want := range Buckets(replicas) {
		if err := provisionBucket(ctx, js, want); err != nil {
			return fmt.Errorf("provision key-value bucket %s (NATS_REPLICAS=%d): %w", want.Bucket, replicas, err)
		}
	}
	return nil
}

func provisionStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, want)
		return err
	}
	if err != nil {
		return err
	}
	have := s.CachedInfo().Config
	if !streamDrifted(have, want) {
		return nil
	}
	// Start from the server's view so that settings this table does not manage
	// (limits set by an operator, placement, sources) are kept.
	next := have
	next.Description = want.Description
	next.Subjects = want.Subjects
	next.Retention = want.Retention
	next.MaxAge = want.MaxAge
	next.Storage = want.Storage
	next.Replicas = want.Replicas
	if want.Duplicates > 0 {
		next.Duplicates = want.Duplicates
	}
	_, err = js.UpdateStream(ctx, next)
	return err
}

func streamDrifted(have, want jetstream.StreamConfig) bool {
	return have.Description != want.Description ||
		!slices.Equal(have.Subjects, want.Subjects) ||
		have.Retention != want.Retention ||
		have.MaxAge != want.MaxAge ||
		have.Storage != want.Storage ||
		have.Replicas != want.Replicas ||
		(want.Duplicates > 0 && have.Duplicates != want.Duplicates)
}

func provisionBucket(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig) error {
	_, err := js.KeyValue(ctx, want.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = js.CreateKeyValue(ctx, want)
		return err
	}
	if err != nil {
		return err
	}
	// A bucket is a stream named KV_<bucket>; its config tells whether the bucket drifted.
	s, err := js.Stream(ctx, "KV_"+want.Bucket)
	if err != nil {
		return err
	}
	have := s.CachedInfo().Config
	history := int64(max(want.History, 1))
	if have.Description == want.Description &&
		have.MaxAge == want.TTL &&
		have.Storage == want.Storage &&
		have.Replicas == want.Replicas &&
		have.MaxMsgsPerSubject == history {
		return nil
	}
	_, err = js.UpdateKeyValue(ctx, want)
	return err
}
