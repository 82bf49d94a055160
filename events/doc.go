// Package events owns everything pdworker knows about NATS itself: the subjects it
// publishes and consumes, the JetStream streams and key-value buckets behind them (one
// table, provisioned idempotently), the embedded NATS server used when NATS_URL is
// empty, the client connection, the job store for scaffolder actions (submit, claim,
// checkpoint, result) and the dead-letter envelope.
//
// It knows nothing about what the messages mean beyond their envelopes: it must not
// import workers, actions, schemas, internal/pagerduty, internal/httpapi or
// internal/app. Callers pass a jetstream.JetStream in; this package keeps no global
// connection.
package events
