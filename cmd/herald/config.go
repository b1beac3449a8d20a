package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/clientaddr"
)

// Config is everything `herald` reads from config.yaml, HERALD_* environment
// variables and Streaky's own variable names. config.yaml at the repository
// root documents every key with its default; defaults below must match it.
type Config struct {
	DataDir    string           `mapstructure:"data_dir"`
	Log        LogConfig        `mapstructure:"log"`
	HTTP       HTTPConfig       `mapstructure:"http"`
	NATS       NATSConfig       `mapstructure:"nats"`
	Encryption EncryptionConfig `mapstructure:"encryption"`
	Ingest     IngestConfig     `mapstructure:"ingest"`
	Consumer   ConsumerConfig   `mapstructure:"consumer"`
	Worker     WorkerConfig     `mapstructure:"worker"`
	Channels   ChannelsConfig   `mapstructure:"channels"`
	Retry      RetryConfig      `mapstructure:"retry"`
	DLQ        DLQConfig        `mapstructure:"dlq"`
	Admin      AdminConfig      `mapstructure:"admin"`
	Pacing     PacingConfig     `mapstructure:"pacing"`
	Breaker    BreakerConfig    `mapstructure:"breaker"`
	RateLimit  RateLimitConfig  `mapstructure:"ratelimit"`
	Challenge  ChallengeConfig  `mapstructure:"challenge"`
	Vault      VaultConfig      `mapstructure:"vault"`
}

// RateLimitConfig is the token buckets in front of the public endpoints.
type RateLimitConfig struct {
	Enabled      bool            `mapstructure:"enabled"`
	MaxTokens    int             `mapstructure:"max_tokens"`
	RefillRate   int             `mapstructure:"refill_rate"`
	RefillTime   time.Duration   `mapstructure:"refill_time"`
	OnStoreError string          `mapstructure:"on_store_error"`
	Groups       RateLimitGroups `mapstructure:"groups"`
}

// RateLimitGroups overrides the bucket per route group; zero fields take the
// ratelimit section's values.
type RateLimitGroups struct {
	Streaky   BucketConfig `mapstructure:"streaky"`
	API       BucketConfig `mapstructure:"api"`
	Register  BucketConfig `mapstructure:"register"`
	Challenge BucketConfig `mapstructure:"challenge"`
}

type BucketConfig struct {
	MaxTokens  int           `mapstructure:"max_tokens"`
	RefillRate int           `mapstructure:"refill_rate"`
	RefillTime time.Duration `mapstructure:"refill_time"`
}

// ChallengeConfig is the proof-of-work challenge offered with a 429.
type ChallengeConfig struct {
	Difficulty          int           `mapstructure:"difficulty"`
	MaxDifficulty       int           `mapstructure:"max_difficulty"`
	EscalateAfterSolves int           `mapstructure:"escalate_after_solves"`
	TTL                 time.Duration `mapstructure:"ttl"`
	ClearanceTTL        time.Duration `mapstructure:"clearance_ttl"`
	Keys                []string      `mapstructure:"keys"`
}

type RetryConfig struct {
	MaxAttempts int           `mapstructure:"max_attempts"`
	MaxAge      time.Duration `mapstructure:"max_age"`
}

type DLQConfig struct {
	MaxAge time.Duration `mapstructure:"max_age"`
}

type AdminConfig struct {
	Secret string `mapstructure:"secret"`
	// ConsoleSessionTTL is how long a sign-in to the console lasts.
	ConsoleSessionTTL time.Duration `mapstructure:"console_session_ttl"`
}

type PacingConfig struct {
	MaxHold         time.Duration `mapstructure:"max_hold"`
	MaxInFlight     int           `mapstructure:"max_in_flight"`
	MaxDestinations int           `mapstructure:"max_destinations"`
	// HungShare, HungAfter and HungFor configure internal/hung's Gate: the
	// part of consumer.workers that sends to destinations not known to
	// answer may hold, how long a send may go unanswered, and how long a
	// destination stays suspect after one did.
	HungShare float64       `mapstructure:"hung_share"`
	HungAfter time.Duration `mapstructure:"hung_after"`
	HungFor   time.Duration `mapstructure:"hung_for"`
	MaxMemory int64         `mapstructure:"max_memory"`
}

