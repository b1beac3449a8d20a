package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
)

func TestServeStreakyDiscordEndToEnd(t *testing.T) {
	discord := fake.NewDiscord(t)
	app := newTestApp(t, nil)
	webhook := discord.WebhookURL("123456789012345678", "AbCdEf-GhIjKl_MnOpQrStUvWxYz0123456789")

	code, reply := postStreakyDiscord(t, app, webhook)
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
	testkit.AssertNoSecrets(t, "log", app.Logs.String(), webhook, "AbCdEf-GhIjKl_MnOpQrStUvWxYz0123456789", testkit.Key, testSecret)
}

func TestServeStreakyTelegramEndToEnd(t *testing.T) {
	tg := fake.NewTelegram(t)
	app := newTestApp(t, map[string]string{"HERALD_CHANNELS_TELEGRAM_API_BASE": tg.URL()})
	token, chat := "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "987654321"

	code, reply := postStreaky(t, app.URL, map[string]any{
		"type":              "telegram",
		"encrypted_token":   testkit.Seal(t, app.Keys, token),
		"encrypted_chat_id": testkit.Seal(t, app.Keys, chat),
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
	testkit.AssertNoSecrets(t, "log", app.Logs.String(), token, chat, testkit.Key, testSecret)
}

func TestServeJobPublishedStraightToNATS(t *testing.T) {
	discord := fake.NewDiscord(t)
	app := newTestApp(t, nil)
	_, js := testkit.Connect(t, app.NATSURL())

	// As `nats pub herald.jobs.discord '<json>' -H Nats-Msg-Id:...` would: plain JSON, any language.
	raw := fmt.Sprintf(`{"v":1,"id":"from-another-backend-1","channel":"discord","credentials":{"webhook":%q},"message":{"title":"Disk full","text":"/var is at 97%%"}}`,
		testkit.Seal(t, app.Keys, discord.WebhookURL("42", "tok-en_1")))
	msg := nats.NewMsg(herald.JobSubject(herald.ChannelDiscord))
	msg.Data = []byte(raw)
	msg.Header.Set(nats.MsgIdHdr, "from-another-backend-1")
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	// And through the Go publisher package.
	pub := publisher.New(js)
	job := testkit.DiscordJob(t, app.Keys, discord.WebhookURL("43", "tok-en_2"), "#1234")
	job.Source, job.Message.Title = "billing", "Invoice paid"
	res, err := pub.Publish(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 15*time.Second, "both jobs delivered", func() bool { return discord.Count() >= 2 })
	got := map[string]string{}
	for _, r := range discord.Requests() {
		e := r.Body["embeds"].([]any)[0].(map[string]any)
		got[r.WebhookID] = e["title"].(string)
	}
	if got["42"] != "Disk full" || got["43"] != "Invoice paid" {
		t.Fatalf("delivered %v", got)
	}
	// The status API reports the publisher's job as delivered.
	testkit.WaitFor(t, 15*time.Second, "status delivered", func() bool {
		st := getStatus(t, app.URL, res.ID)
		return st["state"] == string(herald.StateDelivered)
	})
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
	code, reply := postStreakyDiscord(t, app, discord.WebhookURL("7", "secret-token-7"))
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
	code, reply := postStreakyDiscord(t, app, webhook)
	if code != 502 || reply["success"] != false {
		t.Fatalf("reply %d %v, want 502 success:false", code, reply)
	}
	msg, _ := reply["error"].(string)
	// Streaky's proxy's shape, which users of the Worker match on.
	if !strings.HasPrefix(msg, "Discord API error: 404 Not Found - ") || !strings.Contains(msg, "Unknown Webhook") {
		t.Errorf("error %q does not say what happened in the proxy's shape", msg)
	}
	if discord.Count() != 1 {
		t.Errorf("fake saw %d requests, want exactly 1", discord.Count())
	}
	testkit.AssertNoSecrets(t, "error and log", msg+app.Logs.String(), webhook, "deleted-token-8", testkit.Key, testSecret)
}

// Both Streaky Workers against a real Herald record what happened: the
// original write-up's snippet, which reads only response.ok, and Streaky's
// Worker (CONTRACT.md), which reads the body. By default no failure is a 2xx,
// so the snippet records a dead webhook, a credential that does not open or
// a refused destination as failed, not sent; the contract's Worker records
// the same with the reason in its text. With ingest.streaky.failure_status
// ok every answer is a 200, as the proxy's, and the contract's Worker still
// records each failure with its exact text (the snippet would record them
// sent: why that is not the default). A job stored but not known delivered
// within the wait is sent for both: it will be delivered.
func TestServeStreakyWorkersRecordFailures(t *testing.T) {
	discord := fake.NewDiscord(t)
	discord.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		if r.WebhookID == "404" {
			return fake.Respond404UnknownWebhook() // dead-lettered at once
		}
		return fake.Response{}
	})
	wrongKey := testkit.Keyring(t, "ffffffffffffffffffffffffffffffff")
	type sealer func(plain string) string
	cases := []struct {
		name string
		body func(seal sealer) map[string]any
		// delivered: the outcome is a delivery (else a failure).
		delivered bool
		// status by failure_status: error, ok.
		status, okStatus int
		// reason is in the error the contract's Worker records.
		reason string
	}{
		{"delivered", func(seal sealer) map[string]any {
			return map[string]any{"type": "discord", "encrypted_webhook": seal(discord.WebhookURL("123456789012345678", "live-token")), "message": streakyMessage("octocat")}
		}, true, 200, 200, ""},
		{"dead webhook", func(seal sealer) map[string]any {
			return map[string]any{"type": "discord", "encrypted_webhook": seal(discord.WebhookURL("404", "dead-token")), "message": streakyMessage("octocat")}
		}, false, 502, 200, "Discord API error: 404 Not Found - Unknown Webhook"},
		{"credential that does not open", func(sealer) map[string]any {
			return map[string]any{"type": "discord", "encrypted_webhook": testkit.Seal(t, wrongKey, discord.WebhookURL("1", "other-key-token")), "message": streakyMessage("octocat")}
		}, false, 400, 200, "Decryption failed: wrong key or corrupted data (encrypted_webhook)"},
		{"missing credential", func(sealer) map[string]any {
			return map[string]any{"type": "telegram", "message": streakyMessage("octocat")}
		}, false, 400, 200, "Missing encrypted_token for Telegram notification"},
		{"unknown type", func(sealer) map[string]any {
			return map[string]any{"type": "slack", "message": streakyMessage("octocat")}
		}, false, 400, 200, "Invalid notification type"},
		{"destination not allowed", func(seal sealer) map[string]any {
			return map[string]any{"type": "discord", "encrypted_webhook": seal("https://evil.example.com/api/webhooks/1/not-allowed-token"), "message": streakyMessage("octocat")}
		}, false, 400, 200, "Invalid destination: webhook host is not an allowed Discord host"},
	}
	for _, mode := range []string{"error", "ok"} {
		t.Run("failure_status "+mode, func(t *testing.T) {
			app := newTestApp(t, map[string]string{"HERALD_INGEST_STREAKY_FAILURE_STATUS": mode})
			seal := func(plain string) string { return testkit.Seal(t, app.Keys, plain) }
			for _, tc := range cases {
				b, _ := json.Marshal(tc.body(seal))
				code, _, raw := call(t, http.MethodPost, app.URL+"/send-notification", "X-API-Secret", testSecret, string(b))
				testkit.AssertNoSecrets(t, "reply", string(raw), testSecret, "dead-token", "live-token", "other-key-token", "not-allowed-token")
				want := tc.status
				if mode == "ok" {
					want = tc.okStatus
				}
				if code != want {
					t.Errorf("%s: status %d (%s), want %d", tc.name, code, raw, want)
				}
				contract := contractWorker(code, raw)
				if contract.Sent != tc.delivered || !strings.Contains(contract.Error, tc.reason) {
					t.Errorf("%s: Streaky's Worker records %+v, want sent %v with %q", tc.name, contract, tc.delivered, tc.reason)
				}
				if mode == "ok" {
					if contract.Error != "" && !strings.HasPrefix(contract.Error, tc.reason) {
						t.Errorf("%s: Streaky's Worker records %q, want the proxy's bare text %q", tc.name, contract.Error, tc.reason)
					}
					continue
				}
				if snippet := snippetWorker(code, raw); snippet.Sent != tc.delivered {
					t.Errorf("%s: the write-up's Worker records %+v, want sent %v", tc.name, snippet, tc.delivered)
				}
			}
		})
	}

	// Stored, but no worker delivered it within the wait: 202 queued, which
	// both Workers record as sent (it will be), with the id to look it up.
	srv, _, _ := testkit.JetStream(t)
	env := sharedNATSEnv(srv.URL())
	env["HERALD_INGEST_STREAKY_WAIT"] = "300ms"
	ingest := newTestAppAs(t, roleIngest, env)
	b, _ := json.Marshal(map[string]any{"type": "discord", "encrypted_webhook": testkit.Seal(t, ingest.Keys, discord.WebhookURL("1", "queued-token")), "message": streakyMessage("octocat")})
	code, _, raw := call(t, http.MethodPost, ingest.URL+"/send-notification", "X-API-Secret", testSecret, string(b))
	var reply map[string]any
	_ = json.Unmarshal(raw, &reply)
	if id, _ := reply["id"].(string); code != 202 || reply["queued"] != true || id == "" {
		t.Errorf("no worker: %d %s, want 202 queued with the id", code, raw)
	}
	if snippet, contract := snippetWorker(code, raw), contractWorker(code, raw); !snippet.Sent || !contract.Sent {
		t.Errorf("no worker: the Workers record %+v and %+v, want sent", snippet, contract)
	}
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
	ctx := context.Background()
	out, _, err := execute(ctx, newRootCmd(envMap(nil), nil, nil), "", "version")
	if err != nil || !strings.HasPrefix(out, "herald ") {
		t.Fatalf("version: %q %v", out, err)
	}
	out, _, err = execute(ctx, newRootCmd(envMap(map[string]string{"ENCRYPTION_KEY": testkit.Key}), nil, nil), "",
		"encrypt", "--config", writeFile(t, "c.yaml", "{}"), "https://discord.com/api/webhooks/1/abc")
	if err != nil {
		t.Fatal(err)
	}
	keys := testkit.Keyring(t)
	if got, err := keys.Open(strings.TrimSpace(out)); err != nil || got != "https://discord.com/api/webhooks/1/abc" {
		t.Fatalf("encrypt output does not open: %q %v", got, err)
	}
	out, _, err = execute(ctx, newRootCmd(envMap(nil), nil, nil), "987654321\n", "encrypt", "--key", testkit.Key, "-")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := keys.Open(strings.TrimSpace(out)); got != "987654321" {
		t.Fatalf("encrypt from stdin = %q", got)
	}
}

