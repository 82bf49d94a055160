package events_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
)

// takePort holds a TCP port on 127.0.0.1 until the test ends.
func takePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l.Addr().String()
}

func TestStartEmbeddedPortTaken(t *testing.T) {
	addr := takePort(t)

	_, err := events.StartEmbedded(events.EmbeddedConfig{Listen: addr, StoreDir: t.TempDir()}, zerolog.Nop())
	require.Error(t, err)
	assert.Contains(t, err.Error(), addr+" is in use")
	assert.Contains(t, err.Error(), "NATS_EMBEDDED_LISTEN")
	assert.Contains(t, err.Error(), "NATS_URL")
}

func TestStartEmbeddedPortFallback(t *testing.T) {
	addr := takePort(t)

	srv, err := events.StartEmbedded(events.EmbeddedConfig{Listen: addr, StoreDir: t.TempDir(), AllowPortFallback: true}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	assert.NotEqual(t, "nats://"+addr, srv.ClientURL())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := events.Connect(ctx, srv.ClientURL(), "fallback-test", zerolog.Nop())
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.Publish("ping", nil))
	require.NoError(t, nc.FlushWithContext(ctx))
}

func TestStartEmbeddedBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  events.EmbeddedConfig
		want string
	}{
		{"no store dir", events.EmbeddedConfig{DontListen: true}, "DATA_DIR"},
		{"no port", events.EmbeddedConfig{Listen: "127.0.0.1", StoreDir: t.TempDir()}, "NATS_EMBEDDED_LISTEN"},
		{"bad port", events.EmbeddedConfig{Listen: "127.0.0.1:99999", StoreDir: t.TempDir()}, "NATS_EMBEDDED_LISTEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := events.StartEmbedded(tt.cfg, zerolog.Nop())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestEmbeddedKeepsDataAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	srv, err := events.StartEmbedded(events.EmbeddedConfig{DontListen: true, StoreDir: dir}, zerolog.Nop())
	require.NoError(t, err)
	nc, err := srv.Conn("first")
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, events.Provision(ctx, js, 1))
	_, err = js.Publish(ctx, events.SubjectDepsyncRun, []byte(`{"dryRun":true}`))
	require.NoError(t, err)
	nc.Close()
	srv.Shutdown()

	srv, err = events.StartEmbedded(events.EmbeddedConfig{DontListen: true, StoreDir: dir}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err = srv.Conn("second")
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err = jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(ctx, events.StreamDepsync)
	require.NoError(t, err)
	msg, err := s.GetLastMsgForSubject(ctx, events.SubjectDepsyncRun)
	require.NoError(t, err)
	assert.JSONEq(t, `{"dryRun":true}`, string(msg.Data))
}
