// Package workers owns pdworker's JetStream consumers: the one consumer wrapper
// (Consumer), a durable pull consumer that runs a Handler for each message with
// bounded concurrency and decides, in one place, whether the message is
// acknowledged, retried later (with a growing delay that honours a PagerDuty
// rate-limit reset) or dead-lettered; the consumer metrics; and the handlers built on
// the wrapper.
//
// Handlers state what went wrong only through the error they return: nil, a
// Permanent error (or one whose Permanent() is true or Temporary() is false), or any
// other error, which is retried. Handlers never ack.
//
// The wrapper itself (consumer.go, errors.go, metrics.go) imports only events from
// this module. Nothing here may import internal/httpapi, internal/app or cmd.
package workers
