package events

import "strings"

// Subjects and subject prefixes that pdworker publishes or consumes. The streams that
// store them are listed in Streams.
const (
	// SubjectActionPrefix prefixes every scaffolder action job subject.
	SubjectActionPrefix = "scaffolder.action."
	// SubjectServiceCreate carries pagerduty:service:create jobs (a JobRequest body,
	// header Nats-Msg-Id = job id).
	SubjectServiceCreate = SubjectActionPrefix + "pagerduty.service.create"
	// SubjectResultPrefix prefixes the result subject of every job; see ResultSubject.
	SubjectResultPrefix = "scaffolder.result."

	// SubjectCatalogUpserted carries {"entity": …} when a Backstage entity changed.
	SubjectCatalogUpserted = "catalog.entity.upserted"
	// SubjectCatalogDeleted carries {"entityRef": …} when a Backstage entity was removed.
	SubjectCatalogDeleted = "catalog.entity.deleted"

	// SubjectWebhookPrefix prefixes stored PagerDuty webhook deliveries; see WebhookSubject.
	SubjectWebhookPrefix = "pagerduty.webhook."
	// SubjectEntityPrefix prefixes webhook events resolved to a Backstage entity; see
	// EntitySubject.
	SubjectEntityPrefix = "pagerduty.entity."

	// SubjectDepsyncRun asks for a dependency reconcile now ({"dryRun": bool}).
	SubjectDepsyncRun = "depsync.run"
	// SubjectDepsyncReport carries the plan and outcome of a dependency reconcile.
	SubjectDepsyncReport = "depsync.report"

	// SubjectDeadLetterPrefix prefixes dead letters; see DeadLetterSubject.
	SubjectDeadLetterPrefix = "deadletter."
)

// Headers of a stored PagerDuty webhook delivery, set by the webhook receiver (and by
// anyone else who stores deliveries) and read by the webhook worker.
const (
	// HeaderWebhookAccount names the account a delivery belongs to: the `account`
	// query parameter of the subscription URL (…/api/pagerduty/webhooks?account=acme);
	// absent for the default account.
	HeaderWebhookAccount = "Pdworker-Account"
	// HeaderWebhookSubscription carries the delivery's X-Webhook-Subscription.
	HeaderWebhookSubscription = "Pdworker-Webhook-Subscription"
)

// ResultSubject returns the subject on which the result of job jobID is published:
// "scaffolder.result.<jobID>".
func ResultSubject(jobID string) string {
	return SubjectResultPrefix + jobID
}

// WebhookSubject returns the subject that stores a PagerDuty webhook event of the given
// type, for example "pagerduty.webhook.incident.triggered". Characters that NATS does
// not allow in a subject are replaced, and an empty type becomes "unknown", so any
// string a webhook sends gives a valid subject.
func WebhookSubject(eventType string) string {
	return SubjectWebhookPrefix + subjectTokens(eventType)
}

// EntitySubject returns the subject for a webhook event resolved to a Backstage
// entity, for example "pagerduty.entity.incident.triggered". The event type is cleaned
// as in WebhookSubject.
func EntitySubject(eventType string) string {
	return SubjectEntityPrefix + subjectTokens(eventType)
}

// DeadLetterSubject returns the subject that stores a dead letter for a message
// originally published on subject: "deadletter.<subject>".
func DeadLetterSubject(subject string) string {
	return SubjectDeadLetterPrefix + subject
}

// subjectTokens turns an arbitrary string into one or more valid, non-wildcard subject
// tokens. Dots stay separators; empty tokens, wildcards, whitespace and control
// characters do not survive.
func subjectTokens(s string) string {
	parts := strings.Split(s, ".")
	out := parts[:0]
	for _, p := range parts {
		p = strings.Map(func(r rune) rune {
			switch {
			case r == '*' || r == '>' || r <= ' ' || r == 0x7f:
				return '_'
			default:
				return r
			}
		}, p)
		if p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return "unknown"
	}
	return strings.Join(out, ".")
}
