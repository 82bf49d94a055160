package events_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
)

// deadAddr returns a 127.0.0.1 address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestConnectFailsNamingNATSURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()

	_, err := events.Connect(ctx, "nats://operator:hunter2@"+deadAddr(t), "test", zerolog.Nop())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NATS_URL")
	assert.NotContains(t, err.Error(), "hunter2")
	assert.NotContains(t, err.Error(), "operator")
}

func TestConnectEmptyURL(t *testing.T) {
	_, err := events.Connect(context.Background(), " , ", "test", zerolog.Nop())
	require.ErrorContains(t, err, "NATS_URL")
}

func TestConnectClusterURLs(t *testing.T) {
	srv, _, _ := natstest.StartListening(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The first URL is dead; the client moves on to the next one.
	urls := "nats://" + deadAddr(t) + ", " + srv.ClientURL()
	nc, err := events.Connect(ctx, urls, "cluster-test", zerolog.Nop())
	require.NoError(t, err)
	defer nc.Close()
	assert.Equal(t, srv.ClientURL(), nc.ConnectedUrl())
}
