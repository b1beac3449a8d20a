package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldrelay/herald/internal/testkit"
)

// A process that joins NATS with other Herald processes never invents a
// key: the others could not open what it seals, nor check what it signs. It
// reads what a herald serve generated into a data directory it shares, and
// otherwise stops, naming the setting.
func TestSharedNATSNeedsSharedKeys(t *testing.T) {
	logger, _ := testkit.Logger(t)
	t.Run("missing", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			cfg  Config
			want string
		}{
			{"encryption key", Config{}, "encryption.keys (or ENCRYPTION_KEY) is required"},
			{"API secret", Config{Encryption: EncryptionConfig{Keys: []string{testkit.Key}}}, "ingest.api_secrets (or VPS_SECRET) is required"},
			{"vault key", Config{Encryption: EncryptionConfig{Keys: []string{testkit.Key}}, Ingest: IngestConfig{APISecrets: []string{testSecret}}},
				"vault.keys (HERALD_VAULT_KEYS) is required"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				cfg := tt.cfg
				cfg.DataDir = t.TempDir()
				err := ensureSecretsNow(&cfg, roleIngest, false, logger)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				if entries, _ := os.ReadDir(cfg.DataDir); len(entries) != 0 {
					t.Errorf("wrote %d files into data_dir", len(entries))
				}
			})
		}
	})
	t.Run("read from a shared data_dir", func(t *testing.T) {
		dir := t.TempDir()
		serve := Config{DataDir: dir}
		if err := ensureSecretsNow(&serve, roleServe, true, logger); err != nil {
			t.Fatal(err)
		}
		worker := Config{DataDir: dir}
		if err := ensureSecretsNow(&worker, roleWorker, false, logger); err != nil {
			t.Fatalf("worker beside a serve: %v", err)
		}
		if worker.Encryption.Keys[0] != serve.Encryption.Keys[0] || worker.Vault.Keys[0] != serve.Vault.Keys[0] {
			t.Error("the worker holds other keys than the serve it shares data_dir with")
		}
		if len(worker.Ingest.APISecrets) != 0 {
			t.Error("a worker was given an API secret it does not use")
		}
	})
}

// An ingest joining shared NATS with rate limiting on needs the challenge
// signing keys every ingest shares.
func TestSharedNATSNeedsChallengeKeys(t *testing.T) {
	srv, _, _ := testkit.JetStream(t)
	env := sharedNATSEnv(srv.URL())
	delete(env, "HERALD_CHALLENGE_KEYS")
	env["HERALD_DATA_DIR"], env["HERALD_HTTP_ADDR"] = t.TempDir(), "127.0.0.1:0"
	env["ENCRYPTION_KEY"], env["VPS_SECRET"] = testkit.Key, testSecret
	cfg, err := loadConfig(writeFile(t, "c.yaml", "{}"), envMap(env))
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := testkit.Logger(t)
	app := &App{cfg: cfg, role: roleIngest, logger: logger}
	defer app.Close()
	err = app.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "challenge.keys (HERALD_CHALLENGE_KEYS) is required") || !strings.Contains(err.Error(), "herald vault key") {
		t.Fatalf("Open = %v, want challenge.keys named", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, challengeKeyFile)); !os.IsNotExist(err) {
		t.Errorf("a challenge key was written: %v", err)
	}
}

// ensureSecretsNow is ensureSecrets with its generated secrets written at
// once, as App.Open writes them at its end.
func ensureSecretsNow(cfg *Config, r role, generate bool, logger *slog.Logger) error {
	created, err := ensureSecrets(cfg, r, generate)
	if err != nil {
		return err
	}
	return writeSecrets(created, logger)
}
