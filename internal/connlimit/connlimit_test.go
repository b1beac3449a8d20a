package connlimit

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

// serve accepts on l and keeps every connection open, echoing nothing, until
// the test ends.
func serve(t *testing.T, l *Listener) {
	t.Helper()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
		}
	}()
	t.Cleanup(func() { _ = l.Close() })
}

// dialFrom connects to addr from local IP from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedByServer reports whether the server closed c (reading sees EOF).
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF
}

func TestPerClientCapLeavesOthersServed(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	l, err := New(raw, Config{Max: 10, PerClient: 2}, func(r string) { refused = append(refused, r) })
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l)
	addr := raw.Addr().String()
	a1, a2 := dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)
	testkit.WaitFor(t, 5*time.Second, "two connections open", func() bool { n, _ := l.Open("127.0.0.1"); return n == 2 })
	a3 := dialFrom(t, "127.0.0.1", addr)
	if !closedByServer(a3) {
		t.Fatal("a third connection from one client was kept")
	}
	// Another client (another loopback address) is served.
	b := dialFrom(t, "127.0.0.2", addr)
	if closedByServer(b) {
		t.Fatal("another client's connection was closed")
	}
	// A closed connection gives its slot back.
	_ = a1.Close()
	testkit.WaitFor(t, 5*time.Second, "a slot back", func() bool { _, n := l.Open("127.0.0.1"); return n == 1 })
	if a4 := dialFrom(t, "127.0.0.1", addr); closedByServer(a4) {
		t.Fatal("a connection after one closed was refused")
	}
	_ = a2
	if len(refused) != 1 || refused[0] != "per_client" {
		t.Errorf("refused = %v, want one per_client", refused)
	}
}

func TestTotalCap(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(raw, Config{Max: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l)
	addr := raw.Addr().String()
	dialFrom(t, "127.0.0.1", addr)
	dialFrom(t, "127.0.0.2", addr)
	testkit.WaitFor(t, 5*time.Second, "two connections open", func() bool { n, _ := l.Open(""); return n == 2 })
	if !closedByServer(dialFrom(t, "127.0.0.3", addr)) {
		t.Fatal("a connection over the total cap was kept")
	}
	if _, err := New(raw, Config{Max: -1}, nil); err == nil {
		t.Error("a negative cap was accepted")
	}
}
