package connlimit

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

// counted records a Listener's Counters.
type counted struct {
	mu                 sync.Mutex
	refused, reclaimed []string
}

func (c *counted) counters() Counters {
	return Counters{
		Refused:   func(r string) { c.mu.Lock(); c.refused = append(c.refused, r); c.mu.Unlock() },
		Reclaimed: func(s string) { c.mu.Lock(); c.reclaimed = append(c.reclaimed, s); c.mu.Unlock() },
	}
}

func (c *counted) get() (refused, reclaimed string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.refused, ","), strings.Join(c.reclaimed, ",")
}

// testServer is an HTTP server on a capped listener on 127.0.0.1, its clock
// fake: GET / answers "ok", GET /hang waits until the test ends.
type testServer struct {
	l     *Listener
	addr  string
	clock *testkit.Clock
	count counted
}

func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: raw.Addr().String(), clock: testkit.NewClock(time.Unix(1_700_000_000, 0))}
	s.l, err = New(raw, cfg, s.count.counters())
	if err != nil {
		t.Fatal(err)
	}
	s.l.now = s.clock.Now
	done := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("GET /hang", func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	})
	srv := &http.Server{Handler: mux, ConnState: s.l.ConnState, ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(s.l) }()
	t.Cleanup(func() { close(done); _ = srv.Close() })
	return s
}

// in waits until n connections are in state st.
func (s *testServer) in(t *testing.T, st state, n int) {
	t.Helper()
	testkit.WaitFor(t, 5*time.Second, strconv.Itoa(n)+" connections "+st.String(), func() bool {
		s.l.mu.Lock()
		defer s.l.mu.Unlock()
		got := 0
		for c := range s.l.conns {
			if c.state == st {
				got++
			}
		}
		return got == n
	})
}

