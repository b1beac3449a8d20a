package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

// Secrets of these tests' NATS servers: never in an error, a log line or
// command output.
const (
	natsTestToken    = "nats-token-for-tests-5c2e"
	natsTestBadToken = "nats-token-wrong-91ab"
	natsTestPassword = "nats-password-for-tests"
	natsTestBadPass  = "nats-password-wrong-0x"
)

var natsTestSecrets = []string{natsTestToken, natsTestBadToken, natsTestPassword, natsTestBadPass}

// Every process (serve with nats.url, ingest, worker) and the CLI reach a
// NATS server that asks for a token, a user and password, an nkey, a
// credentials file or a TLS client certificate, given in configuration; a
// wrong one stops each with "authorization violation at <address>: check
// the NATS credentials", never "no NATS server answered" or "is herald serve
// running?", and no password or token is printed.
func TestNATSCredentialsForEveryProcess(t *testing.T) {
	seed, pub := testkit.NKeyUser(t)
	otherSeed, _ := testkit.NKeyUser(t)
	credsOpt, creds := testkit.CredsUser(t)
	tlsFiles := testkit.NewTLSFiles(t)
	servers := map[string]*testkit.Server{
		"token": testkit.NewServer(t, testkit.WithToken(natsTestToken)),
		"user":  testkit.NewServer(t, testkit.WithUser("herald", natsTestPassword)),
		"nkey":  testkit.NewServer(t, testkit.WithNKeys(pub)),
		"creds": testkit.NewServer(t, credsOpt),
		"tls":   testkit.NewServer(t, testkit.WithTLS(t, tlsFiles, true), testkit.WithToken(natsTestToken)),
	}
	addr := func(kind string) string { return testkit.Addr(servers[kind].Port()) }
	tlsEnv := map[string]string{"HERALD_NATS_TLS_CA_FILE": tlsFiles.CA, "HERALD_NATS_TLS_CERT_FILE": tlsFiles.ClientCert,
		"HERALD_NATS_TLS_KEY_FILE": tlsFiles.ClientKey}
	with := func(a, b map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name  string
		kind  string
		good  map[string]string
		wrong map[string]string
	}{
		{"token", "token",
			map[string]string{"HERALD_NATS_URL": "nats://" + addr("token"), "HERALD_NATS_TOKEN": natsTestToken},
			map[string]string{"HERALD_NATS_URL": "nats://" + addr("token"), "HERALD_NATS_TOKEN": natsTestBadToken}},
		{"user and password in the URL", "user",
			map[string]string{"HERALD_NATS_URL": "nats://herald:" + natsTestPassword + "@" + addr("user")},
			map[string]string{"HERALD_NATS_URL": "nats://herald:" + natsTestBadPass + "@" + addr("user")}},
		{"nkey seed file", "nkey",
			map[string]string{"HERALD_NATS_URL": "nats://" + addr("nkey"), "HERALD_NATS_NKEY_FILE": seed},
			map[string]string{"HERALD_NATS_URL": "nats://" + addr("nkey"), "HERALD_NATS_NKEY_FILE": otherSeed}},
		{"credentials file", "creds",
			map[string]string{"HERALD_NATS_URL": "nats://" + addr("creds"), "HERALD_NATS_CREDS_FILE": creds},
			map[string]string{"HERALD_NATS_URL": "nats://" + addr("creds")}},
		{"TLS client certificate and a token", "tls",
			with(tlsEnv, map[string]string{"HERALD_NATS_URL": "nats://" + addr("tls"), "HERALD_NATS_TOKEN": natsTestToken}),
			with(tlsEnv, map[string]string{"HERALD_NATS_URL": "nats://" + addr("tls"), "HERALD_NATS_TOKEN": natsTestBadToken})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shared := func(m map[string]string) map[string]string {
				return with(m, map[string]string{"HERALD_VAULT_KEYS": testVaultKey, "HERALD_NATS_CONNECT_TIMEOUT": "3s",
					"HERALD_WORKER_HTTP_ADDR": "127.0.0.1:0"})
			}
			for _, r := range []struct {
				name string
				role role
			}{{"serve", roleServe}, {"ingest", roleIngest}, {"worker", roleWorker}} {
				// The right credential: the process starts and serves.
				app := newTestAppAs(t, r.role, shared(tt.good))
				waitReady(t, "http://"+app.HTTPAddr())
				t.Cleanup(func() { testkit.AssertNoSecrets(t, r.name+"'s log", app.Logs.String(), natsTestSecrets...) })
				// A wrong one: refused at once, saying so.
				err := openApp(t, r.role, shared(tt.wrong))
				assertAuthViolation(t, r.name, err, addr(tt.kind))
			}
			// The CLI.
			e := &dlqEnv{config: writeFile(t, "c.yaml", "{}\n")}
			e.env = with(tt.good, map[string]string{"HERALD_DATA_DIR": t.TempDir()})
			if r := e.run(t, "dlq", "list"); r.err != nil {
				t.Fatalf("dlq list with the credential: %v", r.err)
			}
			e.env = with(tt.wrong, map[string]string{"HERALD_DATA_DIR": t.TempDir()})
			r := e.run(t, "dlq", "list", "--timeout", "3s")
			assertAuthViolation(t, "dlq list", r.err, addr(tt.kind))
			testkit.AssertNoSecrets(t, "dlq list", r.stdout+r.stderr, natsTestSecrets...)
		})
	}
}

