package webhook_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/pdworker/pdworker/internal/secret"
	"github.com/pdworker/pdworker/internal/webhook"
)

// FuzzDecode feeds arbitrary bodies to Decode and the typed accessors. It runs its
// seed corpus (testdata/fuzz/FuzzDecode, real payload shapes) in every `go test`;
// `go test -fuzz FuzzDecode ./internal/webhook` explores further.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "webhooks", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := webhook.Decode(body)
		if err != nil {
			if env != nil {
				t.Fatalf("Decode returned an envelope with error %v", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("Decode accepted a body that is not valid JSON: %q", body)
		}
		if env.Event.ID == "" || env.Event.EventType == "" || env.Event.ResourceType == "" || env.Event.OccurredAt.IsZero() {
			t.Fatalf("Decode accepted an envelope without its identity: %+v", env.Event)
		}
		_ = env.Event.ServiceID()
		_ = env.Event.IncidentID()
		if inc, err := env.Event.Incident(); err == nil && inc.ID == "" {
			t.Fatal("Incident returned data without id")
		}
		if svc, err := env.Event.Service(); err == nil && svc.ID == "" {
			t.Fatal("Service returned data without id")
		}
	})
}

// FuzzParseSignatureHeader checks that no header makes the parser or the verifier
// panic, and that a header the parser rejects is never accepted.
func FuzzParseSignatureHeader(f *testing.F) {
	body := []byte(`{"event":{"id":"1"}}`)
	s := secret.Value("fuzz-secret")
	f.Add(webhook.Sign(s, body))
	f.Add(webhook.Sign(s, body) + "," + webhook.Sign("other", body))
	f.Add("v1=,v1=zz,v0=abc")
	f.Add("")
	f.Fuzz(func(t *testing.T, header string) {
		sigs, perr := webhook.ParseSignatureHeader(header)
		verr := webhook.VerifySignature(header, body, []secret.Value{s})
		if perr != nil && verr == nil {
			t.Fatalf("header rejected by the parser (%v) but accepted by the verifier", perr)
		}
		for _, sig := range sigs {
			if len(sig) != 32 {
				t.Fatalf("signature of %d bytes", len(sig))
			}
		}
	})
}
