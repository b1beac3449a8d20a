package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/nats-io/nats.go"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/publisher"
)

const (
	testKey    = "0123456789abcdef0123456789abcdef"
	testSecret = "streaky-vps-secret-for-tests"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testApp struct {
	*App
	URL  string
	Logs *syncBuffer
	Keys *crypto.Keyring
}

// newTestApp runs the real `serve` wiring on loopback ports chosen by the
// kernel, with the Discord and Telegram fakes allowed through config only.
func newTestApp(t *testing.T, env map[string]string) *testApp {
	t.Helper()
	return newAppFor(t, env)
}

func newAppFor(t testing.TB, env map[string]string) *testApp {
	t.Helper()
	base := map[string]string{
		"HERALD_DATA_DIR":                       t.TempDir(),
		"HERALD_HTTP_ADDR":                      "127.0.0.1:0",
		"HERALD_NATS_EMBEDDED_LISTEN":           "127.0.0.1:-1",
		"HERALD_LOG_FORMAT":                     "json",
		"HERALD_LOG_LEVEL":                      "debug",
		"HERALD_CHANNELS_DISCORD_ALLOWED_HOSTS": "127.0.0.1",
		"HERALD_CHANNELS_DISCORD_ALLOW_HTTP":    "true",
		"HERALD_CONSUMER_MIN_BACKOFF":           "50ms",
		"HERALD_CONSUMER_MAX_BACKOFF":           "200ms",
		"HERALD_INGEST_STREAKY_WAIT":            "5s",
		"ENCRYPTION_KEY":                        testKey,
		"VPS_SECRET":                            testSecret,
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := loadConfig(writeFile(t, "c.yaml", "{}"), envMap(base))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	app := &App{cfg: cfg, role: roleServe, logger: newLogger(cfg.Log, logs)}
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
	keys, _ := crypto.NewKeyring(testKey)
	return &testApp{App: app, URL: "http://" + app.HTTPAddr(), Logs: logs, Keys: keys}
}

func (a *testApp) seal(t *testing.T, s string) string {
	t.Helper()
	out, err := a.Keys.Seal(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// call sends body (as JSON when not empty) with one auth header and returns
// the status and the raw reply.
func call(t *testing.T, method, url, authHeader, authValue, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set(authHeader, authValue)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// jsonReply decodes a JSON object reply; an empty reply is nil.
func jsonReply(t *testing.T, what string, raw []byte) map[string]any {
	t.Helper()
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s: reply is not JSON: %q", what, raw)
		}
	}
	return out
}

func postStreaky(t *testing.T, url string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	code, raw := call(t, http.MethodPost, url+"/send-notification", "X-API-Secret", testSecret, string(b))
	return code, jsonReply(t, "send-notification", raw)
}

func streakyMessage(user string) map[string]any {
	return map[string]any{"username": user, "current_streak": 42, "contributions_today": 0, "message": "Don't lose your streak! <b>&</b> *go*"}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, 15*time.Second, what, cond)
}

func TestServeStreakyDiscordEndToEnd(t *testing.T) {
	discord := fake.NewDiscord(t)
	app := newTestApp(t, nil)
	webhook := discord.WebhookURL("123456789012345678", "AbCdEf-GhIjKl_MnOpQrStUvWxYz0123456789")

	code, reply := postStreaky(t, app.URL, map[string]any{
		"type":              "discord",
		"encrypted_webhook": app.seal(t, webhook),
		"message":           streakyMessage("octocat"),
	})
	if code != 200 || reply["success"] != true || reply["error"] != nil {
		t.Fatalf("reply %d %v, want 200 success:true error:null", code, reply)
	}
	if _, queued := reply["queued"]; queued {
		t.Fatalf("reply says queued although the fake answers at once: %v", reply)
	}
	reqs := discord.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.WebhookID != "123456789012345678" || r.Version != "v10" {
		t.Errorf("sent to webhook %q version %q", r.WebhookID, r.Version)
	}
	// Streaky's proxy body, field for field.
	if r.Body["username"] != "Streaky Bot" {
		t.Errorf("username = %v", r.Body["username"])
	}
	embeds, _ := r.Body["embeds"].([]any)
	if len(embeds) != 1 {
		t.Fatalf("embeds = %v", r.Body["embeds"])
	}
	e := embeds[0].(map[string]any)
	if e["title"] != "⚠️ GitHub Streak Alert" || e["description"] != "Don't lose your streak! <b>&</b> *go*" || e["color"] != float64(16739947) {
		t.Errorf("embed = %v", e)
	}
	fields, _ := e["fields"].([]any)
	if len(fields) != 2 {
		t.Fatalf("fields = %v", e["fields"])
	}
	f0, f1 := fields[0].(map[string]any), fields[1].(map[string]any)
	if f0["name"] != "GitHub Username" || f0["value"] != "octocat" || f0["inline"] != true ||
		f1["name"] != "Current Streak" || f1["value"] != "42 days" || f1["inline"] != true {
		t.Errorf("fields = %v", fields)
	}
	if footer, _ := e["footer"].(map[string]any); footer["text"] != "Streaky - Never lose your GitHub streak" {
		t.Errorf("footer = %v", e["footer"])
	}
	if ts, _ := e["timestamp"].(string); ts == "" {
		t.Error("no timestamp")
	} else if _, err := time.Parse(time.RFC3339, ts); err != nil {
		t.Errorf("timestamp %q: %v", ts, err)
	}
	assertNoSecrets(t, app.Logs.String(), webhook, "AbCdEf-GhIjKl_MnOpQrStUvWxYz0123456789", testKey, testSecret)
}

func TestServeStreakyTelegramEndToEnd(t *testing.T) {
	tg := fake.NewTelegram(t)
	app := newTestApp(t, map[string]string{"HERALD_CHANNELS_TELEGRAM_API_BASE": tg.URL()})
	token, chat := "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "987654321"

	code, reply := postStreaky(t, app.URL, map[string]any{
		"type":              "telegram",
		"encrypted_token":   app.seal(t, token),
		"encrypted_chat_id": app.seal(t, chat),
		"message":           streakyMessage("<script>alert(1)</script>_*["),
	})
	if code != 200 || reply["success"] != true {
		t.Fatalf("reply %d %v", code, reply)
	}
	reqs := tg.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Token != token || r.ChatID != chat || r.ParseMode != "HTML" || r.Method != "sendMessage" {
		t.Fatalf("request: method %q parse_mode %q, token/chat match: %v/%v", r.Method, r.ParseMode, r.Token == token, r.ChatID == chat)
	}
	for _, want := range []string{
		"GitHub Streak Alert", "Don&#39;t lose your streak! &lt;b&gt;&amp;&lt;/b&gt; *go*",
		"👤 <b>GitHub Username:</b> &lt;script&gt;alert(1)&lt;/script&gt;_*[",
		"🔥 <b>Current Streak:</b> 42 days", "<i>Streaky - Never lose your GitHub streak</i>",
	} {
		if !strings.Contains(r.Text, want) && !strings.Contains(r.Text, strings.ReplaceAll(want, "&#39;", "'")) {
			t.Errorf("telegram text lacks %q:\n%s", want, r.Text)
		}
	}
	assertNoSecrets(t, app.Logs.String(), token, chat, testKey, testSecret)
}

func TestServeJobPublishedStraightToNATS(t *testing.T) {
	discord := fake.NewDiscord(t)
	app := newTestApp(t, nil)
	_, js := testkit.Connect(t, app.NATSURL())

	// As `nats pub herald.jobs.discord '<json>' -H Nats-Msg-Id:...` would: plain JSON, any language.
	raw := fmt.Sprintf(`{"v":1,"id":"from-another-backend-1","channel":"discord","credentials":{"webhook":%q},"message":{"title":"Disk full","text":"/var is at 97%%"}}`,
		app.seal(t, discord.WebhookURL("42", "tok-en_1")))
	msg := nats.NewMsg(herald.JobSubject(herald.ChannelDiscord))
	msg.Data = []byte(raw)
	msg.Header.Set(nats.MsgIdHdr, "from-another-backend-1")
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	// And through the Go publisher package.
	pub := publisher.New(js)
	job := &herald.Job{Channel: herald.ChannelDiscord, Source: "billing",
		Credentials: herald.Credentials{Webhook: app.seal(t, discord.WebhookURL("43", "tok-en_2"))},
		Message:     herald.Message{Title: "Invoice paid", Text: "#1234"}}
	res, err := pub.Publish(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both jobs delivered", func() bool { return discord.Count() >= 2 })
	got := map[string]string{}
	for _, r := range discord.Requests() {
		e := r.Body["embeds"].([]any)[0].(map[string]any)
		got[r.WebhookID] = e["title"].(string)
	}
	if got["42"] != "Disk full" || got["43"] != "Invoice paid" {
		t.Fatalf("delivered %v", got)
	}
	// The status API reports the publisher's job as delivered.
	waitFor(t, "status delivered", func() bool {
		st := getStatus(t, app.URL, res.ID)
		return st["state"] == string(herald.StateDelivered)
	})
}

func getStatus(t *testing.T, base, id string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/notifications/"+id, nil)
	req.Header.Set("X-API-Secret", testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out
}

func TestServeTransientFailureIsRetriedUntilDelivered(t *testing.T) {
	discord := fake.NewDiscord(t)
	discord.Script(func(_ fake.DiscordRequest, n int) fake.Response {
		if n <= 2 {
			return fake.Response{Status: http.StatusBadGateway, Body: "upstream hiccup"}
		}
		return fake.Response{Status: http.StatusNoContent}
	})
	app := newTestApp(t, nil)
	code, reply := postStreaky(t, app.URL, map[string]any{
		"type":              "discord",
		"encrypted_webhook": app.seal(t, discord.WebhookURL("7", "secret-token-7")),
		"message":           streakyMessage("octocat"),
	})
	if code != 200 || reply["success"] != true {
		t.Fatalf("reply %d %v", code, reply)
	}
	if n := discord.Count(); n != 3 {
		t.Fatalf("fake saw %d requests, want 3 (two failures, one success)", n)
	}
}

func TestServePermanentFailureReportsReasonWithoutSecrets(t *testing.T) {
	discord := fake.NewDiscord(t)
	discord.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Respond404UnknownWebhook() })
	app := newTestApp(t, nil)
	webhook := discord.WebhookURL("8", "deleted-token-8")
	code, reply := postStreaky(t, app.URL, map[string]any{
		"type":              "discord",
		"encrypted_webhook": app.seal(t, webhook),
		"message":           streakyMessage("octocat"),
	})
	if code != 200 || reply["success"] != false {
		t.Fatalf("reply %d %v, want success:false", code, reply)
	}
	msg, _ := reply["error"].(string)
	if !strings.Contains(msg, "404") || !strings.Contains(msg, "Unknown Webhook") {
		t.Errorf("error %q does not say what happened", msg)
	}
	if discord.Count() != 1 {
		t.Errorf("fake saw %d requests, want exactly 1", discord.Count())
	}
	assertNoSecrets(t, msg+app.Logs.String(), webhook, "deleted-token-8", testKey, testSecret)
}

func TestServeRefusesBadEncryptionKey(t *testing.T) {
	for name, key := range map[string]string{
		"short":     "too-short-key",
		"non-ascii": "ключ-ключ-ключ-ключ-ключ-ключ-ключ-ключ",
	} {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := newRootCmd(envMap(map[string]string{
				"HERALD_DATA_DIR": t.TempDir(), "HERALD_HTTP_ADDR": "127.0.0.1:0",
				"HERALD_NATS_EMBEDDED_LISTEN": "127.0.0.1:-1", "ENCRYPTION_KEY": key,
			}), io.Discard, &stderr)
			cmd.SetArgs([]string{"serve", "--config", writeFile(t, "c.yaml", "{}")})
			err := cmd.ExecuteContext(context.Background())
			if err == nil {
				t.Fatal("serve started with a bad key")
			}
			if !strings.Contains(err.Error(), "ENCRYPTION_KEY") || !strings.Contains(err.Error(), "32") {
				t.Errorf("error %q does not explain the key rule", err)
			}
			if strings.Contains(err.Error()+stderr.String(), key) {
				t.Error("the key was printed")
			}
		})
	}
}