// openApp opens (and closes) an App of role r with env over the test
// defaults, returning Open's error; its logs must hold no NATS secret.
func openApp(t *testing.T, r role, env map[string]string) error {
	t.Helper()
	cfg := testAppConfig(t, env)
	logger, _ := testkit.Logger(t, append([]string{testSecret}, natsTestSecrets...)...)
	app := &App{cfg: cfg, role: r, logger: logger}
	err := app.Open(context.Background())
	app.Close()
	return err
}

// assertAuthViolation checks that err is the authorization error at addr.
func assertAuthViolation(t *testing.T, who string, err error, addr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: started with a wrong credential", who)
	}
	msg := err.Error()
	want := "authorization violation at nats://"
	if !strings.HasPrefix(msg, want) || !strings.Contains(msg, addr+": check the NATS credentials") {
		t.Errorf("%s: err = %q, want %q<address %s>: check the NATS credentials", who, msg, want, addr)
	}
	for _, wrong := range []string{"no NATS server answered", "is herald serve running"} {
		if strings.Contains(msg, wrong) {
			t.Errorf("%s: err = %q says %q", who, msg, wrong)
		}
	}
	testkit.AssertNoSecrets(t, who, msg, natsTestSecrets...)
}

// By default herald serve's embedded NATS asks for a token it generates into
// data_dir/nats.token (mode 0600): a local process without it is refused,
// while the CLI and herald ingest/worker sharing the data directory use it
// by themselves. nats.embedded.auth: none opens the listener as before.
func TestEmbeddedNATSAuth(t *testing.T) {
	t.Run("token by default", func(t *testing.T) {
		app := newTestApp(t, nil)
		dir, listen := app.cfg.DataDir, strings.TrimPrefix(app.ns.ClientURL(), "nats://")
		info, err := os.Stat(filepath.Join(dir, natsTokenFile))
		if err != nil {
			t.Fatalf("no generated token: %v", err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("nats.token mode %v, want 0600", info.Mode().Perm())
		}
		tok, _ := os.ReadFile(filepath.Join(dir, natsTokenFile))
		token := strings.TrimSpace(string(tok))
		testkit.AssertNoSecrets(t, "serve's log", app.Logs.String(), token)

		// Any other local process: refused.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		anonymous := Config{DataDir: t.TempDir(), NATS: NATSConfig{Embedded: EmbeddedConfig{Listen: listen}}}
		target, err := anonymous.natsTarget()
		if err != nil {
			t.Fatal(err)
		}
		_, err = connectNATS(ctx, target, "anonymous", nil, cliUnreachable)
		assertAuthViolation(t, "a client without the token", err, listen)
		if err != nil && !strings.Contains(err.Error(), "data_dir/nats.token") {
			t.Errorf("err = %v, does not say where the token is", err)
		}

		// The CLI in the same data directory: no configuration needed.
		e := &dlqEnv{config: writeFile(t, "c.yaml", "{}\n"),
			env: map[string]string{"HERALD_DATA_DIR": dir, "HERALD_NATS_EMBEDDED_LISTEN": listen}}
		if r := e.run(t, "dlq", "list"); r.err != nil {
			t.Fatalf("dlq list beside serve: %v", r.err)
		}
		testkit.AssertNoSecrets(t, "dlq list", e.run(t, "dlq", "list").stdout, token)
		// Elsewhere: the authorization error, pointing at the token.
		e.env["HERALD_DATA_DIR"] = t.TempDir()
		r := e.run(t, "dlq", "list", "--timeout", "3s")
		assertAuthViolation(t, "dlq list elsewhere", r.err, listen)

		// herald worker and ingest beside the serve, sharing its data_dir.
		for _, role := range []role{roleWorker, roleIngest} {
			newTestAppAs(t, role, map[string]string{"HERALD_DATA_DIR": dir, "HERALD_NATS_EMBEDDED_LISTEN": listen,
				"HERALD_WORKER_HTTP_ADDR": "127.0.0.1:0"})
		}
	})
	t.Run("a configured token", func(t *testing.T) {
		app := newTestApp(t, map[string]string{"HERALD_NATS_TOKEN": natsTestToken})
		if _, err := os.Stat(filepath.Join(app.cfg.DataDir, natsTokenFile)); !os.IsNotExist(err) {
			t.Errorf("a token was generated though one is configured: %v", err)
		}
		listen := strings.TrimPrefix(app.ns.ClientURL(), "nats://")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		cfg := Config{DataDir: t.TempDir(), NATS: NATSConfig{Embedded: EmbeddedConfig{Listen: listen}, Token: natsTestBadToken}}
		target, _ := cfg.natsTarget()
		_, err := connectNATS(ctx, target, "wrong", nil, cliUnreachable)
		assertAuthViolation(t, "a wrong token", err, listen)
		cfg.NATS.Token = natsTestToken
		target, _ = cfg.natsTarget()
		nc, err := connectNATS(ctx, target, "right", nil, cliUnreachable)
		if err != nil {
			t.Fatalf("the configured token: %v", err)
		}
		nc.Close()
	})
	t.Run("an nkey", func(t *testing.T) {
		seed, _ := testkit.NKeyUser(t)
		app := newTestApp(t, map[string]string{"HERALD_NATS_NKEY_FILE": seed})
		listen := strings.TrimPrefix(app.ns.ClientURL(), "nats://")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		target, _ := Config{DataDir: t.TempDir(), NATS: NATSConfig{Embedded: EmbeddedConfig{Listen: listen}}}.natsTarget()
		_, err := connectNATS(ctx, target, "anonymous", nil, cliUnreachable)
		assertAuthViolation(t, "a client without the nkey", err, listen)
	})
	t.Run("none", func(t *testing.T) {
		app := newTestApp(t, map[string]string{"HERALD_NATS_EMBEDDED_AUTH": "none"})
		if _, err := os.Stat(filepath.Join(app.cfg.DataDir, natsTokenFile)); !os.IsNotExist(err) {
			t.Errorf("a token was generated with auth none: %v", err)
		}
		if !strings.Contains(app.Logs.String(), "any process that reaches the listener") {
			t.Error("the start-up log does not say the listener is open")
		}
		testkit.Connect(t, app.ns.ClientURL())
	})
}

// Credentials that cannot go together, or need nats.url, are refused when
// the configuration is read, naming the variable and the key.
func TestNATSCredentialConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"two credentials", map[string]string{"HERALD_NATS_URL": "nats://127.0.0.1:4222", "HERALD_NATS_TOKEN": "a", "HERALD_NATS_NKEY_FILE": "b"}, "HERALD_NATS_TOKEN (nats.token): give one of"},
		{"certificate without key", map[string]string{"HERALD_NATS_URL": "nats://127.0.0.1:4222", "HERALD_NATS_TLS_CERT_FILE": "c"}, "nats.tls.cert_file"},
		{"creds on the embedded server", map[string]string{"HERALD_NATS_CREDS_FILE": "c"}, "HERALD_NATS_CREDS_FILE (nats.creds_file): needs nats.url"},
		{"TLS on the embedded server", map[string]string{"HERALD_NATS_TLS_CA_FILE": "c"}, "nats.tls: needs nats.url"},
		{"unknown auth", map[string]string{"HERALD_NATS_EMBEDDED_AUTH": "password"}, "HERALD_NATS_EMBEDDED_AUTH (nats.embedded.auth): must be token or none"},
		{"none with a token", map[string]string{"HERALD_NATS_EMBEDDED_AUTH": "none", "HERALD_NATS_TOKEN": "t"}, "HERALD_NATS_EMBEDDED_AUTH (nats.embedded.auth): is none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(writeFile(t, "c.yaml", "{}"), envMap(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
