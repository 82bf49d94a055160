// Package app is the composition root of pdworker: it builds every component from the
// configuration in one straight line (New), runs them (Run), and stops them in a fixed,
// time-limited order (Stop): HTTP first so no new work arrives, then the consumers
// finish what they hold, then NATS drains, then the embedded servers stop.
//
// Only cmd/pdworker and tests import it; it never touches OS signals or os.Exit, so a
// test can start the whole service in-process.
package app
