package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pdworker/pdworker/events"
)

// TestRunMeasuresAndChecksEverything runs both measurements briefly and checks that
// they completed their own verifications: every accepted delivery stored, every
// incident change seen in the live view, and a verdict for each objective. Figures
// are not judged here; the machine is shared.
func TestRunMeasuresAndChecksEverything(t *testing.T) {
	var out bytes.Buffer
	o := options{
		mode: "all", rates: []int{baselineRate}, duration: 300 * time.Millisecond,
		concurrency: []int{2, 8}, store: storeDurable, maxDuration: 300 * time.Millisecond, rounds: 2,
		e2eRate: 30, e2eDuration: time.Second,
	}
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"| receiver | fixed 1000/s, 300ms |",
		"| floor (bare 204) | max, 8 clients, 300ms, round 2 |",
		"receiver's best against the floor's best, round by round: ",
		"every 2xx of the receiver was in stream PAGERDUTY_WEBHOOKS",
		"counted after each of 6 runs (warm-up and lead-ins included)",
		"- target: p99 under 10 ms at 1000/s",
		"- target: at least 50 % of the floor's maximum throughput",
		"- goal: at least 70 % of the floor's maximum throughput",
		"## End to end",
		"10 incidents × 3 changes",
		"30 of 30 changes observed in the live view",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestFlagLists(t *testing.T) {
	if got, err := positiveInts("-concurrency", "16, 64,256"); err != nil || len(got) != 3 || got[1] != 64 {
		t.Errorf("positiveInts(16, 64,256) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "-1", "8,x", "8,,16"} {
		if _, err := positiveInts("-concurrency", bad); err == nil || !strings.Contains(err.Error(), "-concurrency") {
			t.Errorf("positiveInts(%q): error %v, want one naming the flag", bad, err)
		}
	}
}

// TestStoredThenPurged checks the per-run check itself: a count that does not match
// what the stream holds fails and leaves the stream as it was; a matching one empties
// it.
func TestStoredThenPurged(t *testing.T) {
	ctx := context.Background()
	env, err := startNATS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer env.close()
	for i := range 3 {
		if _, err := env.js.Publish(ctx, events.WebhookSubject("incident.triggered"), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := storedThenPurged(ctx, env.js, 2); err == nil || !strings.Contains(err.Error(), "answered 2xx 2 times but stream PAGERDUTY_WEBHOOKS holds 3 messages") {
		t.Fatalf("2 accepted, 3 stored: error %v", err)
	}
	if err := storedThenPurged(ctx, env.js, 3); err != nil {
		t.Fatalf("3 accepted, 3 stored: %v", err)
	}
	if err := storedThenPurged(ctx, env.js, 0); err != nil {
		t.Fatalf("after the purge: %v", err)
	}
}
