package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestIdleConnectionFloodLeavesReadyzAnswering is issue 11's connection
// attack, scaled to a test: one address opens far more idle connections than
// its cap. The ones over the cap are closed at once, and /readyz, asked from
// another address (the orchestrator), answers at once.
func TestIdleConnectionFloodLeavesReadyzAnswering(t *testing.T) {
	const perClient, flood = 16, 200
	app := newTestApp(t, map[string]string{"HERALD_HTTP_MAX_CONNECTIONS_PER_CLIENT": "16"})
	addr := strings.TrimPrefix(app.URL, "http://")
	kept := 0
	for range flood {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && isTimeout(err) {
			kept++ // still open: the server kept it
		}
	}
	if kept > perClient {
		t.Errorf("the server kept %d idle connections from one address, want at most %d", kept, perClient)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}}
	start := time.Now()
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("/readyz from another address during the flood: %v", err)
	}
	_ = resp.Body.Close()
	took := time.Since(start)
	t.Logf("connection flood: %d idle connections from one address, %d kept (cap %d); /readyz from another address answered %d in %s",
		flood, kept, perClient, resp.StatusCode, took.Round(time.Microsecond))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", resp.StatusCode)
	}
	resp, err = client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("/metrics from another address: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), `herald_connections_refused_total{reason="per_client"}`) {
		t.Error("refused connections are not counted")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
