// Command pdload measures the PagerDuty webhook path on this machine and prints the
// figures BENCHMARKS.md records. Everything runs in one process over loopback: an
// embedded NATS server with file storage (reached over TCP, as pdworker does), the
// receiver as pdworker serves it (httpapi.New with routing, metrics and panic
// recovery around POST /api/pagerduty/webhooks: body cap, signature check, envelope
// decode, durable JetStream publish), and a bare handler that reads the body and
// answers 204 (the floor).
//
// Two measurements:
//
//   - ingest: the floor and the receiver, one after the other in the same run, first
//     open-loop at a fixed rate (-rate; latency counted from the moment each request
//     was due, so a slow server cannot hide its queueing: no coordinated omission),
//     then closed-loop at maximum throughput: clients sending back-to-back, at each
//     of the -concurrency client counts, the two targets alternating, the whole
//     sweep repeated -rounds times. A target's maximum is its best run, since a
//     server whose answers take longer needs more requests in flight to reach its
//     peak; each round's own ratio is printed as well. Each delivery is a distinct, signed
//     incident.triggered envelope. After each receiver run the stream must hold
//     every delivery answered 2xx, checked by id, and nothing that was not sent (a
//     delivery answered 503 may be stored too: its publish can finish after the
//     receiver stopped waiting); it is then purged. A non-2xx in a lead-in counts
//     against the zero-non-2xx objectives. -store async and
//     -store none take the receiver apart: the stream acknowledging before its write
//     (JetStream's async persist mode, which pdworker does not use), and no publish
//     at all.
//   - e2e: the simulator's incidents change state through the Events API v2
//     (trigger, acknowledge, resolve) at -e2e-rate changes per second; the simulator
//     delivers signed webhooks to the receiver, the webhook worker applies them, and
//     a watcher of the live-view bucket notes when each change becomes visible. The
//     latency runs from just before the Events API call to that moment.
//
// Usage:
//
//	go run ./cmd/pdload [-mode all|ingest|e2e] [-rate 1000] [-duration 10s]
//	    [-concurrency 16,64,256] [-store durable|async|none]
//	    [-max-duration 5s] [-rounds 3]
//	    [-e2e-rate 150] [-e2e-duration 10s]
//
// It imports events, internal/httpapi, internal/liveview, internal/mapping,
// internal/pdsim, internal/secret, internal/webhook and workers, and is imported by
// nothing.
package main
