package events

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// readyTimeout bounds how long StartEmbedded waits for the server, including the
// recovery of existing JetStream data, before it gives up.
const readyTimeout = 30 * time.Second

// EmbeddedConfig configures the NATS server that pdworker runs in-process when
// NATS_URL is empty.
type EmbeddedConfig struct {
	// Listen is the host:port for client connections (NATS_EMBEDDED_LISTEN), so that
	// other processes can publish to the embedded server. Port 0 picks a free port.
	Listen string
	// StoreDir is the JetStream storage directory (DATA_DIR). The server keeps its
	// data in a "jetstream" directory below it. Required: without it the server would
	// fall back to a temporary directory and lose data.
	StoreDir string
	// AllowPortFallback makes a taken Listen port a notice instead of an error: the
	// server then listens on a free port of the same host (the --simulate mode).
	AllowPortFallback bool
	// DontListen starts the server without any TCP listener; clients connect in
	// process through Conn. Listen is ignored. Meant for tests.
	DontListen bool
	// ServerName names the server (default "pdworker-embedded"). The nodes of a
	// cluster need distinct names.
	ServerName string
	// Cluster, when set, makes the server a node of a NATS cluster whose streams and
	// buckets can be replicated (NATS_REPLICAS > 1). Nil runs a single server.
	Cluster *ClusterConfig
}

// ClusterConfig joins an embedded server to a NATS cluster.
type ClusterConfig struct {
	// Name is the cluster's name; every node uses the same.
	Name string
	// Listen is the host:port on which the node accepts routes from other nodes.
	Listen string
	// Routes are the route URLs of the nodes (nats://host:port), this node's own
	// included or not.
	Routes []string
}

// Embedded is a running in-process NATS server with JetStream enabled.
type Embedded struct {
	srv *server.Server
	log zerolog.Logger
}

// StartEmbedded starts a NATS server with JetStream stored under cfg.StoreDir and
// waits until it accepts connections. Its logs go to log (component=nats-server). If
// the listen port is taken, it fails with an error naming NATS_EMBEDDED_LISTEN and
// NATS_URL, unless cfg.AllowPortFallback is set, in which case it picks a free port
// and logs which.
func StartEmbedded(cfg EmbeddedConfig, log zerolog.Logger) (*Embedded, error) {
	log = log.With().Str("component", "nats-server").Logger()
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded NATS server: no JetStream storage directory (set DATA_DIR)")
	}
	opts := &server.Options{
		ServerName: cmp.Or(cfg.ServerName, "pdworker-embedded"),
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		DontListen: cfg.DontListen,
	}
	if cfg.Cluster != nil {
		if err := applyCluster(opts, *cfg.Cluster); err != nil {
			return nil, err
		}
	}
	fellBack := false
	if !cfg.DontListen {
		host, port, err := parseListen(cfg.Listen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
		if err := probeListen(cfg.Listen); err != nil {
			if !errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("embedded NATS server: cannot listen on %s (NATS_EMBEDDED_LISTEN): %w", cfg.Listen, err)
			}
			if !cfg.AllowPortFallback {
				return nil, fmt.Errorf("embedded NATS server: %s is in use: set NATS_EMBEDDED_LISTEN to a free address, or NATS_URL to use an existing NATS server", cfg.Listen)
			}
			opts.Port = server.RANDOM_PORT
			fellBack = true
		}
	}

	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{log: log}, log.GetLevel() <= zerolog.TraceLevel, false, false)
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded NATS server: not ready for connections within %s (listen %s, store %s); see the nats-server log lines above", readyTimeout, cfg.Listen, cfg.StoreDir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded NATS server: JetStream did not start (store %s); see the nats-server log lines above", cfg.StoreDir)
	}

	e := &Embedded{srv: srv, log: log}
	ev := log.Info().Str("store_dir", cfg.StoreDir)
	switch {
	case cfg.DontListen:
		ev.Msg("embedded NATS server started (in-process connections only)")
	case fellBack:
		log.Warn().Str("wanted", cfg.Listen).Str("url", e.ClientURL()).
			Msg("NATS_EMBEDDED_LISTEN is in use; the embedded NATS server listens on a free port instead")
		ev.Str("url", e.ClientURL()).Msg("embedded NATS server started")
	default:
		ev.Str("url", e.ClientURL()).Msg("embedded NATS server started")
	}
	return e, nil
}

// ClientURL returns the URL other processes use to reach the server, for example
// "nats://127.0.0.1:4222". With DontListen there is no such URL and the result names
// a port nothing listens on.
func (e *Embedded) ClientURL() string {
	return e.srv.ClientURL()
}

// Conn opens a client connection named name to the server. It always connects in
// process (no TCP), which is also the only way when the server was started with
// DontListen. The connection reconnects like those from Connect and logs its state
// changes.
func (e *Embedded) Conn(name string) (*nats.Conn, error) {
	opts := append(connOptions(name, e.log), nats.InProcessServer(e.srv))
	nc, err := nats.Connect(e.ClientURL(), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded NATS server: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and waits until it has stopped and flushed JetStream to
// disk. Connections still open are closed by the server (they will try to reconnect).
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.log.Debug().Msg("embedded NATS server stopped")
}

// applyCluster sets the cluster options of a node.
func applyCluster(opts *server.Options, c ClusterConfig) error {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("embedded NATS cluster listen %q: want host:port: %w", c.Listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("embedded NATS cluster listen %q: port must be a number between 1 and 65535", c.Listen)
	}
	opts.Cluster.Name = cmp.Or(c.Name, "pdworker")
	opts.Cluster.Host, opts.Cluster.Port = host, p
	opts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
	return nil
}

// parseListen splits a host:port into the server's options. Port 0 asks for a free
// port, which nats-server spells -1.
func parseListen(listen string) (string, int, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("NATS_EMBEDDED_LISTEN %q: want host:port: %w", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("NATS_EMBEDDED_LISTEN %q: port must be a number between 0 and 65535", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// probeListen checks that listen can be bound. nats-server reports a taken port only
// through its log and a readiness timeout, so the check is made here first to give a
// clear error at once.
func probeListen(listen string) error {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	return l.Close()
}

// serverLogger routes nats-server's log calls into zerolog. The server's notices are
// mostly its start-up banner, so they go to Debug (StartEmbedded logs one Info line
// of its own); its debug output goes to Trace. A Fatalf from the server is logged as
// an error: the server already stops what failed, and exiting is the program's call.
type serverLogger struct {
	log zerolog.Logger
}

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
func (l serverLogger) Fatalf(format string, v ...any) {
	l.log.Error().Bool("fatal", true).Msgf(format, v...)
}
