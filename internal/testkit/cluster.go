package testkit

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is N JetStream servers routed to each other on loopback, in
// cluster "herald". Each node can be killed and restarted on its ports and
// store.
type Cluster struct {
	Nodes []*Server
}

// NewCluster starts n nodes named n1..nN, each with opts (WithToken, ...),
// and waits until they have elected a JetStream meta leader. The nodes shut
// down when the test ends.
func NewCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	type ports struct{ client, cluster int }
	ps := make([]ports, n)
	routes := make([]string, n)
	for i := range ps {
		ps[i] = ports{FreePort(t), FreePort(t)}
		routes[i] = "nats://" + Addr(ps[i].cluster)
	}
	c := &Cluster{Nodes: make([]*Server, n)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range ps {
		i := i
		wg.Go(func() {
			s := NewServer(t, append(append([]Option{WithPort(ps[i].client)}, opts...), WithOptions(func(o *server.Options) {
				o.ServerName = "n" + string(rune('1'+i))
				o.Cluster.Name = "herald"
				o.Cluster.Host = "127.0.0.1"
				o.Cluster.Port = ps[i].cluster
				o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
			}))...)
			mu.Lock()
			c.Nodes[i] = s
			mu.Unlock()
		})
	}
	wg.Wait()
	c.WaitReady(t, 30*time.Second)
	return c
}

// URLs is the comma-separated client URLs of every node.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// WaitReady waits until the running nodes agree on one meta leader, each is
// current, and the leader sees every running node online with JetStream
// (else a replicated stream created at once can fail with "no suitable peers
// for placement, peer offline").
func (c *Cluster) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, "a JetStream meta leader with every running node online", func() bool {
		leaders, running, online := 0, 0, 0
		for _, n := range c.Nodes {
			s := n.NATS()
			if s == nil || !s.Running() {
				continue
			}
			running++
			if s.JetStreamIsLeader() {
				leaders++
				online = len(s.JetStreamClusterPeers())
			}
			if !s.JetStreamIsCurrent() {
				return false
			}
		}
		return leaders == 1 && online >= running
	})
}