// get sends GET path on c, keeping it open, and returns the status.
func get(t *testing.T, c net.Conn, path string) int {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp, _, err := testkit.ReadResponse(c, http.MethodGet)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

// checkRefused reads c's answer: 503 with Retry-After, Connection: close
// and a JSON body, then the end of the stream (not a reset).
func checkRefused(t *testing.T, c net.Conn) {
	t.Helper()
	resp, body, err := testkit.ReadResponse(c, http.MethodGet)
	if err != nil {
		t.Fatalf("reading the refusal: %v (want a 503, not a reset)", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !resp.Close ||
		string(body) != `{"error":"too_many_connections","retry_after":1}` {
		t.Errorf("refusal: %d, Retry-After %q, close %v, body %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close, body)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("after the refusal: read %d, %v; want EOF", n, err)
	}
}

// closed reports whether the server closed c (a read ends within a second).
func closed(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestPerClientCapLeavesOthersServed(t *testing.T) {
	s := newTestServer(t, Config{Max: 10, PerClient: 2})
	// Two connections that have sent nothing yet, within their grace.
	a1, a2 := testkit.DialFrom(t, "127.0.0.1", s.addr), testkit.DialFrom(t, "127.0.0.1", s.addr)
	s.in(t, stateNew, 2)
	checkRefused(t, testkit.DialFrom(t, "127.0.0.1", s.addr))
	// Another client (another loopback address) is served.
	if code := get(t, testkit.DialFrom(t, "127.0.0.2", s.addr), "/"); code != http.StatusOK {
		t.Fatalf("another client: %d", code)
	}
	// A closed connection gives its slot back.
	_ = a1.Close()
	testkit.WaitFor(t, 5*time.Second, "a slot back", func() bool { _, n := s.l.Open("127.0.0.1"); return n == 1 })
	if code := get(t, testkit.DialFrom(t, "127.0.0.1", s.addr), "/"); code != http.StatusOK {
		t.Fatalf("after one closed: %d", code)
	}
	_ = a2
	if refused, reclaimed := s.count.get(); refused != "per_client" || reclaimed != "" {
		t.Errorf("refused %q reclaimed %q, want one per_client and none", refused, reclaimed)
	}
}

// TestIdleConnectionsMakeRoom fills the total cap with idle keep-alive
// connections from many addresses, each within its own cap: a new one from
// another address is served, in place of the one idle longest.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	s := newTestServer(t, Config{Max: 3, PerClient: 2})
	var idle []net.Conn
	for i, from := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		c := testkit.DialFrom(t, from, s.addr)
		if code := get(t, c, "/"); code != http.StatusOK {
			t.Fatalf("connection %d: %d", i, code)
		}
		s.in(t, stateIdle, i+1)
		s.clock.Advance(time.Second) // the next goes idle later
		idle = append(idle, c)
	}
	// A request from another address: the oldest idle connection makes room.
	late := testkit.DialFrom(t, "127.0.0.4", s.addr)
	if code := get(t, late, "/"); code != http.StatusOK {
		t.Fatalf("a new client with the cap full of idle connections: %d", code)
	}
	if !closed(idle[0]) {
		t.Error("the connection idle longest is still open")
	}
	// The others are still served; 127.0.0.2's goes idle again, so 127.0.0.3's
	// is now the oldest idle and makes room for the next.
	if code := get(t, idle[1], "/"); code != http.StatusOK {
		t.Fatalf("a younger idle connection: %d", code)
	}
	s.in(t, stateIdle, 3)
	if code := get(t, testkit.DialFrom(t, "127.0.0.5", s.addr), "/"); code != http.StatusOK {
		t.Fatalf("the next new client: %d", code)
	}
	if !closed(idle[2]) {
		t.Error("the connection idle longest (127.0.0.3) is still open")
	}
	if refused, reclaimed := s.count.get(); refused != "" || reclaimed != "idle,idle" {
		t.Errorf("refused %q reclaimed %q, want none and two idle", refused, reclaimed)
	}
}

// TestPerClientCapReclaimsTheClientsOwn: a client at its cap with an idle
// connection gets its new one in its place, never another client's.
func TestPerClientCapReclaimsTheClientsOwn(t *testing.T) {
	s := newTestServer(t, Config{Max: 3, PerClient: 2})
	other := testkit.DialFrom(t, "127.0.0.2", s.addr)
	get(t, other, "/")
	s.clock.Advance(time.Second) // other's is the oldest idle
	mine := []net.Conn{testkit.DialFrom(t, "127.0.0.1", s.addr), testkit.DialFrom(t, "127.0.0.1", s.addr)}
	get(t, mine[0], "/")
	get(t, mine[1], "/")
	s.in(t, stateIdle, 3)
	if code := get(t, testkit.DialFrom(t, "127.0.0.1", s.addr), "/"); code != http.StatusOK {
		t.Fatalf("a third connection of a client at its cap: %d", code)
	}
	if code := get(t, other, "/"); code != http.StatusOK {
		t.Errorf("another client's idle connection was taken: %d", code)
	}
	if !closed(mine[0]) && !closed(mine[1]) {
		t.Error("none of the client's own idle connections made room")
	}
}

// TestNewConnectionsMakeRoomAfterTheirGrace: connections that have sent no
// whole request (a slowloris, a pre-connect) are safe for NewGrace, then
// make room.
func TestNewConnectionsMakeRoomAfterTheirGrace(t *testing.T) {
	s := newTestServer(t, Config{Max: 2, NewGrace: 2 * time.Second})
	// A slowloris: part of a request's header, and no more. It stays new
	// until its header is complete.
	silent := []net.Conn{testkit.DialFrom(t, "127.0.0.1", s.addr)}
	_, _ = io.WriteString(silent[0], "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	s.in(t, stateNew, 1)
	s.clock.Advance(time.Second)
	silent = append(silent, testkit.DialFrom(t, "127.0.0.2", s.addr))
	s.in(t, stateNew, 2)
	// Within the first's grace: refused.
	checkRefused(t, testkit.DialFrom(t, "127.0.0.3", s.addr))
	// Past the first's grace, not the second's: the first makes room.
	s.clock.Advance(time.Second)
	if code := get(t, testkit.DialFrom(t, "127.0.0.3", s.addr), "/"); code != http.StatusOK {
		t.Fatalf("past the grace: %d", code)
	}
	if !closed(silent[0]) {
		t.Error("the silent connection past its grace is still open")
	}
	if closed(silent[1]) {
		t.Error("the silent connection within its grace was closed")
	}
	if refused, reclaimed := s.count.get(); refused != "total" || reclaimed != "new" {
		t.Errorf("refused %q reclaimed %q, want one total and one new", refused, reclaimed)
	}
}

// TestBusyConnectionsAreNeverReclaimed fills the cap with requests in
// flight: new connections, which send their request at once as clients do,
// are answered 503 and closed, never reset.
func TestBusyConnectionsAreNeverReclaimed(t *testing.T) {
	s := newTestServer(t, Config{Max: 2})
	for _, from := range []string{"127.0.0.1", "127.0.0.2"} {
		c := testkit.DialFrom(t, from, s.addr)
		_, _ = io.WriteString(c, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	s.in(t, stateActive, 2)
	s.clock.Advance(time.Hour)
	const tries = 20
	for range tries {
		c := testkit.DialFrom(t, "127.0.0.3", s.addr)
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		checkRefused(t, c)
	}
	if refused, _ := s.count.get(); refused != strings.TrimSuffix(strings.Repeat("total,", tries), ",") {
		t.Errorf("refused %q, want %d total", refused, tries)
	}
	if total, _ := s.l.Open(""); total != 2 {
		t.Errorf("%d open, want the 2 busy ones", total)
	}
}

// TestUntrackedConnectionsAreNeverReclaimed: without the server's states a
// connection is never taken for another.
func TestUntrackedConnectionsAreNeverReclaimed(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(raw, Config{Max: 1, NewGrace: time.Nanosecond}, Counters{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
		}
	}()
	first := testkit.DialFrom(t, "127.0.0.1", raw.Addr().String())
	testkit.WaitFor(t, 5*time.Second, "one open", func() bool { n, _ := l.Open(""); return n == 1 })
	checkRefused(t, testkit.DialFrom(t, "127.0.0.2", raw.Addr().String()))
	if closed(first) {
		t.Error("an untracked connection was closed")
	}
}

// pipeListener hands out one end of net.Pipe per Dial, with the remote
// address the test chooses: the clients of an IPv6 network on a machine
// whose loopback has one IPv6 address.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (p *pipeListener) Dial(t *testing.T, from string) net.Conn {
	t.Helper()
	server, client := net.Pipe()
	t.Cleanup(func() { _ = client.Close() })
	select {
	case p.conns <- addrConn{server, net.TCPAddrFromAddrPort(netipAddrPort(t, from))}:
	case <-time.After(5 * time.Second):
		t.Fatal("no Accept")
	}
	return client
}

func (p *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}
func (p *pipeListener) Close() error   { p.once.Do(func() { close(p.done) }); return nil }
func (p *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv6loopback} }

// TestIPv6NetworkIsOneClient: every address of one /64 (by default) counts
// against one per-client cap; the next /64 is another client; a configured
// prefix changes what one client is.
func TestIPv6NetworkIsOneClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prefix  int
		refused bool // the second address of 2001:db8:1:2::/64
	}{
		{"default /64", 0, true},
		{"/128: per address", 128, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeListener()
			var count counted
			l, err := New(p, Config{PerClient: 1, IPv6Prefix: tc.prefix}, count.counters())
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), ConnState: l.ConnState}
			go func() { _ = srv.Serve(l) }()
			t.Cleanup(func() { _ = srv.Close() })

			p.Dial(t, "[2001:db8:1:2::a]:1000")
			second := p.Dial(t, "[2001:db8:1:2:ffff::b]:1000")
			p.Dial(t, "[2001:db8:1:3::a]:1000") // another /64: always served
			testkit.WaitFor(t, 5*time.Second, "the connections counted", func() bool {
				count.mu.Lock()
				refused := len(count.refused)
				count.mu.Unlock()
				total, _ := l.Open("")
				return total+refused == 3
			})
			refused, _ := count.get()
			if got := refused == "per_client"; got != tc.refused {
				t.Fatalf("second address of the /64 refused: %v (%q), want %v", got, refused, tc.refused)
			}
			if tc.refused {
				resp, _, err := testkit.ReadResponse(second, http.MethodGet)
				if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("refusal: %v, %v", resp, err)
				}
				if _, n := l.Open("2001:db8:1:2::/64"); n != 1 {
					t.Errorf("the /64 holds %d, want 1", n)
				}
			}
		})
	}
}

// TestIPv6Loopback runs the per-client cap on ::1, when the machine has it.
func TestIPv6Loopback(t *testing.T) {
	raw, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	l, err := New(raw, Config{PerClient: 1}, Counters{})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ConnState: l.ConnState}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	testkit.DialFrom(t, "::1", raw.Addr().String())
	testkit.WaitFor(t, 5*time.Second, "one open", func() bool { _, n := l.Open("::/64"); return n == 1 })
	checkRefused(t, testkit.DialFrom(t, "::1", raw.Addr().String()))
}

func TestConfigValidate(t *testing.T) {
	for _, bad := range []Config{{Max: -1}, {PerClient: -1}, {NewGrace: -1}, {RetryAfter: -1}, {IPv6Prefix: 8}, {IPv6Prefix: 129}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if err := (Config{Max: 1, PerClient: 1, IPv6Prefix: 48}).Validate(); err != nil {
		t.Error(err)
	}
}

func netipAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
