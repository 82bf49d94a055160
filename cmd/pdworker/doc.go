// Command pdworker runs the PagerDuty worker service for Backstage: scaffolder actions,
// PagerDuty webhooks, catalog-driven dependency sync and the API of the PagerDuty
// frontend plugin, with NATS JetStream carrying the work.
//
// Usage:
//
//	pdworker              serve (settings from the environment; see README.md)
//	pdworker --simulate   serve against an in-process PagerDuty simulator with demo data
//	pdworker sync [--dry-run] [--force] [--refresh] [entityRef…]
//	                      run one dependency reconcile against the NATS of a running
//	                      pdworker and print its report as JSON
//	pdworker version      print the version
package main
