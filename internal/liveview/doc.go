// Package liveview owns the live view of PagerDuty services that webhooks keep fresh:
// per service, its open incidents (status, urgency, title, assignees, html_url, last
// change), counts by status, and whether the service still exists. It is stored in
// the key-value bucket events.BucketLiveView, one document per service, updated with
// compare-and-set so that several workers can apply events at once.
//
// Applying an event never moves state backwards: each incident keeps the
// (occurred_at, event id) of the event that set its state, and an event that is not
// newer changes nothing. Resolved incidents leave a tombstone for TombstoneRetention,
// so a late incident.acknowledged cannot reopen them. Applying the same event twice
// is therefore harmless, which is what makes redelivery safe.
//
// It imports events (bucket names) and internal/webhook (event types) from this
// module, and must not import workers, internal/httpapi or internal/app.
package liveview
