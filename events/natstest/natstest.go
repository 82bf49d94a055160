package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/events"
)

// provisionTimeout bounds the set-up of streams and buckets.
const provisionTimeout = 30 * time.Second

// Start starts an embedded server without a TCP listener, stored in t.TempDir(),
// provisions every stream and bucket, and connects to it in process. The connection
// and the server are closed in t.Cleanup.
func Start(t testing.TB) (*events.Embedded, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	return start(t, events.EmbeddedConfig{DontListen: true, StoreDir: t.TempDir()})
}

// StartListening is Start with a TCP listener on a free port of 127.0.0.1, for tests
// that connect by URL (Embedded.ClientURL).
func StartListening(t testing.TB) (*events.Embedded, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	return start(t, events.EmbeddedConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
}

func start(t testing.TB, cfg events.EmbeddedConfig) (*events.Embedded, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, err := events.StartEmbedded(cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("start embedded NATS server: %v", err)
	}
	t.Cleanup(srv.Shutdown)

	nc, err := srv.Conn(t.Name())
	if err != nil {
		t.Fatalf("connect to embedded NATS server: %v", err)
	}
	t.Cleanup(nc.Close)

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("open JetStream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), provisionTimeout)
	defer cancel()
	if err := events.Provision(ctx, js, 1); err != nil {
		t.Fatalf("provision streams and buckets: %v", err)
	}
	return srv, nc, js
}