func TestVersionAndEncryptCommands(t *testing.T) {
	var out bytes.Buffer
	cmd := newRootCmd(envMap(nil), &out, io.Discard)
	cmd.SetArgs([]string{"version"})
	if err := cmd.Execute(); err != nil || !strings.HasPrefix(out.String(), "herald ") {
		t.Fatalf("version: %q %v", out.String(), err)
	}
	out.Reset()
	cmd = newRootCmd(envMap(map[string]string{"ENCRYPTION_KEY": testKey}), &out, io.Discard)
	cmd.SetArgs([]string{"encrypt", "--config", writeFile(t, "c.yaml", "{}"), "https://discord.com/api/webhooks/1/abc"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	keys, _ := crypto.NewKeyring(testKey)
	if got, err := keys.Open(strings.TrimSpace(out.String())); err != nil || got != "https://discord.com/api/webhooks/1/abc" {
		t.Fatalf("encrypt output does not open: %q %v", got, err)
	}
	out.Reset()
	cmd = newRootCmd(envMap(nil), &out, io.Discard)
	cmd.SetIn(strings.NewReader("987654321\n"))
	cmd.SetArgs([]string{"encrypt", "--key", testKey, "-"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got, _ := keys.Open(strings.TrimSpace(out.String())); got != "987654321" {
		t.Fatalf("encrypt from stdin = %q", got)
	}
}

func assertNoSecrets(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("output contains a secret (%d chars)", len(s))
		}
	}
}