type BreakerConfig struct {
	Failures        uint32        `mapstructure:"failures"`
	OpenTimeout     time.Duration `mapstructure:"open_timeout"`
	HalfOpenProbes  uint32        `mapstructure:"half_open_probes"`
	MaxDestinations int           `mapstructure:"max_destinations"`
	MaxMemory       int64         `mapstructure:"max_memory"`
}

type LogConfig struct {
	Format string `mapstructure:"format"`
	Level  string `mapstructure:"level"`
}

type HTTPConfig struct {
	Addr                    string        `mapstructure:"addr"`
	ReadTimeout             time.Duration `mapstructure:"read_timeout"`
	ShutdownTimeout         time.Duration `mapstructure:"shutdown_timeout"`
	IdleTimeout             time.Duration `mapstructure:"idle_timeout"`
	MaxConnections          int           `mapstructure:"max_connections"`
	MaxConnectionsPerClient int           `mapstructure:"max_connections_per_client"`
	// IPv6ClientPrefix is the IPv6 network length that is one client, for
	// the per-client connection cap and rate-limit buckets alike.
	IPv6ClientPrefix int `mapstructure:"ipv6_client_prefix"`
	// MetricsAddr is where the ingest (and serve) serves /metrics, apart
	// from the public Addr; "" serves it nowhere.
	MetricsAddr string `mapstructure:"metrics_addr"`
}

type NATSConfig struct {
	URL       string         `mapstructure:"url"`
	Name      string         `mapstructure:"name"`
	Embedded  EmbeddedConfig `mapstructure:"embedded"`
	Stream    StreamConfig   `mapstructure:"stream"`
	StatusTTL time.Duration  `mapstructure:"status_ttl"`
	// ConnectTimeout bounds the first connection to NATS at start-up.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// DeliveredStatusTTL is how long a delivered job's record is kept.
	DeliveredStatusTTL time.Duration `mapstructure:"delivered_status_ttl"`
	// Credentials and TLS towards NATS (natsconn.go): at most one of
	// CredsFile, NKeyFile and Token. With URL empty, Token or NKeyFile is
	// also what the embedded server requires.
	CredsFile string        `mapstructure:"creds_file"`
	NKeyFile  string        `mapstructure:"nkey_file"`
	Token     string        `mapstructure:"token"`
	TLS       NATSTLSConfig `mapstructure:"tls"`
}

