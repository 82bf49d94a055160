package webhook_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/secret"
	"github.com/pdworker/pdworker/internal/webhook"
)

func payload(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "webhooks", name))
	require.NoError(t, err)
	return b
}

func TestDecodeRealPayloads(t *testing.T) {
	tests := []struct {
		file, eventType, resource, service, incident string
	}{
		{"incident_triggered.json", "incident.triggered", "incident", "PF9KMXH", "PGR0VU2"},
		{"incident_acknowledged.json", "incident.acknowledged", "incident", "PF9KMXH", "PGR0VU2"},
		{"incident_resolved.json", "incident.resolved", "incident", "PF9KMXH", "PGR0VU2"},
		{"incident_annotated.json", "incident.annotated", "incident", "", "PGR0VU2"},
		{"service_updated.json", "service.updated", "service", "PF9KMXH", ""},
		{"service_deleted.json", "service.deleted", "service", "PF9KMXH", ""},
		{"pagey_ping.json", "pagey.ping", "pagey", "", ""},
		{"unknown_type.json", "incident.early_access_thing", "incident", "", "PGR0VU2"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := payload(t, tt.file)
			env, err := webhook.Decode(body)
			require.NoError(t, err)
			var whole struct{ Event json.RawMessage }
			require.NoError(t, json.Unmarshal(body, &whole))
			assert.Equal(t, string(whole.Event), string(env.Event.Raw), "the event object as sent")
			assert.Equal(t, tt.eventType, env.Event.EventType)
			assert.Equal(t, tt.resource, env.Event.ResourceType)
			assert.Equal(t, tt.service, env.Event.ServiceID())
			assert.Equal(t, tt.incident, env.Event.IncidentID())
			assert.False(t, env.Event.OccurredAt.IsZero())
		})
	}
}

func TestIncidentData(t *testing.T) {
	env, err := webhook.Decode(payload(t, "incident_triggered.json"))
	require.NoError(t, err)
	inc, err := env.Event.Incident()
	require.NoError(t, err)
	assert.Equal(t, "PGR0VU2", inc.ID)
	assert.Equal(t, 2, inc.Number)
	assert.Equal(t, webhook.StatusTriggered, inc.Status)
	assert.Equal(t, "high", inc.Urgency)
	assert.Equal(t, "A little bump in the road", inc.Title)
	assert.Equal(t, "https://acme.pagerduty.com/incidents/PGR0VU2", inc.HTMLURL)
	require.Len(t, inc.Assignees, 1)
	assert.Equal(t, "PTUXL6G", inc.Assignees[0].ID)

	ping, err := webhook.Decode(payload(t, "pagey_ping.json"))
	require.NoError(t, err)
	_, err = ping.Event.Incident()
	require.Error(t, err)
	note, err := webhook.Decode(payload(t, "incident_annotated.json"))
	require.NoError(t, err)
	_, err = note.Event.Incident()
	require.Error(t, err, "an incident_note is not incident data")

	svcEnv, err := webhook.Decode(payload(t, "service_updated.json"))
	require.NoError(t, err)
	svc, err := svcEnv.Event.Service()
	require.NoError(t, err)
	assert.Equal(t, "PF9KMXH", svc.ID)
	assert.Equal(t, "API Service", svc.Summary)
}

