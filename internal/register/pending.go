package register

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/heraldrelay/herald/internal/clientaddr"
	"github.com/heraldrelay/herald/internal/ratelimit"
)

// Defaults of the caps on registrations awaiting their code.
const (
	// DefaultMaxPendingPerClient is how many registrations one client (an
	// IPv4 address, an IPv6 /64) may
	// start within PendingWindow: a person registers one or two.
	DefaultMaxPendingPerClient = 5
	// DefaultMaxPending is how many registrations this process starts
	// within PendingWindow from everyone together.
	DefaultMaxPending = 1000
	// PendingWindow is how long a started registration counts against the
	// caps: the life of its code (vault.DefaultCodeTTL).
	PendingWindow = 15 * time.Minute
	// maxTrackedClients bounds the per-address counts kept.
	maxTrackedClients = 10_000
)

// pending counts the registrations started within PendingWindow, per client
// address and in all. Counts are per process. It is safe for concurrent use.
type pending struct {
	perClient, total int

	mu      sync.Mutex
	clients map[string][]time.Time // start times within the window
	all     []time.Time
}

func newPending(perClient, total int) *pending {
	return &pending{perClient: perClient, total: total, clients: make(map[string][]time.Time)}
}

// take counts a registration by client at now, or says which cap it is over
// ("client" or "total") and how long until it may try again.
func (p *pending) take(client string, now time.Time) (over string, retry time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = live(p.all, now)
	if len(p.all) >= p.total {
		return "total", p.all[0].Add(PendingWindow).Sub(now)
	}
	mine := live(p.clients[client], now)
	if len(mine) >= p.perClient {
		p.clients[client] = mine
		return "client", mine[0].Add(PendingWindow).Sub(now)
	}
	if _, known := p.clients[client]; !known && len(p.clients) >= maxTrackedClients {
		for c, ts := range p.clients {
			if len(live(ts, now)) == 0 {
				delete(p.clients, c)
			}
		}
		if len(p.clients) >= maxTrackedClients {
			return "total", time.Minute
		}
	}
	p.clients[client] = append(mine, now)
	p.all = append(p.all, now)
	return "", 0
}

// giveBack uncounts the latest registration of client (it was not stored).
func (p *pending) giveBack(client string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ts := p.clients[client]; len(ts) > 0 {
		p.clients[client] = ts[:len(ts)-1]
	}
	if len(p.all) > 0 {
		p.all = p.all[:len(p.all)-1]
	}
}

// live drops the times that left the window at now (they are in order).
func live(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= PendingWindow {
		i++
	}
	return ts[i:]
}

// clientOf is the request's client as the rate limiter counts it (trusted
// proxies honoured): one IPv4 address, or one IPv6 network (a /64 by
// default), so that a host with a network of addresses is one client here
// too; else the peer's address, grouped the same way.
func clientOf(r *http.Request) string {
	if c, ok := ratelimit.ClientFrom(r.Context()); ok && c.IP != "" {
		if c.Network != "" {
			return c.Network
		}
		return clientaddr.KeyOf(c.IP, 0)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return clientaddr.KeyOf(host, 0)
}
