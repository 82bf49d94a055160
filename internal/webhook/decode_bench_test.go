package webhook_test

import (
	"os"
	"testing"

	"github.com/pdworker/pdworker/internal/webhook"
)

func BenchmarkDecode(b *testing.B) {
	body, err := os.ReadFile("testdata/webhooks/incident_triggered.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := webhook.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}
