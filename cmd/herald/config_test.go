package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

// The documented config.yaml must say exactly what the built-in defaults say.
func TestConfigYAMLMatchesDefaults(t *testing.T) {
	fromFile, err := loadConfig(filepath.Join("..", "..", "config.yaml"), envMap(nil))
	if err != nil {
		t.Fatalf("config.yaml does not load: %v", err)
	}
	builtIn, err := loadConfig(writeFile(t, "empty.yaml", "{}\n"), envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFile, builtIn) {
		t.Fatalf("config.yaml and defaults differ:\nfile:     %+v\ndefaults: %+v", fromFile, builtIn)
	}
	if builtIn.HTTP.Addr != ":8000" || builtIn.NATS.Embedded.Listen != "127.0.0.1:4222" ||
		builtIn.Ingest.Streaky.Wait != 10*time.Second || builtIn.Channels.Telegram.APIBase != "https://api.telegram.org" {
		t.Fatalf("unexpected defaults: %+v", builtIn)
	}
	// Every default key appears in config.yaml.
	doc, _ := os.ReadFile(filepath.Join("..", "..", "config.yaml"))
	for k := range defaults {
		last := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(doc), last+":") {
			t.Errorf("config.yaml does not document %s", k)
		}
	}
}

func TestConfigEnvironment(t *testing.T) {
	cfg, err := loadConfig(writeFile(t, "c.yaml", "consumer:\n  workers: 4\n"), envMap(map[string]string{
		"HERALD_CONSUMER_WORKERS":               "7",
		"HERALD_NATS_URL":                       "nats://n1:4222,nats://n2:4222",
		"HERALD_CHANNELS_DISCORD_ALLOWED_HOSTS": "discord.com, 127.0.0.1",
		"HERALD_CHANNELS_DISCORD_ALLOW_HTTP":    "true",
		"HERALD_CHANNELS_TELEGRAM_API_BASE":     "http://127.0.0.1:9999",
		"HERALD_INGEST_STREAKY_WAIT":            "3s",
		"ENCRYPTION_KEY":                        "0123456789abcdef0123456789abcdef",
		"VPS_SECRET":                            "worker-secret",
		"PORT":                                  "8080",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Consumer.Workers != 7 {
		t.Errorf("workers = %d, want 7 (env beats file)", cfg.Consumer.Workers)
	}
	if cfg.NATS.URL != "nats://n1:4222,nats://n2:4222" {
		t.Errorf("nats.url = %q", cfg.NATS.URL)
	}
	if want := []string{"discord.com", "127.0.0.1"}; !reflect.DeepEqual(cfg.Channels.Discord.AllowedHosts, want) {
		t.Errorf("allowed_hosts = %q, want %q", cfg.Channels.Discord.AllowedHosts, want)
	}
	if !cfg.Channels.Discord.AllowHTTP || cfg.Channels.Telegram.APIBase != "http://127.0.0.1:9999" || cfg.Ingest.Streaky.Wait != 3*time.Second {
		t.Errorf("env not applied: %+v", cfg)
	}
	if cfg.HTTP.Addr != ":8080" || !reflect.DeepEqual(cfg.Encryption.Keys, []string{"0123456789abcdef0123456789abcdef"}) ||
		!reflect.DeepEqual(cfg.Ingest.APISecrets, []string{"worker-secret"}) {
		t.Errorf("Streaky names not applied: addr %q keys %d secrets %d", cfg.HTTP.Addr, len(cfg.Encryption.Keys), len(cfg.Ingest.APISecrets))
	}
	cfg, err = loadConfig(writeFile(t, "c.yaml", "{}"), envMap(map[string]string{"PORT": "8080", "HERALD_HTTP_ADDR": "127.0.0.1:1234"}))
	if err != nil || cfg.HTTP.Addr != "127.0.0.1:1234" {
		t.Errorf("HERALD_HTTP_ADDR should beat PORT: %q %v", cfg.HTTP.Addr, err)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		wantKey    string
	}{
		{"zero workers", "consumer:\n  workers: 0\n", nil, "consumer.workers"},
		{"unknown key", "consumer:\n  wrokers: 3\n", nil, "unknown key consumer.wrokers (did you mean consumer.workers?)"},
		{"unknown section", "consumr:\n  workers: 3\n", nil, "unknown key consumr.workers (did you mean consumer.workers?)"},
		{"bad duration", "ingest:\n  streaky:\n    wait: soon\n", nil, "wait"},
		{"wait too long", "", map[string]string{"HERALD_INGEST_STREAKY_WAIT": "20s"}, "ingest.streaky.wait"},
		{"bad addr", "", map[string]string{"HERALD_HTTP_ADDR": "8000"}, "http.addr"},
		{"bad log format", "log:\n  format: xml\n", nil, "log.format"},
		{"send timeout above ack wait", "consumer:\n  send_timeout: 40s\n", nil, "consumer.send_timeout"},
		{"no discord hosts", "", map[string]string{"HERALD_CHANNELS_DISCORD_ALLOWED_HOSTS": " , "}, "channels.discord.allowed_hosts"},
		{"replicas", "nats:\n  stream:\n    replicas: 0\n", nil, "nats.stream.replicas"},
		{"zero max hold (used to mean 2s silently)", "pacing:\n  max_hold: 0s\n", nil, "pacing.max_hold"},
		{"zero in flight", "", map[string]string{"HERALD_PACING_MAX_IN_FLIGHT": "0"}, "pacing.max_in_flight"},
		{"hung share above 1", "pacing:\n  hung_share: 1.5\n", nil, "pacing.hung_share"},
		{"zero hung share", "", map[string]string{"HERALD_PACING_HUNG_SHARE": "0"}, "pacing.hung_share"},
		{"hung after within max hold", "pacing:\n  max_hold: 2s\n  hung_after: 2s\n", nil, "pacing.hung_after"},
		{"zero hung for", "pacing:\n  hung_for: 0s\n", nil, "pacing.hung_for"},
		{"delivered records outliving the others", "nats:\n  status_ttl: 1h\n  delivered_status_ttl: 2h\n", nil, "nats.delivered_status_ttl"},
		{"ack delay past a second", "consumer:\n  ack_delay: 2s\n", nil, "consumer.ack_delay"},
		{"IPv6 client prefix too short", "", map[string]string{"HERALD_HTTP_IPV6_CLIENT_PREFIX": "16"}, "http.ipv6_client_prefix"},
		{"IPv6 client prefix zero", "http:\n  ipv6_client_prefix: 0\n", nil, "http.ipv6_client_prefix"},
		{"delivered records gone at once", "", map[string]string{"HERALD_NATS_DELIVERED_STATUS_TTL": "0s"}, "nats.delivered_status_ttl"},
		{"waiting shares past max_waiting", "ingest:\n  api_secrets: [a, b]\n  streaky:\n    max_waiting: 10\n    max_waiting_per_secret: 6\n", nil,
			"ingest.streaky.max_waiting_per_secret"},
		{"negative waiting share", "", map[string]string{"HERALD_INGEST_STREAKY_MAX_WAITING_PER_SECRET": "-1"}, "ingest.streaky.max_waiting_per_secret"},
		{"key shares past max_keys", "ingest:\n  api_secrets: [a, b]\n  idempotency_max_keys: 10\n  idempotency_max_keys_per_secret: 6\n", nil,
			"ingest.idempotency_max_keys_per_secret"},
		{"no keys", "", map[string]string{"HERALD_INGEST_IDEMPOTENCY_MAX_KEYS": "0"}, "ingest.idempotency_max_keys"},
		{"idempotency window under a second", "ingest:\n  idempotency_window: 500ms\n", nil, "ingest.idempotency_window"},
		{"failure status misspelt", "", map[string]string{"HERALD_INGEST_STREAKY_FAILURE_STATUS": "200"}, "ingest.streaky.failure_status"},
		{"fewer waiting slots than secrets", "ingest:\n  api_secrets: [a, b, c]\n  streaky:\n    max_waiting: 2\n", nil, "ingest.streaky.max_waiting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(writeFile(t, "c.yaml", tt.file+"\n"), envMap(tt.env))
			if err == nil {
				t.Fatal("loadConfig accepted bad config")
			}
			if !strings.Contains(err.Error(), tt.wantKey) {
				t.Fatalf("error %q does not name %s", err, tt.wantKey)
			}
		})
	}
}

func TestEnsureSecretsGeneratesOnceAndReuses(t *testing.T) {
	dir := t.TempDir()
	logger, logs := testkit.Logger(t)
	cfg := Config{DataDir: filepath.Join(dir, "data")}
	if err := ensureSecretsNow(&cfg, roleServe, true, logger); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Encryption.Keys) != 1 || len(cfg.Ingest.APISecrets) != 1 {
		t.Fatalf("secrets not filled: %d keys, %d api secrets", len(cfg.Encryption.Keys), len(cfg.Ingest.APISecrets))
	}
	key, secret, vaultKey := cfg.Encryption.Keys[0], cfg.Ingest.APISecrets[0], cfg.Vault.Keys[0]
	for _, name := range []string{encryptionKeyFile, apiSecretFile, vaultKeyFile} {
		fi, err := os.Stat(filepath.Join(cfg.DataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
		if !strings.Contains(logs.String(), filepath.Join(cfg.DataDir, name)) {
			t.Errorf("no log line names %s", name)
		}
	}
	if strings.Contains(logs.String(), key) || strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), vaultKey[strings.Index(vaultKey, ":")+1:]) {
		t.Fatal("a generated secret was logged")
	}
	if strings.Count(logs.String(), "\n") != 3 {
		t.Errorf("want one log line per generated secret, got:\n%s", logs.String())
	}

	logs.Reset()
	again := Config{DataDir: cfg.DataDir}
	if err := ensureSecretsNow(&again, roleServe, true, logger); err != nil {
		t.Fatal(err)
	}
	if again.Encryption.Keys[0] != key || again.Ingest.APISecrets[0] != secret || again.Vault.Keys[0] != vaultKey {
		t.Fatal("secrets were not reused on the second start")
	}
	if logs.String() != "" {
		t.Errorf("reusing secrets logged: %s", logs.String())
	}
	// Configured values are left alone.
	own := Config{DataDir: t.TempDir(), Encryption: EncryptionConfig{Keys: []string{"k"}}, Ingest: IngestConfig{APISecrets: []string{"s"}}}
	if err := ensureSecretsNow(&own, roleServe, true, logger); err != nil || own.Encryption.Keys[0] != "k" || own.Ingest.APISecrets[0] != "s" {
		t.Fatal("configured secrets were replaced")
	}
}

// A misspelt HERALD_ variable stops start-up, named with the closest known
// one, instead of leaving its setting silently at the default; its value is
// never shown.
func TestCheckEnvironment(t *testing.T) {
	ok := []string{"PATH=/bin", "HERALD_NATS_URL=nats://n1:4222", "HERALD_CONSUMER_WORKERS=8", "ENCRYPTION_KEY=k", "HERALDRY=x", "REQUIRE_BROWSER_TESTS=1"}
	if err := checkEnvironment(ok); err != nil {
		t.Errorf("known variables refused: %v", err)
	}
	err := checkEnvironment(append(ok, "HERALD_CONSUMER_WROKERS=64", "HERALD_NATS_UR=nats://user:s3cret@n1"))
	if err == nil {
		t.Fatal("misspelt variables accepted")
	}
	for _, want := range []string{"HERALD_CONSUMER_WROKERS (did you mean HERALD_CONSUMER_WORKERS?)", "HERALD_NATS_UR (did you mean HERALD_NATS_URL?)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	testkit.AssertNoSecrets(t, "error", err.Error(), "s3cret", "64")
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"workers", "wrokers", 2}, {"url", "ur", 1}, {"kitten", "sitting", 3}} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
