// Package card serves the data of the official PagerDuty card in Backstage: services,
// open incidents, change events, on-call users, standards, metrics and the escalation
// policy list, read from PagerDuty through internal/pagerduty and kept in a cache.
//
// The cache is keyed by route, account and object (service, escalation policies), and
// every key has one fetch in flight at a time (single-flight): any number of viewers of
// one service cost PagerDuty at most one call per route per cache period. Entries
// expire after Config.TTL, or at once when a PagerDuty webhook event about their
// service arrives (Cards.Subscribe). When PagerDuty fails (429, 5xx, timeouts) the last
// good answer is served with Meta.Stale set, for up to Config.StaleFor; every read has
// a deadline (Config.Deadline), so no caller waits longer than that.
//
// It also does the card's writes: the Backstage integration (idempotent per service and
// vendor) and the server-side incident trigger (Events API v2 with a dedup_key).
//
// It must not import internal/httpapi or internal/app.
package card
