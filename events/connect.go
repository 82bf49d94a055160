package events

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/internal/secret"
)

const (
	// connectBound limits how long Connect keeps trying at start when ctx has no
	// earlier deadline.
	connectBound = 20 * time.Second
	// dialTimeout bounds one TCP dial and handshake.
	dialTimeout = 5 * time.Second
	// maxReconnectDelay caps the pause between reconnect attempts.
	maxReconnectDelay = 10 * time.Second
)

// Connect connects to the NATS server or cluster at urls (NATS_URL: one URL or several,
// comma-separated) under the client name name. At start it retries for a bounded time
// (ctx's deadline, at most 20s) and then fails with an error naming NATS_URL. Once
// connected, the connection reconnects forever with growing, jittered pauses, and
// logs disconnects, reconnects and closing on log.
func Connect(ctx context.Context, urls, name string, log zerolog.Logger) (*nats.Conn, error) {
	servers := splitURLs(urls)
	if len(servers) == 0 {
		return nil, errors.New("connect to NATS: no server URL (set NATS_URL)")
	}
	shown := redactURLs(servers)
	log = log.With().Str("component", "nats").Logger()

	ctx, cancel := context.WithTimeout(ctx, connectBound)
	defer cancel()
	opts := connOptions(name, log)
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(strings.Join(servers, ","), opts...)
		if err == nil {
			log.Info().Str("url", redactURLs([]string{nc.ConnectedUrl()})).Msg("connected to NATS")
			return nc, nil
		}
		log.Debug().Err(err).Int("attempt", attempt).Str("servers", shown).Msg("NATS connect attempt failed")
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to NATS at %s (NATS_URL) after %d attempts: %w", shown, attempt, err)
		case <-time.After(reconnectDelay(attempt)):
		}
	}
}

// connOptions are the client options shared by Connect and Embedded.Conn.
func connOptions(name string, log zerolog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.Timeout(dialTimeout),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil {
				log.Debug().Msg("disconnected from NATS")
				return
			}
			log.Warn().Err(err).Msg("disconnected from NATS; reconnecting")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", redactURLs([]string{nc.ConnectedUrl()})).Uint64("reconnects", nc.Stats().Reconnects).Msg("reconnected to NATS")
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Warn().Err(err).Msg("NATS connection closed")
				return
			}
			log.Debug().Msg("NATS connection closed")
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subscription", sub.Subject)
			}
			ev.Msg("NATS asynchronous error")
		}),
	}
}

// reconnectDelay grows from 250ms to maxReconnectDelay with ±20% jitter, so that many
// replicas do not reconnect in lockstep.
func reconnectDelay(attempts int) time.Duration {
	d := maxReconnectDelay
	if attempts < 10 {
		d = min(250*time.Millisecond<<max(attempts-1, 0), maxReconnectDelay)
	}
	return d - d/5 + rand.N(2*d/5+1)
}

func splitURLs(urls string) []string {
	var out []string
	for _, u := range strings.Split(urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// redactURLs joins the URLs for messages, with any credentials replaced.
func redactURLs(urls []string) string {
	shown := make([]string, len(urls))
	for i, s := range urls {
		shown[i] = secret.RedactURL(s)
	}
	return strings.Join(shown, ",")
}
