package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
		"| receiver | lead-in 1000/s, 2s, uncounted |",
		"| floor (bare 204) | max, 8 clients, 300ms, round 2 |",
		"receiver's best against the floor's best, round by round: ",
		"every 2xx of the receiver was in stream PAGERDUTY_WEBHOOKS",
		"checked after each of 6 runs (warm-up and lead-ins included)",
		"- target: p99 under 10 ms at 1000/s",
		"- target: at least 50 % of the floor's maximum throughput",
		"- goal: at least 70 % of the floor's maximum throughput",
		"## End to end",
		"10 incidents × 3 changes",
		"30 of 30 changes observed in the live view (",
		" only through a later state of the same incident); ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestObserveCountsLaterStates checks the end-to-end join: a change whose state the
// live view skipped (a later change of the same incident was applied first) counts
// as observed when that later state appeared, apart from those seen directly; an
// incident counts as settled only once its final state appeared.
func TestObserveCountsLaterStates(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	changes := &changeLog{at: map[string]time.Time{}}
	for i, dedup := range []string{"a", "b", "c"} {
		for j, step := range lifecycle() {
			changes.note(dedup+"/"+step.status, t0.Add(time.Duration(10*i+j)*time.Second))
		}
	}
	idOf := map[string]string{"a": "PA", "b": "PB", "c": "PC"}
	first := map[string]time.Time{
		// a: every state seen, 1 s after its request.
		"PA/triggered":    t0.Add(1 * time.Second),
		"PA/acknowledged": t0.Add(2 * time.Second),
		"PA/resolved":     t0.Add(3 * time.Second),
		// b: triggered never shown; acknowledged shows 1 s after it was requested.
		"PB/acknowledged": t0.Add(12 * time.Second),
		"PB/resolved":     t0.Add(13 * time.Second),
		// c: triggered seen, then nothing yet.
		"PC/triggered": t0.Add(21 * time.Second),
	}
	got := observe([]string{"a", "b", "c"}, idOf, changes, first)
	if got.direct != 6 || got.superseded != 1 {
		t.Errorf("direct %d, superseded %d; want 6, 1", got.direct, got.superseded)
	}
	if !slices.Equal(got.unsettled, []string{"c"}) {
		t.Errorf("unsettled %v, want [c]", got.unsettled)
	}
	want := []time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second, time.Second, 2 * time.Second}
	if !slices.Equal(got.latencies, want) {
		t.Errorf("latencies %v, want %v", got.latencies, want)
	}

	// Once c's resolution shows, c's acknowledgement counts through it too.
	first["PC/resolved"] = t0.Add(25 * time.Second)
	got = observe([]string{"a", "b", "c"}, idOf, changes, first)
	if got.direct != 7 || got.superseded != 2 || len(got.unsettled) != 0 || len(got.latencies) != 9 {
		t.Errorf("after c resolved: direct %d, superseded %d, unsettled %v, %d latencies; want 7, 2, none, 9",
			got.direct, got.superseded, got.unsettled, len(got.latencies))
	}
	if got.latencies[8] != 4*time.Second {
		t.Errorf("c's acknowledgement: latency %v, want 4s (requested at 21 s, resolved seen at 25 s)", got.latencies[8])
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

// TestStoredThenPurged checks the per-run check itself: it fails on a delivery
// answered 2xx that is not stored and on a stored one that was never sent, leaving
// the stream as it was; unanswered deliveries may or may not be stored; a passing
// check empties the stream.
func TestStoredThenPurged(t *testing.T) {
	ctx := context.Background()
	env, err := startNATS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer env.close()
	for _, id := range []string{"a", "b", "c"} {
		m := nats.NewMsg(events.WebhookSubject("incident.triggered"))
		m.Header.Set(jetstream.MsgIDHeader, id)
		if _, err := env.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	none := map[string]bool{}
	tests := []struct {
		name       string
		accepted   []string
		unanswered map[string]bool
		want       string // error text; empty: the check passes
	}{
		{"one stored that was never sent", []string{"a", "b"}, none, "holds 1 messages that this run did not accept"},
		{"same count, other ids", []string{"a", "b", "d"}, none, "1 of 3 deliveries answered 2xx are missing from stream PAGERDUTY_WEBHOOKS (first: d)"},
		{"one accepted lost", []string{"a", "b", "d"}, map[string]bool{"c": true}, "1 of 3 deliveries answered 2xx are missing"},
	}
	for _, tt := range tests {
		if _, err := storedThenPurged(ctx, env.js, tt.accepted, tt.unanswered); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Fatalf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	n, err := storedThenPurged(ctx, env.js, []string{"a", "b"}, map[string]bool{"c": true, "e": true})
	if err != nil || n != 1 {
		t.Fatalf("a, b accepted, c and e unanswered: got %d stored unanswered, error %v; want 1, nil", n, err)
	}
	if n, err := storedThenPurged(ctx, env.js, nil, none); err != nil || n != 0 {
		t.Fatalf("after the purge: %d, %v", n, err)
	}
}
