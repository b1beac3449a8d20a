package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/heraldrelay/herald/internal/testkit"
)

// keyFiles are the keys a herald serve generates into data_dir.
var keyFiles = []string{encryptionKeyFile, apiSecretFile, vaultKeyFile, challengeKeyFile}

// keyFilesIn returns the key files in dir, sorted.
func keyFilesIn(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, name := range keyFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// A start that fails, for the configuration or a port in use, writes no key
// into data_dir; a start that succeeds writes them all.
func TestFailedStartWritesNoKeys(t *testing.T) {
	generated := map[string]string{"ENCRYPTION_KEY": "", "VPS_SECRET": ""} // so they are generated
	open := func(t *testing.T, env map[string]string) (string, error) {
		t.Helper()
		all := map[string]string{}
		for k, v := range generated {
			all[k] = v
		}
		for k, v := range env {
			all[k] = v
		}
		cfg := testAppConfig(t, all)
		logger, _ := testkit.Logger(t)
		app := &App{cfg: cfg, role: roleServe, logger: logger}
		defer app.Close()
		return cfg.DataDir, app.Open(context.Background())
	}
	busy := func(t *testing.T) string {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln.Addr().String()
	}

	t.Run("short ENCRYPTION_KEY", func(t *testing.T) {
		// The report's case, through the real command.
		dir := filepath.Join(t.TempDir(), "data")
		_, _, err := execute(context.Background(), newRootCmd(envMap(map[string]string{
			"ENCRYPTION_KEY": "short", "HERALD_DATA_DIR": dir,
			"HERALD_HTTP_ADDR": "127.0.0.1:0", "HERALD_NATS_EMBEDDED_LISTEN": "127.0.0.1:-1",
		}), io.Discard, io.Discard), "", "serve", "--config", writeFile(t, "c.yaml", "{}"))
		if err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEY") {
			t.Fatalf("serve: %v, want ENCRYPTION_KEY refused", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("data_dir holds %d entries after a refused start", len(entries))
		}
	})
	t.Run("a bad encryption.key in data_dir", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, encryptionKeyFile), []byte("short\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := open(t, map[string]string{"HERALD_DATA_DIR": dir}); err == nil || !strings.Contains(err.Error(), "encryption") {
			t.Fatalf("Open: %v, want the key refused", err)
		}
		if got := keyFilesIn(t, dir); !slices.Equal(got, []string{encryptionKeyFile}) {
			t.Errorf("key files after a refused start: %v, want only the bad one", got)
		}
	})
	t.Run("HTTP port in use", func(t *testing.T) {
		addr := busy(t)
		dir, err := open(t, map[string]string{"HERALD_HTTP_ADDR": addr})
		if err == nil || !strings.Contains(err.Error(), "http.addr") {
			t.Fatalf("Open: %v, want the port named", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("data_dir holds %d entries after the HTTP port was found in use", len(entries))
		}
	})
	t.Run("NATS port in use", func(t *testing.T) {
		addr := busy(t)
		dir, err := open(t, map[string]string{"HERALD_NATS_EMBEDDED_LISTEN": addr})
		if err == nil || !strings.Contains(err.Error(), "nats.embedded.listen") {
			t.Fatalf("Open: %v, want the port named", err)
		}
		if got := keyFilesIn(t, dir); len(got) != 0 {
			t.Errorf("key files after a failed start: %v", got)
		}
	})
	t.Run("a good start", func(t *testing.T) {
		dir, err := open(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := keyFilesIn(t, dir); len(got) != len(keyFiles) {
			t.Errorf("key files after a start: %v, want %v", got, keyFiles)
		}
	})
}
