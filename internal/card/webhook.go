package card

import "github.com/pdworker/pdworker/internal/webhook"

// WebhookServiceID is the ServiceOfFunc for PagerDuty v3 webhook envelopes as stored on
// pagerduty.webhook.*: the service the event concerns, decoded with internal/webhook.
func WebhookServiceID(body []byte) (string, error) {
	env, err := webhook.Decode(body)
	if err != nil {
		return "", err
	}
	return env.Event.ServiceID(), nil
}