func TestDecodeRejects(t *testing.T) {
	tests := map[string]string{
		"empty":             ``,
		"not json":          `hello`,
		"array":             `[{"event":{}}]`,
		"no event":          `{"messages":[]}`,
		"event null":        `{"event":null}`,
		"missing id":        `{"event":{"event_type":"pagey.ping","resource_type":"pagey","occurred_at":"2022-03-08T00:48:45.512Z"}}`,
		"blank type":        `{"event":{"id":"1","event_type":" ","resource_type":"pagey","occurred_at":"2022-03-08T00:48:45.512Z"}}`,
		"bad time":          `{"event":{"id":"1","event_type":"pagey.ping","resource_type":"pagey","occurred_at":"yesterday"}}`,
		"id not string":     `{"event":{"id":1,"event_type":"pagey.ping","resource_type":"pagey","occurred_at":"2022-03-08T00:48:45.512Z"}}`,
		"data not object":   `{"event":{"id":"1","event_type":"pagey.ping","resource_type":"pagey","occurred_at":"2022-03-08T00:48:45.512Z","data":[1]}}`,
		"trailing data":     `{"event":{"id":"1","event_type":"pagey.ping","resource_type":"pagey","occurred_at":"2022-03-08T00:48:45.512Z"}} {}`,
		"v2 webhook format": `{"messages":[{"event":"incident.trigger","incident":{}}]}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := webhook.Decode([]byte(body))
			require.ErrorIs(t, err, webhook.ErrNotEnvelope)
		})
	}
}

func TestVerifySignature(t *testing.T) {
	body := payload(t, "incident_triggered.json")
	oldSecret, newSecret := secret.Value("old-secret-0123456789"), secret.Value("new-secret-9876543210")
	other := secret.Value("someone-else")
	good := webhook.Sign(oldSecret, body)
	rotated := webhook.Sign(oldSecret, body) + "," + webhook.Sign(newSecret, body)

	tests := []struct {
		name    string
		header  string
		body    []byte
		secrets []secret.Value
		want    error
	}{
		{"good", good, body, []secret.Value{oldSecret}, nil},
		{"good with spaces", " " + good + " ", body, []secret.Value{oldSecret}, nil},
		{"rotated header, old secret only", rotated, body, []secret.Value{oldSecret}, nil},
		{"rotated header, new secret only", rotated, body, []secret.Value{newSecret}, nil},
		{"rotated header, both secrets", rotated, body, []secret.Value{newSecret, oldSecret}, nil},
		{"one signature, second secret matches", webhook.Sign(newSecret, body), body, []secret.Value{oldSecret, newSecret}, nil},
		{"unknown scheme beside v1", "v0=abc," + good, body, []secret.Value{oldSecret}, nil},
		{"wrong secret", good, body, []secret.Value{other}, webhook.ErrBadSignature},
		{"rotated header, wrong secrets", rotated, body, []secret.Value{other}, webhook.ErrBadSignature},
		{"body altered after signing", good, append([]byte(" "), body...), []secret.Value{oldSecret}, webhook.ErrBadSignature},
		{"missing", "", body, []secret.Value{oldSecret}, webhook.ErrMissingSignature},
		{"blank", "   ", body, []secret.Value{oldSecret}, webhook.ErrMissingSignature},
		{"no v1 prefix", strings.TrimPrefix(good, "v1="), body, []secret.Value{oldSecret}, webhook.ErrMalformedSignature},
		{"v2 only", "v2=" + strings.TrimPrefix(good, "v1="), body, []secret.Value{oldSecret}, webhook.ErrMalformedSignature},
		{"not hex", "v1=" + strings.Repeat("zz", 32), body, []secret.Value{oldSecret}, webhook.ErrMalformedSignature},
		{"short", good[:20], body, []secret.Value{oldSecret}, webhook.ErrMalformedSignature},
		{"upper-case hex", "v1=" + strings.ToUpper(strings.TrimPrefix(good, "v1=")), body, []secret.Value{oldSecret}, nil},
		{"no secrets", good, body, nil, webhook.ErrNoSecrets},
		{"only empty secrets", good, body, []secret.Value{""}, webhook.ErrNoSecrets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.VerifySignature(tt.header, tt.body, tt.secrets)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			for _, s := range tt.secrets {
				if !s.IsZero() {
					assert.NotContains(t, err.Error(), s.Reveal())
				}
			}
		})
	}
}

// TestSignKnownVector checks Sign against the test vector of go-pagerduty's webhookv3
// package, which PagerDuty's own signer produced.
func TestSignKnownVector(t *testing.T) {
	body := []byte(`{"event":{"id":"01BZ2I4Z1JIM4XC1LDU4ATEKAO","event_type":"service.updated","resource_type":"service","occurred_at":"2022-07-13T13:47:52.549Z","agent":null,"client":null,"data":{"id":"PF9KMXH","type":"service"}}}`)
	s := secret.Value("s3cr3t")
	sig := webhook.Sign(s, body)
	require.NoError(t, webhook.VerifySignature(sig, body, []secret.Value{s}))
	assert.Regexp(t, `^v1=[0-9a-f]{64}$`, sig)
}
