package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldrelay/herald/client"
	"github.com/heraldrelay/herald/internal/testkit"
)

// A process that joins NATS with other Herald processes never invents a
// key: the others could not open what it seals. It reads what a herald serve
// generated into a data directory it shares, and otherwise stops, naming in
// one error every setting it lacks, each with the reason that is true of it.
func TestSharedNATSNeedsSharedKeys(t *testing.T) {
	logger, _ := testkit.Logger(t)
	t.Run("missing", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			r       role
			cfg     Config
			want    []string
			notWant []string
		}{
			{"ingest, nothing", roleIngest, Config{}, []string{"missing 3 settings", "ENCRYPTION_KEY (or encryption.keys)",
				"VPS_SECRET (or ingest.api_secrets): the X-API-Secret your clients send", "HERALD_VAULT_KEYS (or vault.keys)", "herald vault key --env"}, nil},
			{"worker, nothing", roleWorker, Config{}, []string{"missing 2 settings", "ENCRYPTION_KEY", "HERALD_VAULT_KEYS"}, []string{"VPS_SECRET"}},
			{"ingest, only the API secret", roleIngest, Config{Encryption: EncryptionConfig{Keys: []string{testkit.Key}}, Vault: VaultConfig{Keys: []string{testVaultKey}}},
				[]string{"missing 1 setting", "VPS_SECRET"}, []string{"ENCRYPTION_KEY", "HERALD_VAULT_KEYS"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				cfg := tt.cfg
				cfg.DataDir = t.TempDir()
				err := ensureSecretsNow(&cfg, tt.r, false, logger)
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v\nwant it to say %q", err, w)
					}
				}
				for _, w := range tt.notWant {
					if strings.Contains(err.Error(), w) {
						t.Errorf("err = %v\nnames %q, which is not missing", err, w)
					}
				}
				// An API secret seals nothing: its reason is never that.
				if strings.Contains(err.Error(), "unreadable") {
					t.Errorf("err = %v: gives a key's reason", err)
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

// Ingests joining shared NATS with rate limiting on and no challenge.keys
// sign clearances with keys derived from the vault keys they share: a
// clearance earned at one ingest is honoured by the other.
func TestSharedIngestsShareDerivedChallengeKeys(t *testing.T) {
	srv, _, _ := testkit.JetStream(t)
	env := sharedNATSEnv(srv.URL())
	delete(env, "HERALD_CHALLENGE_KEYS")
	for k, v := range protectedEnv {
		env[k] = v
	}
	a := newTestAppAs(t, roleIngest, env)
	b := newTestAppAs(t, roleIngest, env)
	for _, app := range []*testApp{a, b} {
		if _, err := os.Stat(filepath.Join(app.cfg.DataDir, challengeKeyFile)); !os.IsNotExist(err) {
			t.Errorf("a challenge key was written: %v", err)
		}
	}
	// Spend the API bucket (shared by both through NATS), then earn a
	// clearance at a.
	for range 3 {
		call(t, http.MethodGet, a.URL+"/v1/notifications/none", "X-API-Secret", testSecret, "")
	}
	solver, _ := client.New(client.Options{BaseURL: a.URL, Secret: testSecret, SolveChallenges: true})
	if _, err := solver.Status(context.Background(), "none"); err != nil && !isNotFound(err) {
		t.Fatalf("solving client at a: %v", err)
	}
	clearance := solver.Clearance()
	if clearance == "" {
		t.Fatal("no clearance from a")
	}
	// Solving refilled the plain bucket: spend it again, at b.
	for range 3 {
		call(t, http.MethodGet, b.URL+"/v1/notifications/none", "X-API-Secret", testSecret, "")
	}
	if code, _, _ := call(t, http.MethodGet, b.URL+"/v1/notifications/none", "X-API-Secret", testSecret, ""); code != http.StatusTooManyRequests {
		t.Fatalf("b without the clearance: %d, want 429 (the bucket is spent)", code)
	}
	req := newRequest(http.MethodGet, b.URL+"/v1/notifications/none", "X-API-Secret", testSecret, "")
	req.Header.Set("X-Herald-Clearance", clearance)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == http.StatusTooManyRequests {
		t.Fatalf("b refused a's clearance: %d", res.StatusCode)
	}
	if k := derivedChallengeKeys(func(string) [][]byte { return [][]byte{make([]byte, 32)} }); len(k) != 1 || !strings.HasPrefix(k[0], "v") {
		t.Errorf("derived keys = %q", k)
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

// isNotFound reports a 404 from Herald's API.
func isNotFound(err error) bool {
	var herr *client.Error
	return errors.As(err, &herr) && herr.StatusCode == http.StatusNotFound
}
