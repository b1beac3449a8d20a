// Package connlimit caps the connections an HTTP listener holds: in total,
// and per client (an IPv4 address, an IPv6 network), so that one client, or
// many, holding connections open (idle keep-alives, a slowloris) cannot take
// the file descriptors and memory every other client, and the orchestrator's
// health checks, need.
//
// At a cap, a connection doing nothing makes room for the new one: the one
// idle the longest between requests, or one that has sent no request for
// Config.NewGrace. Only when every connection in the way is serving a request
// is the new one refused, and then it is told so: 503 with Retry-After and
// Connection: close, as nginx's limit_conn answers, never a reset, so a
// client can tell "busy" from "down".
package connlimit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/heraldrelay/herald/internal/clientaddr"
)

// Defaults of Config.
const (
	// DefaultNewGrace is Config.NewGrace when 0. A client sends its request
	// within a round trip of connecting; one that has sent nothing for a
	// second is, under pressure, a slot better given to the next. (The HTTP
	// server's ReadHeaderTimeout closes it a few seconds later anyway.)
	DefaultNewGrace = time.Second
	// DefaultRetryAfter is Config.RetryAfter when 0: the requests in the way
	// are short, so a second later a slot is usually free.
	DefaultRetryAfter = time.Second
)

const (
	// MaxAnswering bounds the refused connections being answered at once:
	// each holds a file descriptor, beyond Config.Max, for at most
	// answerTimeout. Past it (clients opening more than 500 connections a
	// second that they do not close once answered), a refusal is written
	// without waiting for the client, which may then see a reset instead.
	MaxAnswering = 256
	// answerTimeout bounds writing a refusal and waiting for the client to
	// close its end: net/http's own wait before closing a connection with a
	// request it did not read.
	answerTimeout = 500 * time.Millisecond
	// maxDrain bounds what is read, and thrown away, from a refused client.
	maxDrain = 64 << 10
)

// Config caps a Listener's connections. Zero caps mean no cap.
type Config struct {
	// Max is the most connections open at once, from all clients.
	Max int
	// PerClient is the most connections open at once from one client: one
	// IPv4 address, or one IPv6 network of IPv6Prefix bits. Behind a reverse
	// proxy every connection comes from the proxy: set it to 0 there, or
	// above the proxy's own connection pool.
	PerClient int
	// IPv6Prefix is the length of the IPv6 network that is one client
	// (0: clientaddr.DefaultIPv6Prefix, a /64).
	IPv6Prefix int
	// NewGrace is how long a connection that has sent no request yet is
	// safe from being closed for a new one (0: DefaultNewGrace).
	NewGrace time.Duration
	// RetryAfter is what a refused connection is told to wait, rounded up
	// to whole seconds (0: DefaultRetryAfter).
	RetryAfter time.Duration
}

// Validate reports a negative cap or duration, or an IPv6 prefix out of
// range.
func (c Config) Validate() error {
	if c.Max < 0 || c.PerClient < 0 {
		return errors.New("connlimit: caps must not be negative")
	}
	if c.NewGrace < 0 || c.RetryAfter < 0 {
		return errors.New("connlimit: durations must not be negative")
	}
	if err := clientaddr.CheckIPv6Prefix(c.IPv6Prefix); err != nil {
		return fmt.Errorf("connlimit: %w", err)
	}
	return nil
}

// Counters are told what a Listener does at its caps; nil ones are not
// called. They must not block.
type Counters struct {
	// Refused is called for every connection refused for a cap, with
	// "total" or "per_client" (a metric's label).
	Refused func(reason string)
	// Reclaimed is called for every connection closed to make room, with
	// "idle" (kept alive between requests) or "new" (no request yet).
	Reclaimed func(state string)
}

// Listener accepts connections within its caps. At a cap, it closes the
// connection in the way that does least harm (see the package comment); when
// none may be closed, it answers the new one 503 and closes it, and Accept
// goes on serving the others. It is safe for concurrent use.
//
// To tell an idle connection from a busy one, the Listener needs the HTTP
// server's connection states: set the server's ConnState to the Listener's.
// Without it no connection is ever closed to make room.
type Listener struct {
	net.Listener
	cfg      Config
	counters Counters
	refusal  []byte           // the 503 answer, whole
	now      func() time.Time // the clock; tests replace it

	mu        sync.Mutex
	conns     map[*conn]struct{}
	byClient  map[string]map[*conn]struct{}
	answering map[net.Conn]struct{} // refused, being answered
	closed    bool
	answers   sync.WaitGroup
}

// New wraps l.
func New(l net.Listener, cfg Config, counters Counters) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NewGrace == 0 {
		cfg.NewGrace = DefaultNewGrace
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	return &Listener{
		Listener: l, cfg: cfg, counters: counters, refusal: refusal(cfg.RetryAfter), now: time.Now,
		conns: make(map[*conn]struct{}), byClient: make(map[string]map[*conn]struct{}),
		answering: make(map[net.Conn]struct{}),
	}, nil
}

// refusal is the whole 503 answer: status, headers and a JSON body like the
// ingest's other refusals.
func refusal(after time.Duration) []byte {
	s := strconv.Itoa(max(int((after+time.Second-1)/time.Second), 1))
	body := `{"error":"too_many_connections","retry_after":` + s + `}`
	return []byte("HTTP/1.1 503 Service Unavailable\r\n" +
		"Retry-After: " + s + "\r\n" +
		"Connection: close\r\n" +
		"Content-Type: application/json\r\n" +
		"Cache-Control: no-store\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"\r\n" + body)
}

// Accept returns the next connection within the caps.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		admitted, victim, was, refused := l.admit(c, clientOf(c.RemoteAddr(), l.cfg.IPv6Prefix))
		if victim != nil {
			// The server's goroutine for it sees its read fail and ends.
			_ = victim.Conn.Close()
			if l.counters.Reclaimed != nil {
				l.counters.Reclaimed(was.String())
			}
		}
		if refused != "" {
			if l.counters.Refused != nil {
				l.counters.Refused(refused)
			}
			l.refuse(c)
			continue
		}
		return admitted, nil
	}
}

