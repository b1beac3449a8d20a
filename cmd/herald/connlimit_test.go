package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

// TestIdleConnectionFloodLeavesReadyzAnswering is issue 11's connection
// attack, scaled to a test: one address opens far more connections than its
// cap and sends nothing on them. The server keeps no more than the cap open
// (the others are answered 503), and /readyz, asked from another address
// (the orchestrator), answers.
func TestIdleConnectionFloodLeavesReadyzAnswering(t *testing.T) {
	const perClient, flood = 16, 200
	app := newTestApp(t, map[string]string{"HERALD_HTTP_MAX_CONNECTIONS_PER_CLIENT": strconv.Itoa(perClient)})
	addr := strings.TrimPrefix(app.URL, "http://")
	conns := make([]net.Conn, flood)
	for i := range conns {
		conns[i] = testkit.DialFrom(t, "127.0.0.1", addr)
	}
	// One deadline for all, read at once: a connection still waiting at it
	// is one the server kept open.
	deadline := time.Now().Add(300 * time.Millisecond)
	type result struct {
		b   []byte
		err error
	}
	results := make(chan result, flood)
	for _, c := range conns {
		go func() {
			_ = c.SetReadDeadline(deadline)
			b, err := io.ReadAll(c)
			results <- result{b, err}
		}()
	}
	kept, answered := 0, 0
	for range flood {
		r := <-results
		switch {
		case isTimeout(r.err) && len(r.b) == 0:
			kept++
		case strings.HasPrefix(string(r.b), "HTTP/1.1 503 "):
			answered++
		}
	}
	if kept > perClient {
		t.Errorf("the server kept %d connections from one address, want at most %d", kept, perClient)
	}
	if answered == 0 {
		t.Error("no connection over the cap was answered 503")
	}
	start := time.Now()
	resp, err := testkit.ClientFrom("127.0.0.2").Get(app.URL + "/readyz")
	if err != nil {
		t.Fatalf("/readyz from another address during the flood: %v", err)
	}
	_ = resp.Body.Close()
	t.Logf("connection flood: %d connections from one address, %d kept (cap %d), %d answered 503; /readyz from another address answered %d in %s",
		flood, kept, perClient, answered, resp.StatusCode, time.Since(start).Round(time.Microsecond))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", resp.StatusCode)
	}
	if m := metricsFrom(t, app, "127.0.0.2"); !strings.Contains(m, `herald_connections_refused_total{reason="per_client"}`) {
		t.Error("refused connections are not counted")
	}
}

// TestIdleConnectionsFillingTheCapLeaveReadyzServed is the measured attack of
// issue 17, scaled down: idle keep-alive connections from many addresses,
// each address within its own cap, fill the global cap. /readyz from another
// address is still served: the oldest idle connection is closed for it.
func TestIdleConnectionsFillingTheCapLeaveReadyzServed(t *testing.T) {
	const perClient, addrs = 4, 6
	app := newTestApp(t, map[string]string{
		"HERALD_HTTP_MAX_CONNECTIONS":            strconv.Itoa(perClient * addrs),
		"HERALD_HTTP_MAX_CONNECTIONS_PER_CLIENT": strconv.Itoa(perClient),
	})
	addr := strings.TrimPrefix(app.URL, "http://")
	var flood []net.Conn
	for i := range addrs {
		for range perClient {
			c := testkit.DialFrom(t, fmt.Sprintf("127.0.0.%d", 10+i), addr)
			if code := keepAliveGet(t, c, "/health"); code != http.StatusOK {
				t.Fatalf("flood connection %d: GET /health = %d", len(flood), code)
			}
			flood = append(flood, c)
		}
	}
	// The cap is full of idle keep-alive connections.
	resp, err := testkit.ClientFrom("127.0.0.2").Get(app.URL + "/readyz")
	if err != nil {
		t.Fatalf("/readyz from another address with the cap full of idle connections: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz = %d, want 200", resp.StatusCode)
	}
	// One idle connection made room, and only one: the others still serve.
	// (Which one is the oldest idle is internal/connlimit's test: here the
	// server may mark a connection idle a moment after its client read the
	// answer, so the order is not the order of the flood.)
	closed := closedByServerAll(flood)
	var open []net.Conn
	for i, c := range flood {
		if !closed[i] {
			open = append(open, c)
		}
	}
	if n := len(flood) - len(open); n != 1 {
		t.Fatalf("%d idle connections were closed to make room, want 1", n)
	}
	if code := keepAliveGet(t, open[len(open)-1], "/health"); code != http.StatusOK {
		t.Errorf("an idle connection left open: GET /health = %d", code)
	}
	if m := metricsFrom(t, app, "127.0.0.2"); !strings.Contains(m, `herald_connections_reclaimed_total{state="idle"}`) {
		t.Error("reclaimed connections are not counted")
	}
}

