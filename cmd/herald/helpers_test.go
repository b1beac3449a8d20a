package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
)

// Herald's own secrets in these tests, besides the kit's (the encryption key
// is testkit.Key). No reply, log line or command output may hold them.
const (
	testSecret      = "streaky-vps-secret-for-tests"
	testAdminSecret = "admin-secret-for-tests-0123"
	// testVaultKey is the vault key (and, in the same form, the challenge
	// signing key) of processes that join a shared NATS, where Herald
	// generates none.
	testVaultKey = "ktest001:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
)

// sharedNATSEnv is the environment of a process joining the NATS at url
// with others: the URL and the keys they must all share.
func sharedNATSEnv(url string) map[string]string {
	return map[string]string{"HERALD_NATS_URL": url, "HERALD_VAULT_KEYS": testVaultKey, "HERALD_CHALLENGE_KEYS": testVaultKey}
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t testing.TB, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testApp is the real `serve` wiring running in the test's process.
type testApp struct {
	*App
	URL string
	// MetricsURL serves /metrics (http.metrics_addr): never URL.
	MetricsURL string
	Logs       *testkit.LogBuffer
	Keys       *crypto.Keyring
}

// newTestApp runs the real `serve` wiring on loopback ports chosen by the
// kernel, with the Discord and Telegram fakes allowed through config only;
// env adds to or overrides its environment. Its logs are checked for secrets
// when the test ends, and shown when it failed.
func newTestApp(t testing.TB, env map[string]string) *testApp {
	t.Helper()
	return newTestAppAs(t, roleServe, env)
}

// newTestAppAs is newTestApp in the given role.
func newTestAppAs(t testing.TB, r role, env map[string]string) *testApp {
	t.Helper()
	cfg := testAppConfig(t, env)
	// The kit's log buffer, with its checks at cleanup (registered first, so
	// they run after the app stopped); the app writes to it through the
	// logger its config asks for.
	_, logs := testkit.Logger(t, testSecret, testAdminSecret)
	return startTestApp(t, r, cfg, logs, newLogger(cfg.Log, logs))
}

// testAppConfig is the configuration of newTestApp, env added.
func testAppConfig(t testing.TB, env map[string]string) Config {
	t.Helper()
	base := map[string]string{
		"HERALD_DATA_DIR":                       t.TempDir(),
		"HERALD_HTTP_ADDR":                      "127.0.0.1:0",
		"HERALD_HTTP_METRICS_ADDR":              "127.0.0.1:0",
		"HERALD_WORKER_HTTP_ADDR":               "127.0.0.1:0",
		"HERALD_NATS_EMBEDDED_LISTEN":           "127.0.0.1:-1",
		"HERALD_LOG_FORMAT":                     "json",
		"HERALD_LOG_LEVEL":                      "debug",
		"HERALD_CHANNELS_DISCORD_ALLOWED_HOSTS": "127.0.0.1",
		"HERALD_CHANNELS_DISCORD_ALLOW_HTTP":    "true",
		"HERALD_CONSUMER_MIN_BACKOFF":           "50ms",
		"HERALD_CONSUMER_MAX_BACKOFF":           "200ms",
		"HERALD_INGEST_STREAKY_WAIT":            "5s",
		// As long as the wait, so that a waiting request's job is sent first
		// (ingest.streaky.send_first), as with the defaults.
		"HERALD_CONSUMER_SEND_TIMEOUT": "5s",
		"ENCRYPTION_KEY":               testkit.Key,
		"VPS_SECRET":                   testSecret,
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := loadConfig(writeFile(t, "c.yaml", "{}"), envMap(base))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startTestApp opens and runs the app of cfg in role r with logger until
// the test ends.
func startTestApp(t testing.TB, r role, cfg Config, logs *testkit.LogBuffer, logger *slog.Logger) *testApp {
	t.Helper()
	app := &App{cfg: cfg, role: r, logger: logger}
	ctx, cancel := context.WithCancel(context.Background())
	if err := app.Open(ctx); err != nil {
		cancel()
		t.Fatalf("Open: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	ta := &testApp{App: app, URL: "http://" + app.HTTPAddr(), Logs: logs, Keys: testkit.Keyring(t)}
	if a := app.MetricsAddr(); a != "" {
		ta.MetricsURL = "http://" + a
	} else if !r.ingest {
		ta.MetricsURL = ta.URL // a worker's ops endpoints
	}
	return ta
}

// newBenchApp is newTestApp for benchmarks: quiet logs, no Streaky wait, a
// Discord global rate far above what a benchmark sends and the per-client
// rate limit off (a benchmark is one client sending far more than any client
// may); env adds to or overrides that.
func newBenchApp(b *testing.B, env map[string]string) *testApp {
	b.Helper()
	return newTestApp(b, benchEnv(env))
}

// benchEnv is newBenchApp's environment, env added.
func benchEnv(env map[string]string) map[string]string {
	base := map[string]string{"HERALD_LOG_LEVEL": "warn", "HERALD_LOG_FORMAT": "text", "HERALD_INGEST_STREAKY_WAIT": "0s",
		"HERALD_CHANNELS_DISCORD_GLOBAL_RATE": "1000000", "HERALD_RATELIMIT_ENABLED": "false"}
	for k, v := range env {
		base[k] = v
	}
	return base
}

// unlimitedDiscord is the Discord fake with buckets far above what a test
// sends: for tests of Herald, not of Discord's limits.
func unlimitedDiscord(t testing.TB) *fake.Discord {
	d := fake.NewDiscord(t)
	d.Limit(1_000_000, time.Second, 0)
	return d
}

// newRequest builds a request with body (as JSON when not empty) and the
// header authHeader: authValue when authHeader is not empty.
func newRequest(method, url, authHeader, authValue, body string) *http.Request {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if authHeader != "" {
		req.Header.Set(authHeader, authValue)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// call sends a newRequest and returns the status, the headers and the raw
// reply.
func call(t testing.TB, method, url, authHeader, authValue, body string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(newRequest(method, url, authHeader, authValue, body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

// jsonCall is call for JSON replies: the reply is checked for secrets (the
// kit's, Herald's own and those given) and decoded; an empty reply is nil.
func jsonCall(t testing.TB, method, url, authHeader, authValue, body string, secrets ...string) (int, map[string]any) {
	t.Helper()
	code, _, raw := call(t, method, url, authHeader, authValue, body)
	what := method + " " + url
	testkit.AssertNoSecrets(t, what, string(raw), append([]string{testSecret, testAdminSecret}, secrets...)...)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s: reply is not JSON: %q", what, raw)
		}
	}
	return code, out
}

// apiCall is a request of Herald's API with the API secret.
func apiCall(t testing.TB, app *testApp, method, path, body string, secrets ...string) (int, map[string]any) {
	t.Helper()
	return jsonCall(t, method, app.URL+path, "Authorization", "Bearer "+testSecret, body, secrets...)
}

// adminCall is a request of the admin API with the admin secret.
func adminCall(t testing.TB, app *testApp, method, path, body string) (int, map[string]any) {
	t.Helper()
	return jsonCall(t, method, app.URL+path, "Authorization", "Bearer "+testAdminSecret, body)
}

// get returns the body of GET url, failing the test on a transport error or
// a status other than 200.
func get(t testing.TB, url string) string {
	t.Helper()
	code, _, raw := call(t, http.MethodGet, url, "", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d", url, code)
	}
	return string(raw)
}

// getStatus is the status API's record of job id (nil when there is none).
func getStatus(t testing.TB, base, id string) map[string]any {
	t.Helper()
	_, _, raw := call(t, http.MethodGet, base+"/v1/notifications/"+id, "X-API-Secret", testSecret, "")
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// postStreaky posts body to Streaky's endpoint, as a Worker does.
func postStreaky(t testing.TB, url string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	return jsonCall(t, http.MethodPost, url+"/send-notification", "X-API-Secret", testSecret, string(b))
}

// postStreakyDiscord posts Streaky's notification for octocat to webhook.
func postStreakyDiscord(t testing.TB, app *testApp, webhook string) (int, map[string]any) {
	t.Helper()
	return postStreaky(t, app.URL, map[string]any{
		"type":              "discord",
		"encrypted_webhook": testkit.Seal(t, app.Keys, webhook),
		"message":           streakyMessage("octocat"),
	})
}

// workerRecord is what a Streaky Worker records of one reply: the row it
// writes to D1's notifications table (sent or failed, and the error text
// shown on the user's dashboard).
type workerRecord struct {
	Sent  bool
	Error string
}

// snippetWorker reads a /send-notification reply as the Worker snippet of
// the original write-up of the proxy (notifications.ts) does: it looks at
// response.ok only. Any 2xx is {success: true}; any other status is
// {success: false, error: <body text>}.
func snippetWorker(code int, body []byte) workerRecord {
	if code >= 200 && code <= 299 {
		return workerRecord{Sent: true}
	}
	return workerRecord{Error: string(body)}
}

// contractWorker reads a reply as Streaky's Worker at d9a2641 does
// (CONTRACT.md §3): a non-2xx is the failure "VPS proxy error: <status>
// <body text>"; a 2xx is parsed and its success and error used as they are;
// a 2xx whose body is not JSON is a failure.
func contractWorker(code int, body []byte) workerRecord {
	if code < 200 || code > 299 {
		return workerRecord{Error: fmt.Sprintf("VPS proxy error: %d %s", code, body)}
	}
	var reply struct {
		Success bool    `json:"success"`
		Error   *string `json:"error"`
	}
	if err := json.Unmarshal(body, &reply); err != nil {
		return workerRecord{Error: "the proxy's reply is not JSON"}
	}
	rec := workerRecord{Sent: reply.Success}
	if reply.Error != nil {
		rec.Error = *reply.Error
	}
	return rec
}

func streakyMessage(user string) map[string]any {
	return map[string]any{"username": user, "current_streak": 42, "contributions_today": 0, "message": "Don't lose your streak! <b>&</b> *go*"}
}

// send posts body to url through client with secret as X-API-Secret, as an
// API client would, and returns the status. It drains the reply before
// closing it, or the connection is not reused and every request dials anew.
func send(client *http.Client, url, secret, body string) (int, error) {
	resp, err := client.Do(newRequest(http.MethodPost, url, "X-API-Secret", secret, body))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// hammer sends n requests to url from 64 concurrent clients sharing one
// transport; request i (from 1) sends the body and secret job(i) returns. It
// returns how many failed or were answered with a status other than want.
func hammer(n int, url string, want int, job func(i int) (body, secret string)) int64 {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				body, secret := job(i)
				if code, err := send(client, url, secret, body); err != nil || code != want {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return failed.Load()
}

// execute runs cmd with args, stdin as its input, and returns what it
// printed.
func execute(ctx context.Context, cmd *cobra.Command, stdin string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// buildHerald compiles the real binary into the test's temporary directory.
// Tests that run it are skipped with -short.
func buildHerald(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "herald")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}
