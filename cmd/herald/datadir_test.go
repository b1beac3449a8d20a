//go:build unix

package main

import (
	"context"
	"strings"
	"testing"

	"github.com/heraldrelay/herald/internal/testkit"
)

// A second `herald serve` on the same data directory says in one line that
// another Herald holds it, before its embedded server touches the store.
func TestSecondServeOnTheSameDataDir(t *testing.T) {
	dir := t.TempDir()
	first := newTestApp(t, map[string]string{"HERALD_DATA_DIR": dir})

	open := func(httpAddr string) error {
		cfg, err := loadConfig(writeFile(t, "c.yaml", "{}"), envMap(map[string]string{
			"HERALD_DATA_DIR": dir, "HERALD_HTTP_ADDR": httpAddr, "HERALD_NATS_EMBEDDED_LISTEN": "127.0.0.1:-1",
			"ENCRYPTION_KEY": testkit.Key, "VPS_SECRET": testSecret,
		}))
		if err != nil {
			t.Fatal(err)
		}
		logger, _ := testkit.Logger(t)
		app := &App{cfg: cfg, role: roleServe, logger: logger}
		defer app.Close()
		return app.Open(context.Background())
	}
	// Also when it is started the same way, on the same HTTP port: the
	// port is bound first, but the likelier cause is told.
	for _, addr := range []string{"127.0.0.1:0", first.HTTPAddr()} {
		err := open(addr)
		if err == nil || !strings.Contains(err.Error(), "another Herald is running on data directory "+dir+" (data_dir)") {
			t.Fatalf("second Open on %s: %v, want the data directory named as taken", addr, err)
		}
		if strings.Count(err.Error(), "\n") != 0 {
			t.Errorf("error spans lines: %q", err)
		}
	}
}

// The lock goes with the process that held it.
func TestDataDirLockIsReleased(t *testing.T) {
	dir := t.TempDir()
	release, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); err == nil {
		t.Fatal("the directory was taken twice")
	}
	release()
	again, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}
