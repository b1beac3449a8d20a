// Package connlimit caps the connections an HTTP listener holds: in total,
// and per client address, so that one client (a flood of idle connections,
// a slowloris) cannot take the file descriptors and memory every other
// client, and the orchestrator's health checks, need.
package connlimit

import (
	"errors"
	"net"
	"sync"
)

// Config caps a Listener's connections. Zero means no cap.
type Config struct {
	// Max is the most connections open at once, from all clients.
	Max int
	// PerClient is the most connections open at once from one IP address.
	// Behind a reverse proxy every connection comes from the proxy: set it
	// to 0 there, or above the proxy's own connection pool.
	PerClient int
}

// Validate reports a negative cap.
func (c Config) Validate() error {
	if c.Max < 0 || c.PerClient < 0 {
		return errors.New("connlimit: caps must not be negative")
	}
	return nil
}

// Listener accepts connections within its caps and closes, at once, the
// ones over them: a refused client sees its connection closed rather than
// waiting in the kernel's backlog, and Accept keeps serving the others. It
// is safe for concurrent use.
type Listener struct {
	net.Listener
	cfg Config

	mu       sync.Mutex
	open     int
	byClient map[string]int
	refused  func(reason string) // nil: not counted
}

// New wraps l. refused, when not nil, is called for every connection closed
// for a cap, with "total" or "per_client" (a metric's label).
func New(l net.Listener, cfg Config, refused func(reason string)) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Listener{Listener: l, cfg: cfg, byClient: make(map[string]int), refused: refused}, nil
}

// Accept returns the next connection within the caps.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client := clientOf(c.RemoteAddr())
		if reason := l.take(client); reason != "" {
			_ = c.Close()
			if l.refused != nil {
				l.refused(reason)
			}
			continue
		}
		return &conn{Conn: c, l: l, client: client}, nil
	}
}

// Open returns the connections open now, in total and from client.
func (l *Listener) Open(client string) (total, fromClient int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.byClient[client]
}

func (l *Listener) take(client string) (refused string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.cfg.Max > 0 && l.open >= l.cfg.Max:
		return "total"
	case l.cfg.PerClient > 0 && l.byClient[client] >= l.cfg.PerClient:
		return "per_client"
	}
	l.open++
	l.byClient[client]++
	return ""
}

func (l *Listener) release(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if n := l.byClient[client] - 1; n > 0 {
		l.byClient[client] = n
	} else {
		delete(l.byClient, client)
	}
}

// clientOf is the IP address of a remote address (its port dropped).
func clientOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// conn gives its slot back once, when closed.
type conn struct {
	net.Conn
	l      *Listener
	client string
	once   sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.client) })
	return err
}