// TestHungRequestsFillingTheCapGetA503 fills the cap with requests in
// flight that never finish sending their body: nothing can be reclaimed, and
// a new connection, from another address or from one at its own cap, is
// answered 503 with Retry-After and Connection: close, never reset.
func TestHungRequestsFillingTheCapGetA503(t *testing.T) {
	const perClient, addrs = 3, 2
	app := newTestApp(t, map[string]string{
		"HERALD_HTTP_MAX_CONNECTIONS":            strconv.Itoa(perClient * addrs),
		"HERALD_HTTP_MAX_CONNECTIONS_PER_CLIENT": strconv.Itoa(perClient),
	})
	addr := strings.TrimPrefix(app.URL, "http://")
	var hung []net.Conn
	for i := range addrs {
		for range perClient {
			c := testkit.DialFrom(t, fmt.Sprintf("127.0.0.%d", 20+i), addr)
			// A Streaky request whose body stops short: its handler waits
			// for the rest (until http.read_timeout).
			if _, err := fmt.Fprintf(c, "POST /send-notification HTTP/1.1\r\nHost: herald\r\nX-API-Secret: %s\r\n"+
				"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":", testSecret); err != nil {
				t.Fatal(err)
			}
			hung = append(hung, c)
		}
	}
	for _, tc := range []struct{ name, from, reason string }{
		{"another address", "127.0.0.2", "total"},
		{"an address at its cap", "127.0.0.20", "per_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testkit.DialFrom(t, tc.from, addr)
			_, _ = io.WriteString(c, "GET /readyz HTTP/1.1\r\nHost: herald\r\n\r\n")
			resp, body, err := testkit.ReadResponse(c, http.MethodGet)
			if err != nil {
				t.Fatalf("reading the answer: %v (want a 503, not a reset)", err)
			}
			after, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			if resp.StatusCode != http.StatusServiceUnavailable || after < 1 || !resp.Close {
				t.Errorf("answer: %d, Retry-After %q, Connection %q; want 503, Retry-After >= 1, Connection: close",
					resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Connection"))
			}
			if !strings.Contains(string(body), `"error":"too_many_connections"`) {
				t.Errorf("body %q", body)
			}
			// Then the server closes it: end of stream, not a reset.
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Errorf("after the answer: read %d, %v; want EOF", n, err)
			}
		})
	}
	// The hung requests end; then /metrics counts the refusals (and any
	// /metrics request refused before they ended).
	for _, c := range hung {
		_ = c.Close()
	}
	m := metricsFrom(t, app, "127.0.0.2")
	for _, reason := range []string{"total", "per_client"} {
		if !strings.Contains(m, `herald_connections_refused_total{reason="`+reason+`"}`) {
			t.Errorf("refusals for %s are not counted", reason)
		}
	}
}

// keepAliveGet sends GET path on c, keeping c open, and returns the status.
func keepAliveGet(t *testing.T, c net.Conn, path string) int {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: herald\r\n\r\n"); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp, _, err := testkit.ReadResponse(c, http.MethodGet)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.Close {
		t.Fatalf("GET %s: the server closes the connection", path)
	}
	return resp.StatusCode
}

// metricsFrom is the body of GET /metrics from local address from, retried
// until the connections of the test before it are gone.
func metricsFrom(t *testing.T, app *testApp, from string) string {
	t.Helper()
	var body []byte
	testkit.WaitFor(t, 10*time.Second, "GET /metrics", func() bool {
		resp, err := testkit.ClientFrom(from).Get(app.MetricsURL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK
	})
	return string(body)
}

// closedByServer reports whether the server closed c: reading it ends (EOF
// or reset) within a second.
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !isTimeout(err)
}

// closedByServerAll is closedByServer of each of conns, asked at once.
func closedByServerAll(conns []net.Conn) []bool {
	closed := make([]bool, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			closed[i] = closedByServer(c)
		}()
	}
	wg.Wait()
	return closed
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestIPv6ClientPrefixGroupsRateLimits checks the wiring of
// http.ipv6_client_prefix into the rate limiter: with a /48, two /64s of one
// /48 spend one bucket, and another /48 has its own. (The connection caps'
// grouping is tested in internal/connlimit: the loopback has one IPv6
// address.)
func TestIPv6ClientPrefixGroupsRateLimits(t *testing.T) {
	env := map[string]string{
		"HERALD_HTTP_IPV6_CLIENT_PREFIX": "48",
		"HERALD_INGEST_TRUSTED_PROXIES":  "127.0.0.1",
	}
	for k, v := range protectedEnv { // an API bucket of 3
		env[k] = v
	}
	app := newTestApp(t, env)
	from := func(ip string) int {
		req := newRequest(http.MethodGet, app.URL+"/v1/notifications/x", "CF-Connecting-IP", ip, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 3 {
		if code := from("2001:db8:1:2::1"); code == http.StatusTooManyRequests {
			t.Fatalf("request %d limited", i+1)
		}
	}
	if code := from("2001:db8:1:3::1"); code != http.StatusTooManyRequests {
		t.Errorf("another /64 of the same /48: %d, want 429", code)
	}
	if code := from("2001:db8:2:2::1"); code == http.StatusTooManyRequests {
		t.Error("another /48 shares the bucket")
	}
}