// admit takes a slot for c from client, making room by reclaiming victim
// (which was in state was) if need be, or says which cap refuses it.
func (l *Listener) admit(c net.Conn, client string) (admitted, victim *conn, was state, refused string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	mine := l.byClient[client]
	switch {
	case l.cfg.PerClient > 0 && len(mine) >= l.cfg.PerClient:
		// The client's own connection makes room, which frees a slot of
		// the total as well.
		if victim = l.reclaimable(mine, now); victim == nil {
			return nil, nil, 0, "per_client"
		}
	case l.cfg.Max > 0 && len(l.conns) >= l.cfg.Max:
		if victim = l.reclaimable(l.conns, now); victim == nil {
			return nil, nil, 0, "total"
		}
	}
	if victim != nil {
		was = victim.state
		l.release(victim)
	}
	admitted = &conn{Conn: c, l: l, client: client, since: now}
	l.conns[admitted] = struct{}{}
	if mine == nil {
		mine = make(map[*conn]struct{})
		l.byClient[client] = mine
	}
	mine[admitted] = struct{}{}
	return admitted, victim, was, ""
}

// reclaimable is the connection of set that has done nothing longest: idle
// between requests, or without a request for NewGrace; nil if there is none.
// It looks at every connection of set, which is at most a cap's worth, and
// only when a cap is reached. l.mu is held.
func (l *Listener) reclaimable(set map[*conn]struct{}, now time.Time) *conn {
	var oldest *conn
	for c := range set {
		switch {
		case c.state == stateIdle:
		case c.state == stateNew && now.Sub(c.since) >= l.cfg.NewGrace:
		default:
			continue
		}
		if oldest == nil || c.since.Before(oldest.since) {
			oldest = c
		}
	}
	return oldest
}

// release gives c's slot back, once. l.mu is held.
func (l *Listener) release(c *conn) {
	if c.released {
		return
	}
	c.released = true
	delete(l.conns, c)
	mine := l.byClient[c.client]
	delete(mine, c)
	if len(mine) == 0 {
		delete(l.byClient, c.client)
	}
}

// refuse answers c 503 and closes it. The answer is followed by the end of
// our side of the connection, and what the client sent is read until it
// closes its side: closing a socket with unread data would reset it, and
// the reset can destroy the answer before the client reads it.
func (l *Listener) refuse(c net.Conn) {
	l.mu.Lock()
	if l.closed || len(l.answering) >= MaxAnswering {
		l.mu.Unlock()
		// A fresh connection's send buffer takes the answer at once.
		_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		_, _ = c.Write(l.refusal)
		_ = c.Close()
		return
	}
	_ = c.SetDeadline(time.Now().Add(answerTimeout))
	l.answering[c] = struct{}{}
	l.answers.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.answers.Done()
		if _, err := c.Write(l.refusal); err == nil {
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(c, maxDrain))
		}
		_ = c.Close()
		l.mu.Lock()
		delete(l.answering, c)
		l.mu.Unlock()
	}()
}

// Close closes the listener, cuts short the refusals being answered and
// waits for them.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.answering {
		_ = c.SetDeadline(time.Now())
	}
	l.mu.Unlock()
	l.answers.Wait()
	return err
}

// ConnState follows the HTTP server's connection states; set it as the
// server's ConnState (calling it from one that does more is fine). It knows
// HTTP/1 only: the server reports no states of an HTTP/2 connection, which
// would then look like one that never sent a request.
func (l *Listener) ConnState(nc net.Conn, s http.ConnState) {
	c, ok := nc.(*conn)
	if !ok || c.l != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.released {
		return
	}
	switch s {
	case http.StateNew:
		c.state = stateNew // since: accepted
	case http.StateIdle:
		c.state, c.since = stateIdle, l.now()
	case http.StateActive, http.StateHijacked:
		c.state = stateActive
	}
}

// Open returns the connections open now, in total and from client (a
// clientaddr.Key).
func (l *Listener) Open(client string) (total, fromClient int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns), len(l.byClient[client])
}

// clientOf is the client a remote address is (see clientaddr.Key).
func clientOf(a net.Addr, ipv6Prefix int) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return clientaddr.Key(t.AddrPort().Addr(), ipv6Prefix)
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return clientaddr.KeyOf(host, ipv6Prefix)
}

// state is what the HTTP server last said of a connection.
type state uint8

const (
	stateUnseen state = iota // no ConnState yet: never reclaimed
	stateNew                 // no request read yet
	stateActive              // serving a request (or hijacked)
	stateIdle                // between requests
)

func (s state) String() string {
	switch s {
	case stateNew:
		return "new"
	case stateActive:
		return "active"
	case stateIdle:
		return "idle"
	}
	return "unseen"
}

// conn is an admitted connection; it gives its slot back when closed.
type conn struct {
	net.Conn
	l      *Listener
	client string

	// Guarded by l.mu.
	state    state
	since    time.Time // accepted, or last became idle
	released bool
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	c.l.release(c)
	c.l.mu.Unlock()
	return err
}
