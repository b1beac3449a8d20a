package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
)

// /metrics is never on the public port: it is served on http.metrics_addr,
// with /health and /readyz, and nowhere when that is empty (the default).
func TestMetricsNotOnThePublicPort(t *testing.T) {
	if defaults["http.metrics_addr"] != "" {
		t.Errorf("http.metrics_addr defaults to %q, want empty: /metrics served nowhere unless asked", defaults["http.metrics_addr"])
	}
	app := newTestApp(t, nil)
	if code, _, _ := call(t, http.MethodGet, app.URL+"/metrics", "", "", ""); code != http.StatusNotFound {
		t.Errorf("GET /metrics on the public port = %d, want 404", code)
	}
	if app.MetricsURL == "" || app.MetricsURL == app.URL {
		t.Fatalf("metrics URL %q, public %q", app.MetricsURL, app.URL)
	}
	if m := get(t, app.MetricsURL+"/metrics"); !strings.Contains(m, "herald_build_info") {
		t.Errorf("http.metrics_addr's /metrics lacks herald_build_info")
	}
	for _, p := range []string{"/health", "/readyz"} {
		if code, _, _ := call(t, http.MethodGet, app.MetricsURL+p, "", "", ""); code != http.StatusOK {
			t.Errorf("GET %s on http.metrics_addr = %d", p, code)
		}
	}
	// The ingest's own routes are not there.
	if code, _, _ := call(t, http.MethodPost, app.MetricsURL+"/send-notification", "", "", "{}"); code != http.StatusNotFound {
		t.Errorf("POST /send-notification on http.metrics_addr = %d, want 404", code)
	}

	off := newTestApp(t, map[string]string{"HERALD_HTTP_METRICS_ADDR": ""})
	if off.MetricsAddr() != "" {
		t.Errorf("http.metrics_addr empty, yet metrics listen on %s", off.MetricsAddr())
	}
	if code, _, _ := call(t, http.MethodGet, off.URL+"/metrics", "", "", ""); code != http.StatusNotFound {
		t.Errorf("GET /metrics on the public port = %d, want 404", code)
	}
}

// A metrics address in use stops start-up, naming the setting.
func TestMetricsAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testAppConfig(t, map[string]string{"HERALD_HTTP_METRICS_ADDR": ln.Addr().String()})
	app := &App{cfg: cfg, role: roleServe, logger: newLogger(cfg.Log, &strings.Builder{})}
	err = app.Open(context.Background())
	if err == nil {
		app.Close()
		t.Fatal("Open succeeded on a metrics address in use")
	}
	if !strings.Contains(err.Error(), "http.metrics_addr") {
		t.Errorf("error %q does not name http.metrics_addr", err)
	}
}
