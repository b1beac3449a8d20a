package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldrelay/herald/internal/testkit"
)

// The start-up log says which API secrets the ingest accepts, each by
// where it was set and a keyed fingerprint, never by value; and it says
// when data_dir/api.secret is not accepted because secrets are configured
// (VPS_SECRET set), instead of ignoring the file silently.
func TestAPISecretsInForceAreLogged(t *testing.T) {
	const fileSecret = "file-secret-not-accepted-0123456789"
	t.Run("VPS_SECRET beside data_dir/api.secret", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, apiSecretFile), []byte(fileSecret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		app := newTestApp(t, map[string]string{"HERALD_DATA_DIR": dir})
		logs := app.Logs.String()
		want := "VPS_SECRET (fingerprint " + secretFingerprint(testkit.Key, testSecret) + ")"
		if !strings.Contains(logs, `"msg":"API secrets in force","count":1,"secrets":"`+want+`"`) {
			t.Errorf("no line names %s as the secret in force:\n%s", want, logs)
		}
		if !strings.Contains(logs, "the API secret in data_dir is not accepted") || !strings.Contains(logs, filepath.Join(dir, apiSecretFile)) ||
			!strings.Contains(logs, secretFingerprint(testkit.Key, fileSecret)) {
			t.Errorf("no warning names %s as not accepted:\n%s", apiSecretFile, logs)
		}
		testkit.AssertNoSecrets(t, "logs", logs, testSecret, fileSecret)
		// And indeed it is not accepted.
		if code, _, _ := call(t, "GET", app.URL+"/v1/notifications/x1", "X-API-Secret", fileSecret, ""); code != 401 {
			t.Errorf("the file's secret got %d, want 401", code)
		}
	})
	t.Run("generated", func(t *testing.T) {
		dir := t.TempDir()
		app := newTestApp(t, map[string]string{"HERALD_DATA_DIR": dir, "VPS_SECRET": ""})
		logs := app.Logs.String()
		if !strings.Contains(logs, `"secrets":"`+filepath.Join(dir, apiSecretFile)+` (fingerprint `) {
			t.Errorf("the generated secret is not named by its file:\n%s", logs)
		}
		if strings.Contains(logs, "not accepted") {
			t.Errorf("the secret in force was called not accepted:\n%s", logs)
		}
	})
	t.Run("a variable's list", func(t *testing.T) {
		app := newTestApp(t, map[string]string{"VPS_SECRET": "", "HERALD_INGEST_API_SECRETS": "first-secret-abcdef, ,second-secret-abcdef"})
		logs := app.Logs.String()
		for _, want := range []string{"HERALD_INGEST_API_SECRETS #1 (fingerprint ", "HERALD_INGEST_API_SECRETS #3 (fingerprint "} {
			if !strings.Contains(logs, want) {
				t.Errorf("logs lack %q", want)
			}
		}
		testkit.AssertNoSecrets(t, "logs", logs, "first-secret-abcdef", "second-secret-abcdef")
	})
}

// Secrets from the file are named by file and line, after VPS_SECRET.
func TestAPISecretSourcesFromTheFile(t *testing.T) {
	path := writeFile(t, "c.yaml", "# secrets\ningest:\n  api_secrets: [a, b]\n")
	cfg, err := loadConfig(path, envMap(map[string]string{"VPS_SECRET": "v"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"VPS_SECRET", "ingest.api_secrets #1 in " + path + ":3", "ingest.api_secrets #2 in " + path + ":3"}
	if !reflect.DeepEqual(cfg.Ingest.sources, want) || len(cfg.Ingest.APISecrets) != 3 {
		t.Fatalf("sources = %q, want %q", cfg.Ingest.sources, want)
	}
}

// A fingerprint depends on the key, so it is no help in guessing a secret
// without it, and tells secrets apart.
func TestSecretFingerprint(t *testing.T) {
	a, b := secretFingerprint(testkit.Key, "s1"), secretFingerprint(testkit.Key, "s2")
	if len(a) != 8 || a == b || a != secretFingerprint(testkit.Key, "s1") {
		t.Errorf("fingerprints %q %q", a, b)
	}
	if secretFingerprint(strings.Repeat("k", 32), "s1") == a {
		t.Error("the fingerprint does not depend on the key")
	}
}