// The webhook URL forms Streaky's own UI accepts are accepted the same way:
// a trailing slash, thread_id (kept: forum channels need it) and wait=true
// (normalised away); the /slack and /github forms, which take other
// services' payloads, are refused saying so.
func TestServeStreakyWebhookURLForms(t *testing.T) {
	discord := fake.NewDiscord(t)
	app := newTestApp(t, nil)
	base := discord.WebhookURL("123456789012345678", "forms-token")
	code, reply := postStreakyDiscord(t, app, base+"/?thread_id=99&wait=true")
	if code != 200 || reply["success"] != true {
		t.Fatalf("pasted form: %d %v, want delivered", code, reply)
	}
	if reqs := discord.Requests(); len(reqs) != 1 || reqs[0].ThreadID != "99" || reqs[0].Query.Has("wait") {
		t.Fatalf("the fake got %+v, want one request into thread 99 without wait", reqs)
	}
	for _, suffix := range []string{"/slack", "/github"} {
		code, reply := postStreakyDiscord(t, app, base+suffix)
		msg, _ := reply["error"].(string)
		if code != 400 || reply["success"] != false || !strings.Contains(msg, "ending in "+suffix) {
			t.Errorf("%s form: %d %v, want refused saying why", suffix, code, reply)
		}
		testkit.AssertNoSecrets(t, "reply", msg, "forms-token")
	}
	if n := discord.Count(); n != 1 {
		t.Errorf("the fake got %d requests, want 1", n)
	}
}
