package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkConnectionFlood is issue 17's measurement, on the default caps
// (http.max_connections 2048, per client 128): 59 addresses each open 85
// connections (5,015, every address within its own cap), and then each
// iteration asks /readyz from another address on a new connection.
//
//	idle: every flood connection made one request and is kept alive, idle
//	busy: every flood connection is in the middle of a request (its body
//	      stops short), which nothing may close
//
// It reports how many flood connections the server still holds at the end
// (open), how many it answered 503 when they came (refused), and how /readyz fared: answered 200 (ok_%), answered
// 503 (busy_%), or no HTTP answer at all, a reset or an empty reply
// (broken_%). A broken answer is what a client cannot tell from a crash.
func BenchmarkConnectionFlood(b *testing.B) {
	const addrs, perAddr = 59, 85
	for _, mode := range []string{"idle", "busy"} {
		b.Run(mode, func(b *testing.B) {
			app := newBenchApp(b, nil)
			addr := strings.TrimPrefix(app.URL, "http://")
			var refused atomic.Int64
			var mu sync.Mutex
			var conns []net.Conn
			var wg sync.WaitGroup
			sem := make(chan struct{}, 64)
			for i := range addrs * perAddr {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					from := fmt.Sprintf("127.0.1.%d", 1+i%addrs)
					c, was503 := floodConn(b, from, addr, mode)
					if was503 {
						refused.Add(1)
					}
					if c != nil {
						mu.Lock()
						conns = append(conns, c)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			open := stillOpen(conns)
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
				DisableKeepAlives: true,
			}}
			var ok, busy, broken int
			b.ResetTimer()
			for range b.N {
				resp, err := client.Get(app.URL + "/readyz")
				switch {
				case err != nil:
					broken++
				case resp.StatusCode == http.StatusOK:
					ok++
				case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
					busy++
				default:
					broken++
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(open), "open")
			b.ReportMetric(float64(refused.Load()), "refused")
			b.ReportMetric(100*float64(ok)/float64(b.N), "ok_%")
			b.ReportMetric(100*float64(busy)/float64(b.N), "busy_%")
			b.ReportMetric(100*float64(broken)/float64(b.N), "broken_%")
		})
	}
}

// floodConn opens a connection from local address from and leaves it idle
// after one request (mode idle) or mid-request (mode busy); it returns it,
// or nil when it could not, and whether it was answered 503. The connection
// is closed when the benchmark ends.
func floodConn(b *testing.B, from, addr, mode string) (net.Conn, bool) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, false
	}
	b.Cleanup(func() { _ = c.Close() })
	if mode == "busy" {
		// A Streaky request whose body stops short: its handler waits.
		if _, err := fmt.Fprintf(c, "POST /send-notification HTTP/1.1\r\nHost: herald\r\nX-API-Secret: %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":", testSecret); err != nil {
			return nil, false
		}
		// An answer within a moment is a refusal.
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return c, false
		}
		_ = resp.Body.Close()
		return c, resp.StatusCode == http.StatusServiceUnavailable
	}
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: herald\r\n\r\n"); err != nil {
		return nil, false
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return c, resp.StatusCode == http.StatusServiceUnavailable
}

// stillOpen counts the connections the server has not closed: a read on
// them, all with one deadline, waits until it.
func stillOpen(conns []net.Conn) int {
	deadline := time.Now().Add(500 * time.Millisecond)
	var open atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(deadline)
			if _, err := c.Read(make([]byte, 1)); isTimeout(err) {
				open.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(open.Load())
}
