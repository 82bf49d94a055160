// Package natstest starts a real, embedded NATS server with JetStream for tests, with
// pdworker's streams and buckets provisioned, and stops it when the test ends.
//
// Only test code imports it. It imports events and nothing else from this module.
package natstest
