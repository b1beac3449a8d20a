package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// herald health is the image's health check: 0 for a ready process, an
// error (exit 1) naming why for one that is not ready or not there.
func TestHealthCommand(t *testing.T) {
	app := newTestApp(t, nil)
	ctx := context.Background()
	health := func(args ...string) (string, error) {
		out, _, err := execute(ctx, newRootCmd(envMap(nil), nil, nil), "", append([]string{"health"}, args...)...)
		return out, err
	}

	for _, u := range []string{app.URL + "/readyz", app.MetricsURL + "/readyz"} {
		if out, err := health("--url", u); err != nil || !strings.Contains(out, "ready") {
			t.Errorf("health --url %s: %q, %v; want ready", u, out, err)
		}
	}

	unready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unready.Close()
	if _, err := health("--url", unready.URL+"/readyz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a 503: %v, want an error naming it", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	if _, err := health("--url", "http://"+gone+"/readyz"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("nobody listening: %v, want connection refused", err)
	}

	// A server that never answers: the timeout ends it.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	if _, err := health("--url", "http://"+hang.Addr().String()+"/readyz", "--timeout", "300ms"); err == nil {
		t.Error("a server that never answers passed the health check")
	}

	for _, bad := range []string{"127.0.0.1:8000/readyz", "ftp://127.0.0.1/readyz", "http:///readyz"} {
		if _, err := health("--url", bad); err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
			t.Errorf("--url %q: %v", bad, err)
		}
	}
	if DefaultHealthURL != "http://127.0.0.1:"+portOf(defaults["http.addr"].(string))+"/readyz" {
		t.Errorf("the default URL %s is not the default http.addr's /readyz", DefaultHealthURL)
	}
}

// portOf is the port of a host:port address.
func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