// NATSTLSConfig names PEM files: the CA of the NATS servers' certificates
// and a client certificate with its key.
type NATSTLSConfig struct {
	CAFile   string `mapstructure:"ca_file"`
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

type EmbeddedConfig struct {
	// Auth is what the embedded server asks of clients: "token" (nats.token,
	// else a token generated into data_dir/nats.token) or "none".
	Auth         string        `mapstructure:"auth"`
	Listen       string        `mapstructure:"listen"`
	SyncInterval time.Duration `mapstructure:"sync_interval"`
	SyncAlways   bool          `mapstructure:"sync_always"`
}

type StreamConfig struct {
	Replicas        int           `mapstructure:"replicas"`
	DuplicateWindow time.Duration `mapstructure:"duplicate_window"`
	MaxAge          time.Duration `mapstructure:"max_age"`
	MaxBytes        int64         `mapstructure:"max_bytes"`
}

type EncryptionConfig struct {
	Keys []string `mapstructure:"keys"`
}

type IngestConfig struct {
	APISecrets     []string            `mapstructure:"api_secrets"`
	TrustedProxies []string            `mapstructure:"trusted_proxies"`
	MaxBodyBytes   int64               `mapstructure:"max_body_bytes"`
	Streaky        StreakyIngestConfig `mapstructure:"streaky"`
	// IdempotencyWindow is how long an Idempotency-Key is kept.
	IdempotencyWindow time.Duration `mapstructure:"idempotency_window"`
	// IdempotencyMaxKeys bounds the keys kept at once; each API secret may
	// hold IdempotencyMaxKeysPerSecret of them (0: an equal share).
	IdempotencyMaxKeys          int `mapstructure:"idempotency_max_keys"`
	IdempotencyMaxKeysPerSecret int `mapstructure:"idempotency_max_keys_per_secret"`
	// sources says where each of APISecrets was set (VPS_SECRET, the
	// variable or the file and which entry, or data_dir's file), for the
	// start-up log that names the secrets in force.
	sources []string
}

type StreakyIngestConfig struct {
	Wait                time.Duration `mapstructure:"wait"`
	MaxWaiting          int           `mapstructure:"max_waiting"`
	MaxWaitingPerSecret int           `mapstructure:"max_waiting_per_secret"`
	// FailureStatus is "error" (a failure is a 4xx or 5xx) or "ok" (a
	// failure is a 200 with success:false, as Streaky's proxy answers).
	FailureStatus string `mapstructure:"failure_status"`
	// SendFirst lets a process that also delivers (herald serve) try a
	// waiting request's job before storing it (consumer.Pool.SendFirst).
	SendFirst bool `mapstructure:"send_first"`
}

type ConsumerConfig struct {
	Workers       int           `mapstructure:"workers"`
	AckWait       time.Duration `mapstructure:"ack_wait"`
	MaxAckPending int           `mapstructure:"max_ack_pending"`
	SendTimeout   time.Duration `mapstructure:"send_timeout"`
	MinBackoff    time.Duration `mapstructure:"min_backoff"`
	MaxBackoff    time.Duration `mapstructure:"max_backoff"`
	MaxRetryAfter time.Duration `mapstructure:"max_retry_after"`
	DrainTimeout  time.Duration `mapstructure:"drain_timeout"`
	AckDelay      time.Duration `mapstructure:"ack_delay"`
	// MaxParked and MaxParkedPerDestination cap the held-back jobs one
	// worker process keeps parked.
	MaxParked               int `mapstructure:"max_parked"`
	MaxParkedPerDestination int `mapstructure:"max_parked_per_destination"`
}

type WorkerConfig struct {
	HTTPAddr string `mapstructure:"http_addr"`
}

type ChannelsConfig struct {
	Timeout  time.Duration         `mapstructure:"timeout"`
	Discord  DiscordChannelConfig  `mapstructure:"discord"`
	Telegram TelegramChannelConfig `mapstructure:"telegram"`
}

type DiscordChannelConfig struct {
	AllowedHosts      []string      `mapstructure:"allowed_hosts"`
	AllowHTTP         bool          `mapstructure:"allow_http"`
	GlobalRate        float64       `mapstructure:"global_rate"`
	InvalidBudget     int           `mapstructure:"invalid_budget"`
	InvalidWindow     time.Duration `mapstructure:"invalid_window"`
	UnverifiedShare   float64       `mapstructure:"unverified_share"`
	BadDestinationTTL time.Duration `mapstructure:"bad_destination_ttl"`
}

type TelegramChannelConfig struct {
	APIBase      string  `mapstructure:"api_base"`
	PerChatRate  float64 `mapstructure:"per_chat_rate"`
	PerGroupRate float64 `mapstructure:"per_group_rate"`
	PerBotRate   float64 `mapstructure:"per_bot_rate"`
}

// defaults lists every key with its default value. config.yaml repeats them
// with documentation; TestConfigYAMLMatchesDefaults keeps the two in step.
var defaults = map[string]any{
	"data_dir":   "./data",
	"log.format": "text",
	"log.level":  "info",

	"http.addr":                       ":8000",
	"http.read_timeout":               "10s",
	"http.shutdown_timeout":           "15s",
	"http.idle_timeout":               "60s",
	"http.max_connections":            2048,
	"http.max_connections_per_client": 128,
	"http.ipv6_client_prefix":         64,
	"http.metrics_addr":               "",

	"nats.url":                            "",
	"nats.name":                           "herald",
	"nats.connect_timeout":                "5s",
	"nats.embedded.listen":                "127.0.0.1:4222",
	"nats.embedded.auth":                  "token",
	"nats.creds_file":                     "",
	"nats.nkey_file":                      "",
	"nats.token":                          "",
	"nats.tls.ca_file":                    "",
	"nats.tls.cert_file":                  "",
	"nats.tls.key_file":                   "",
	"nats.embedded.sync_interval":         "0s",
	"nats.embedded.sync_always":           false,
	"nats.stream.replicas":                1,
	"nats.stream.duplicate_window":        "2m",
	"nats.stream.max_age":                 "0s",
	"nats.stream.max_bytes":               0,
	"nats.status_ttl":                     "24h",
	"nats.delivered_status_ttl":           "15m",
	"encryption.keys":                     []string{},
	"ingest.api_secrets":                  []string{},
	"ingest.max_body_bytes":               2 << 20,
	"ingest.idempotency_window":           "24h",
	"ingest.idempotency_max_keys":         200000,
	"ingest.streaky.wait":                 "10s",
	"ingest.streaky.max_waiting":          1000,
	"consumer.workers":                    32,
	"consumer.ack_wait":                   "30s",
	"consumer.max_ack_pending":            0,
	"consumer.send_timeout":               "10s",
	"consumer.min_backoff":                "1s",
	"consumer.max_backoff":                "5m",
	"consumer.max_retry_after":            "1h",
	"consumer.drain_timeout":              "15s",
	"consumer.ack_delay":                  "5ms",
	"consumer.max_parked":                 20000,
	"consumer.max_parked_per_destination": 2000,
	"worker.http_addr":                    ":9090",
	"channels.timeout":                    "10s",
	"channels.discord.allowed_hosts":      []string{"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"},
	"channels.discord.allow_http":         false,
	"channels.telegram.api_base":          "https://api.telegram.org",

	// 0: ingest.streaky.max_waiting divided equally among the API secrets.
	"ingest.streaky.max_waiting_per_secret": 0,
	// 0: ingest.idempotency_max_keys divided equally among the API secrets.
	"ingest.idempotency_max_keys_per_secret": 0,
	// error: no failure of /send-notification is a 2xx (see README).
	"ingest.streaky.failure_status": "error",
	// true: a waiting request's job is tried before it is stored, in a
	// process that also delivers (see README).
	"ingest.streaky.send_first": true,

	"channels.discord.global_rate":         50.0,
	"channels.discord.invalid_budget":      5000,
	"channels.discord.invalid_window":      "10m",
	"channels.discord.unverified_share":    0.1,
	"channels.discord.bad_destination_ttl": "1h",
	"channels.telegram.per_chat_rate":      1.0,
	"channels.telegram.per_group_rate":     0.33,
	"channels.telegram.per_bot_rate":       30.0,
	"retry.max_attempts":                   10,
	"retry.max_age":                        "24h",
	"dlq.max_age":                          "720h",
	"admin.secret":                         "",
	"admin.console_session_ttl":            "8h",
	"pacing.max_hold":                      "2s",
	"pacing.max_in_flight":                 2,
	"pacing.max_destinations":              100000,
	"pacing.hung_share":                    0.5,
	"pacing.hung_after":                    "5s",
	"pacing.hung_for":                      "10m",
	"pacing.max_memory":                    8 << 20,
	"breaker.failures":                     5,
	"breaker.open_timeout":                 "30s",
	"breaker.half_open_probes":             1,
	"breaker.max_destinations":             100000,
	"breaker.max_memory":                   8 << 20,

	"ingest.trusted_proxies":                 []string{},
	"ratelimit.enabled":                      true,
	"ratelimit.max_tokens":                   60,
	"ratelimit.refill_rate":                  1,
	"ratelimit.refill_time":                  "1s",
	"ratelimit.on_store_error":               "allow",
	"ratelimit.groups.streaky.max_tokens":    1000,
	"ratelimit.groups.streaky.refill_rate":   100,
	"ratelimit.groups.streaky.refill_time":   "1s",
	"ratelimit.groups.api.max_tokens":        1000,
	"ratelimit.groups.api.refill_rate":       100,
	"ratelimit.groups.api.refill_time":       "1s",
	"ratelimit.groups.register.max_tokens":   6,
	"ratelimit.groups.register.refill_rate":  1,
	"ratelimit.groups.register.refill_time":  "6s",
	"ratelimit.groups.challenge.max_tokens":  20,
	"ratelimit.groups.challenge.refill_rate": 1,
	"ratelimit.groups.challenge.refill_time": "6s",
	"challenge.difficulty":                   4,
	"challenge.max_difficulty":               5,
	"challenge.escalate_after_solves":        8,
	"challenge.ttl":                          "5m",
	"challenge.clearance_ttl":                "1h",
	"challenge.keys":                         []string{},

	"vault.keys":                 []string{},
	"vault.require_verification": false,
	"vault.secret_max_ttl":       "24h",
	"vault.code_ttl":             "15m",
}

// loadConfig reads path (optional; "" means ./config.yaml when it exists),
// then HERALD_* variables, then Streaky's ENCRYPTION_KEY, VPS_SECRET and PORT.
// getenv is os.Getenv outside tests.
func loadConfig(path string, getenv func(string) string) (Config, error) {
	v := viper.New()
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	// HERALD_<SECTION>_<KEY> overrides the file. The variables are read through
	// getenv rather than viper.AutomaticEnv so tests stay hermetic.
	for k := range defaults {
		if val := getenv(envName(k)); val != "" {
			v.Set(k, val)
		}
	}

	if path == "" {
		if _, err := os.Stat("config.yaml"); err == nil {
			path = "config.yaml"
		}
	}
	if path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fileError(path, err)
		}
	}

	var cfg Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		if unknown := unknownFileKeys(v.AllKeys()); len(unknown) > 0 {
			return Config{}, fmt.Errorf("config: unknown key %s in %s", strings.Join(unknown, ", "), path)
		}
		// One line per bad value, naming the variable or the file and
		// line it came from, rather than the decoder's report.
		if bad := badValues(v, path, getenv); len(bad) > 0 {
			return Config{}, errors.New(strings.Join(bad, "\n"))
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}

	// The encryption keys are checked here, where it is known which one
	// came from where (a bad one must stop start-up before any file is
	// written into data_dir).
	var keyErrs []error
	for i, k := range compact(cfg.Encryption.Keys) {
		if err := crypto.ValidateKey(k); err != nil {
			keyErrs = append(keyErrs, fmt.Errorf("config: encryption.keys: key %d: %w", i+1, err))
		}
	}
	// Streaky's proxy names, so a Worker's deployment works unchanged.
	if k := getenv("ENCRYPTION_KEY"); k != "" {
		if err := crypto.ValidateKey(strings.TrimSpace(k)); err != nil {
			keyErrs = append(keyErrs, fmt.Errorf("config: ENCRYPTION_KEY: %w", err))
		}
		cfg.Encryption.Keys = append([]string{k}, cfg.Encryption.Keys...)
	}
	cfg.Ingest.sources = apiSecretSources(len(cfg.Ingest.APISecrets), path, getenv)
	if s := getenv("VPS_SECRET"); s != "" {
		cfg.Ingest.APISecrets = append([]string{s}, cfg.Ingest.APISecrets...)
		cfg.Ingest.sources = append([]string{"VPS_SECRET"}, cfg.Ingest.sources...)
	}
	if p := getenv("PORT"); p != "" && getenv("HERALD_HTTP_ADDR") == "" {
		cfg.HTTP.Addr = ":" + p
	}
	cfg.Encryption.Keys = compact(cfg.Encryption.Keys)
	cfg.Ingest.APISecrets, cfg.Ingest.sources = compactNamed(cfg.Ingest.APISecrets, cfg.Ingest.sources)
	cfg.Channels.Discord.AllowedHosts = compact(cfg.Channels.Discord.AllowedHosts)
	cfg.Ingest.TrustedProxies = compact(cfg.Ingest.TrustedProxies)
	cfg.Challenge.Keys = compact(cfg.Challenge.Keys)
	cfg.Vault.Keys = compact(cfg.Vault.Keys)
	err := cfg.validate()
	if err != nil || len(keyErrs) > 0 {
		return cfg, errors.Join(append(keyErrs, nameSources(err, path, getenv)...)...)
	}
	return cfg, nil
}

