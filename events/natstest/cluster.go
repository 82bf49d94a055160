package natstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/events"
)

// clusterReadyTimeout bounds how long StartCluster waits for the nodes to elect a
// JetStream meta leader.
const clusterReadyTimeout = 30 * time.Second

// attemptTimeout bounds one provisioning attempt on the cluster.
const attemptTimeout = 5 * time.Second

// Cluster is a NATS cluster of embedded servers on loopback, each with its own
// JetStream storage, with every stream and bucket provisioned with one replica per
// node.
type Cluster struct {
	t     testing.TB
	names []string
	urls  []string

	mu    sync.Mutex
	nodes []*events.Embedded // nil once stopped
}

// StartCluster starts n clustered servers (cluster and client ports on 127.0.0.1),
// waits until JetStream is ready, and provisions every stream and bucket with
// NATS_REPLICAS = n. The servers stop in t.Cleanup.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	routes := make([]string, n)
	listens := make([]string, n)
	for i := range n {
		listens[i] = freeAddr(t)
		routes[i] = "nats://" + listens[i]
	}
	c := &Cluster{t: t}
	for i := range n {
		name := fmt.Sprintf("node-%d", i+1)
		srv, err := events.StartEmbedded(events.EmbeddedConfig{
			Listen: "127.0.0.1:0", StoreDir: t.TempDir(), ServerName: name,
			Cluster: &events.ClusterConfig{Name: "pdworker-test", Listen: listens[i], Routes: routes},
		}, zerolog.Nop())
		if err != nil {
			t.Fatalf("start cluster node %s: %v", name, err)
		}
		c.names = append(c.names, name)
		c.urls = append(c.urls, srv.ClientURL())
		c.nodes = append(c.nodes, srv)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.Stop(i)
		}
	})

	nc, err := events.Connect(context.Background(), c.URLs(), t.Name()+"-provision", zerolog.Nop())
	if err != nil {
		t.Fatalf("connect to NATS cluster: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("open JetStream: %v", err)
	}
	// Until the nodes have elected a meta leader, JetStream requests go unanswered;
	// each attempt gets its own deadline.
	deadline := time.Now().Add(clusterReadyTimeout + provisionTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
		err := events.Provision(ctx, js, n)
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("provision streams and buckets on the cluster: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URLs returns the client URLs of every node, comma-separated (a NATS_URL).
func (c *Cluster) URLs() string { return strings.Join(c.urls, ",") }

// Names returns the server names of the nodes, in order.
func (c *Cluster) Names() []string { return append([]string(nil), c.names...) }

// Index returns the position of the node with the server name, or -1.
func (c *Cluster) Index(name string) int {
	for i, n := range c.names {
		if n == name {
			return i
		}
	}
	return -1
}

// Stop shuts node i down and waits until it has stopped; stopping a stopped node
// does nothing.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	srv := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
	}
}

// Connect opens a connection to the cluster with every node's URL, closed in
// t.Cleanup.
func (c *Cluster) Connect(name string) *nats.Conn {
	c.t.Helper()
	nc, err := events.Connect(context.Background(), c.URLs(), name, zerolog.Nop())
	if err != nil {
		c.t.Fatalf("connect to NATS cluster: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
