// Command pdworker runs the PagerDuty worker service for Backstage: scaffolder actions,
// PagerDuty webhooks, catalog-driven dependency sync and the API of the PagerDuty
// frontend plugin, with NATS JetStream carrying the work.
//
// Usage:
//
//	pdworker              serve (settings from the environment; see README.md)
//	pdworker --simulate   serve against an in-process PagerDuty simulator with demo data
//	pdworker version      print the version
package main