// compact trims entries and drops empty ones (env lists like "a, b,").
func compact(in []string) []string {
	out := in[:0:0]
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// validate checks what cannot be checked by the packages' own Validate, and
// names the key at fault.
func (c Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json, not %q", c.Log.Format)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
	if err := checkAddr(c.HTTP.Addr); err != nil {
		bad("http.addr", "%v", err)
	}
	if c.HTTP.MaxConnections < 0 {
		bad("http.max_connections", "must not be negative (0: no cap)")
	}
	if c.HTTP.MaxConnectionsPerClient < 0 {
		bad("http.max_connections_per_client", "must not be negative (0: no cap)")
	}
	if err := clientaddr.CheckIPv6Prefix(c.HTTP.IPv6ClientPrefix); err != nil || c.HTTP.IPv6ClientPrefix == 0 {
		bad("http.ipv6_client_prefix", "must be between %d and 128, not %d", clientaddr.MinIPv6Prefix, c.HTTP.IPv6ClientPrefix)
	}
	if c.HTTP.IdleTimeout <= 0 {
		bad("http.idle_timeout", "must be more than 0s")
	}
	if c.HTTP.MetricsAddr != "" {
		if err := checkAddr(c.HTTP.MetricsAddr); err != nil {
			bad("http.metrics_addr", "%v", err)
		}
	}
	if c.Worker.HTTPAddr != "" {
		if err := checkAddr(c.Worker.HTTPAddr); err != nil {
			bad("worker.http_addr", "%v", err)
		}
	}
	if c.NATS.URL == "" {
		if err := checkAddr(c.NATS.Embedded.Listen); err != nil {
			bad("nats.embedded.listen", "%v", err)
		}
	}
	c.NATS.check(bad)
	if c.NATS.Stream.Replicas < 1 || c.NATS.Stream.Replicas > 5 {
		bad("nats.stream.replicas", "must be between 1 and 5, not %d", c.NATS.Stream.Replicas)
	}
	if c.NATS.Stream.DuplicateWindow < 0 {
		bad("nats.stream.duplicate_window", "must not be negative")
	}
	if c.NATS.ConnectTimeout < 100*time.Millisecond || c.NATS.ConnectTimeout > 10*time.Minute {
		bad("nats.connect_timeout", "must be between 100ms and 10m")
	}
	if c.NATS.StatusTTL < time.Second {
		bad("nats.status_ttl", "must be at least 1s")
	}
	if c.NATS.DeliveredStatusTTL < time.Second || c.NATS.DeliveredStatusTTL > c.NATS.StatusTTL {
		bad("nats.delivered_status_ttl", "must be at least 1s and at most nats.status_ttl")
	}
	if c.Ingest.MaxBodyBytes < 1024 {
		bad("ingest.max_body_bytes", "must be at least 1024")
	}
	if c.Ingest.IdempotencyWindow < time.Second {
		bad("ingest.idempotency_window", "must be at least 1s, not %s", c.Ingest.IdempotencyWindow)
	}
	if c.Ingest.IdempotencyMaxKeys < 1 {
		bad("ingest.idempotency_max_keys", "must be at least 1, not %d", c.Ingest.IdempotencyMaxKeys)
	}
	if c.Ingest.Streaky.Wait < 0 || c.Ingest.Streaky.Wait > 14*time.Second {
		bad("ingest.streaky.wait", "must be between 0s and 14s (the Worker gives up after 15 s), not %s", c.Ingest.Streaky.Wait)
	}
	if c.Ingest.Streaky.MaxWaiting < 1 {
		bad("ingest.streaky.max_waiting", "must be at least 1")
	}
	if f := c.Ingest.Streaky.FailureStatus; f != "error" && f != "ok" {
		bad("ingest.streaky.failure_status", "must be error (a failure is a 4xx or 5xx) or ok (a failure is a 200 with success:false), not %q", f)
	}
	// Each API secret needs a slot, and the shares must fit in max_waiting,
	// so one secret's requests never take another's slots. With no secret
	// configured, one is generated.
	if mw := c.Ingest.Streaky.MaxWaiting; mw >= 1 {
		secrets := max(1, len(c.Ingest.APISecrets))
		switch per := c.Ingest.Streaky.MaxWaitingPerSecret; {
		case per < 0 || per > mw/secrets:
			bad("ingest.streaky.max_waiting_per_secret", "must be between 0 (max_waiting shared equally) and ingest.streaky.max_waiting (%d) divided by the %d API secrets, not %d",
				mw, secrets, per)
		case mw < secrets:
			bad("ingest.streaky.max_waiting", "must be at least 1 per API secret (%d secrets), not %d", secrets, mw)
		}
	}
	// The same for the kept Idempotency-Keys: one secret's keys never take
	// another's room.
	if mk := c.Ingest.IdempotencyMaxKeys; mk >= 1 {
		secrets := max(1, len(c.Ingest.APISecrets))
		switch per := c.Ingest.IdempotencyMaxKeysPerSecret; {
		case per < 0 || per > mk/secrets:
			bad("ingest.idempotency_max_keys_per_secret", "must be between 0 (idempotency_max_keys shared equally) and ingest.idempotency_max_keys (%d) divided by the %d API secrets, not %d",
				mk, secrets, per)
		case mk < secrets:
			bad("ingest.idempotency_max_keys", "must be at least 1 per API secret (%d secrets), not %d", secrets, mk)
		}
	}
	if c.Consumer.Workers < 1 {
		bad("consumer.workers", "must be at least 1, not %d", c.Consumer.Workers)
	}
	if c.Consumer.SendTimeout <= 0 || c.Consumer.SendTimeout >= c.Consumer.AckWait {
		bad("consumer.send_timeout", "must be above 0 and below consumer.ack_wait (%s)", c.Consumer.AckWait)
	}
	if c.Consumer.AckDelay < 0 || c.Consumer.AckDelay > time.Second {
		bad("consumer.ack_delay", "must be between 0s (ack each job at once) and %s", time.Second)
	}
	if c.Consumer.MaxParkedPerDestination < 1 {
		bad("consumer.max_parked_per_destination", "must be at least 1, not %d", c.Consumer.MaxParkedPerDestination)
	}
	if c.Consumer.MaxParked < c.Consumer.MaxParkedPerDestination {
		bad("consumer.max_parked", "must be at least consumer.max_parked_per_destination (%d), not %d", c.Consumer.MaxParkedPerDestination, c.Consumer.MaxParked)
	}
	if c.Consumer.MinBackoff <= 0 || c.Consumer.MaxBackoff < c.Consumer.MinBackoff {
		bad("consumer.min_backoff", "must be above 0 and at most consumer.max_backoff")
	}
	if c.Channels.Timeout <= 0 {
		bad("channels.timeout", "must be above 0")
	}
	if len(c.Channels.Discord.AllowedHosts) == 0 {
		bad("channels.discord.allowed_hosts", "must name at least one host")
	}
	if !strings.HasPrefix(c.Channels.Telegram.APIBase, "https://") && !strings.HasPrefix(c.Channels.Telegram.APIBase, "http://") {
		bad("channels.telegram.api_base", "must be an http(s) URL")
	}
	if c.Retry.MaxAttempts < 1 {
		bad("retry.max_attempts", "must be at least 1, not %d", c.Retry.MaxAttempts)
	}
	if c.Retry.MaxAge < time.Second {
		bad("retry.max_age", "must be at least 1s")
	}
	if c.DLQ.MaxAge < time.Hour {
		bad("dlq.max_age", "must be at least 1h")
	}
	if s := c.Admin.Secret; s != "" && len(s) < 16 {
		bad("admin.secret", "must be at least 16 characters (or empty to disable the admin API)")
	}
	if c.Admin.ConsoleSessionTTL < time.Second {
		bad("admin.console_session_ttl", "must be at least 1s")
	}
	if c.Channels.Discord.GlobalRate <= 0 {
		bad("channels.discord.global_rate", "must be above 0")
	}
	if c.Channels.Discord.InvalidBudget < 1 {
		bad("channels.discord.invalid_budget", "must be at least 1")
	}
	if c.Channels.Discord.InvalidWindow < time.Second {
		bad("channels.discord.invalid_window", "must be at least 1s")
	}
	if s := c.Channels.Discord.UnverifiedShare; !(s > 0 && s <= 0.5) {
		bad("channels.discord.unverified_share", "must be more than 0 and at most 0.5")
	}
	if c.Channels.Discord.BadDestinationTTL <= 0 {
		bad("channels.discord.bad_destination_ttl", "must be more than 0s")
	}
	for key, v := range map[string]float64{
		"channels.telegram.per_chat_rate":  c.Channels.Telegram.PerChatRate,
		"channels.telegram.per_group_rate": c.Channels.Telegram.PerGroupRate,
		"channels.telegram.per_bot_rate":   c.Channels.Telegram.PerBotRate,
	} {
		if v <= 0 {
			bad(key, "must be above 0")
		}
	}
	if c.Pacing.MaxHold <= 0 || c.Pacing.MaxHold >= c.Consumer.AckWait {
		bad("pacing.max_hold", "must be more than 0s and less than consumer.ack_wait (a wait longer than it gives the job back; use e.g. 100ms to give jobs back almost at once)")
	}
	if c.Pacing.MaxInFlight < 1 {
		bad("pacing.max_in_flight", "must be at least 1")
	}
	if s := c.Pacing.HungShare; !(s > 0 && s <= 1) {
		bad("pacing.hung_share", "must be more than 0 and at most 1 (1 turns the cap off)")
	}
	if c.Pacing.HungAfter <= c.Pacing.MaxHold {
		bad("pacing.hung_after", "must be above pacing.max_hold (%s): a send's time counts from before pacing holds it", c.Pacing.MaxHold)
	}
	if c.Pacing.HungFor <= 0 {
		bad("pacing.hung_for", "must be above 0")
	}
	if c.Breaker.Failures < 1 {
		bad("breaker.failures", "must be at least 1")
	}
	if c.Breaker.OpenTimeout <= 0 {
		bad("breaker.open_timeout", "must be above 0")
	}
	if _, err := parseTrustedProxies(c.Ingest.TrustedProxies); err != nil {
		bad("ingest.trusted_proxies", "%v", err)
	}
	if c.RateLimit.Enabled {
		if err := c.RateLimit.limiterConfig().Validate(); err != nil {
			bad("ratelimit", "%v", err)
		}
		if err := c.Challenge.serviceConfig().Validate(); err != nil && len(c.Challenge.Keys) > 0 {
			bad("challenge", "%v", err)
		}
	}
	c.Vault.check(bad)
	return errors.Join(errs...)
}

func checkAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	return nil
}
