package ingest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/internal/testkit"
)

// workerVector is the Streaky vector sealed by WebCrypto (the Worker's own
// code), so the test proves Worker ciphertexts are accepted as they are.
func workerVector(t *testing.T, name string) (key, plaintext, ciphertext string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "streaky", "vectors.json"))
	if err != nil {
		t.Fatalf("read Streaky vectors (testdata/streaky): %v", err)
	}
	var vs []struct{ Name, Key, Plaintext, Ciphertext string }
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Name == name {
			return v.Key, v.Plaintext, v.Ciphertext
		}
	}
	t.Fatalf("no vector %s", name)
	return
}

// TestStreakyResponseTable walks every row of the proxy's response table
// (CONTRACT.md §3) and every success:false text. A request that cannot be
// opened or validated gets 400 and a stored one 202 by default; each such
// row is sent again to a server with FailureStatusOK, which answers 200 with
// the same body, as the proxy does.
func TestStreakyResponseTable(t *testing.T) {
	e := newTestEnv(t)
	strictDiscord := withDiscord(channels.DiscordConfig{AllowedHosts: []string{"127.0.0.1", "discord.com"}})
	strict := newTestEnv(t, strictDiscord)
	okMode := map[*env]*env{
		e:      newTestEnv(t, withFailureStatus(FailureStatusOK)),
		strict: newTestEnv(t, strictDiscord, withFailureStatus(FailureStatusOK)),
	}

	_, vecPlain, vecSealed := workerVector(t, "discord-webhook-url")
	if vecPlain[:8] != "https://" {
		t.Fatal("unexpected vector")
	}
	wrongKey := testkit.Seal(t, testkit.Keyring(t, "ffffffffffffffffffffffffffffffff"), testWebhook)
	notUTF8 := e.seal(string([]byte{0xff, 0xfe, 0xfd}))
	tooShort := base64.StdEncoding.EncodeToString(make([]byte, 20))

	discord := func(webhook any) string {
		return streakyBody(map[string]any{"type": "discord", "encrypted_webhook": webhook, "message": goodMessage()})
	}
	telegram := func(token, chat any) string {
		m := map[string]any{"type": "telegram", "message": goodMessage()}
		if token != nil {
			m["encrypted_token"] = token
		}
		if chat != nil {
			m["encrypted_chat_id"] = chat
		}
		return streakyBody(m)
	}
	withMessage := func(msg map[string]any) string {
		return streakyBody(map[string]any{"type": "discord", "encrypted_webhook": e.seal(testWebhook), "message": msg})
	}
	msgWith := func(k string, v any) map[string]any {
		m := goodMessage()
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	jh := map[string]string{"Content-Type": "application/json", "X-API-Secret": testAPISecret}
	hdr := func(kv ...string) map[string]string {
		h := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}

	type want struct {
		status int
		// body is the exact body when bodySet; contains otherwise.
		body     string
		bodySet  bool
		contains string
		// success and errText check a 200 JSON reply.
		success *bool
		errText string
	}
	yes, no := true, false
	big := `{"type":"discord","message":{"username":"x","current_streak":1,"message":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}}`

	tests := []struct {
		name string
		env  *env
		req  request
		want want
	}{
		// Transport and shape: non-200 answers.
		{"unknown path", e, request{method: "POST", path: "/nope", header: jh, body: e.discordBody()}, want{status: 404}},
		{"wrong method", e, request{method: "GET", path: "/send-notification"}, want{status: 405}},
		{"missing secret", e, request{method: "POST", path: "/send-notification", header: hdr("Content-Type", "application/json"), body: e.discordBody()},
			want{status: 401, bodySet: true}},
		{"wrong secret", e, request{method: "POST", path: "/send-notification", header: hdr("Content-Type", "application/json", "X-API-Secret", "wrong"), body: e.discordBody()},
			want{status: 401, bodySet: true}},
		{"secret prefix", e, request{method: "POST", path: "/send-notification", header: hdr("Content-Type", "application/json", "X-API-Secret", testAPISecret[:10]), body: e.discordBody()},
			want{status: 401, bodySet: true}},
		{"secret as bearer is not Streaky's", e, request{method: "POST", path: "/send-notification", header: hdr("Content-Type", "application/json", "Authorization", "Bearer "+testAPISecret), body: e.discordBody()},
			want{status: 401, bodySet: true}},
		{"wrong secret before bad content type", e, request{method: "POST", path: "/send-notification", header: hdr("Content-Type", "text/plain", "X-API-Secret", "wrong"), body: "x"},
			want{status: 401, bodySet: true}},
		{"content type text/plain", e, request{method: "POST", path: "/send-notification", header: hdr("Content-Type", "text/plain", "X-API-Secret", testAPISecret), body: e.discordBody()},
			want{status: 415, contains: "Content-Type: application/json"}},
		{"content type missing", e, request{method: "POST", path: "/send-notification", header: hdr("X-API-Secret", testAPISecret), body: e.discordBody()},
			want{status: 415}},
		{"content type form", e, request{method: "POST", path: "/send-notification", header: hdr("Content-Type", "application/x-www-form-urlencoded", "X-API-Secret", testAPISecret), body: e.discordBody()},
			want{status: 415}},
		{"oversize body", e, request{method: "POST", path: "/send-notification", header: jh, body: big},
			want{status: 413}},
		{"oversize body, length unknown", e, request{method: "POST", path: "/send-notification", header: jh, body: big, unknownLength: true},
			want{status: 413}},
		{"oversize before malformed", e, request{method: "POST", path: "/send-notification", header: jh, body: "{" + big},
			want{status: 413}},
		{"invalid JSON", e, request{method: "POST", path: "/send-notification", header: jh, body: `{"type":"discord",`},
			want{status: 400, contains: "Failed to parse the request body as JSON"}},
		{"garbage", e, request{method: "POST", path: "/send-notification", header: jh, body: `not json`},
			want{status: 400}},
		{"empty body", e, request{method: "POST", path: "/send-notification", header: jh, body: ``},
			want{status: 400}},
		{"trailing garbage", e, request{method: "POST", path: "/send-notification", header: jh, body: e.discordBody() + "x"},
			want{status: 400}},
		{"invalid UTF-8", e, request{method: "POST", path: "/send-notification", header: jh, body: "{\"type\":\"disc\xfford\"}"},
			want{status: 400}},
		{"array", e, request{method: "POST", path: "/send-notification", header: jh, body: `[1,2]`},
			want{status: 422, contains: "Failed to deserialize the JSON body into the target type"}},
		{"null", e, request{method: "POST", path: "/send-notification", header: jh, body: `null`},
			want{status: 422}},
		{"missing type", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"encrypted_webhook": e.seal(testWebhook), "message": goodMessage()})},
			want{status: 422, contains: "missing field `type`"}},
		{"type case differs is missing", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"TYPE": "discord", "encrypted_webhook": e.seal(testWebhook), "message": goodMessage()})},
			want{status: 422, contains: "missing field `type`"}},
		{"type not a string", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"type": 1, "encrypted_webhook": e.seal(testWebhook), "message": goodMessage()})},
			want{status: 422}},
		{"type null", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"type": nil, "encrypted_webhook": e.seal(testWebhook), "message": goodMessage()})},
			want{status: 422}},
		{"missing message", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"type": "discord", "encrypted_webhook": e.seal(testWebhook)})},
			want{status: 422, contains: "missing field `message`"}},
		{"message not an object", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"type": "discord", "encrypted_webhook": e.seal(testWebhook), "message": "hi"})},
			want{status: 422}},
		{"missing username", e, request{method: "POST", path: "/send-notification", header: jh, body: withMessage(msgWith("username", nil))},
			want{status: 422, contains: "username"}},
		{"username not a string", e, request{method: "POST", path: "/send-notification", header: jh, body: withMessage(msgWith("username", 7))},
			want{status: 422}},
		{"missing current_streak", e, request{method: "POST", path: "/send-notification", header: jh, body: withMessage(msgWith("current_streak", nil))},
			want{status: 422, contains: "current_streak"}},
		{"missing message.message", e, request{method: "POST", path: "/send-notification", header: jh, body: withMessage(msgWith("message", nil))},
			want{status: 422, contains: "`message`"}},
		{"float streak", e, request{method: "POST", path: "/send-notification", header: jh, body: withMessage(msgWith("current_streak", 4.5))},
			want{status: 422, contains: "floating point"}},
		{"float streak with zero fraction", e, request{method: "POST", path: "/send-notification", header: jh,
			body: strings.Replace(withMessage(goodMessage()), `"current_streak":42`, `"current_streak":42.0`, 1)},
			want{status: 422, contains: "floating point"}},
		{"exponent streak", e, request{method: "POST", path: "/send-notification", header: jh,
			body: strings.Replace(withMessage(goodMessage()), `"current_streak":42`, `"current_streak":1e2`, 1)},
			want{status: 422}},
		{"string streak", e, request{method: "POST", path: "/send-notification", header: jh, body: withMessage(msgWith("current_streak", "42"))},
			want{status: 422}},
		{"streak above i32", e, request{method: "POST", path: "/send-notification", header: jh, body: withMessage(msgWith("current_streak", int64(1)<<31))},
			want{status: 422, contains: "out of range"}},
		{"streak below i32", e, request{method: "POST", path: "/send-notification", header: jh, body: withMessage(msgWith("current_streak", -(int64(1)<<31)-1))},
			want{status: 422}},
		{"contributions_today float", e, request{method: "POST", path: "/send-notification", header: jh, body: withMessage(msgWith("contributions_today", 1.5))},
			want{status: 422}},
		{"encrypted_webhook not a string", e, request{method: "POST", path: "/send-notification", header: jh, body: discord(12)},
			want{status: 422}},
		{"other type's field of the wrong type", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"type": "discord", "encrypted_webhook": e.seal(testWebhook), "encrypted_token": false, "message": goodMessage()})},
			want{status: 422}},
		{"duplicate field", e, request{method: "POST", path: "/send-notification", header: jh,
			body: `{"type":"discord","type":"telegram","encrypted_webhook":"` + e.seal(testWebhook) + `","message":{"username":"a","current_streak":1,"message":"m"}}`},
			want{status: 422, contains: "duplicate field"}},
		{"wrong shape before unknown type", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"type": "slack"})},
			want{status: 422}},

		// Business failures: 400 {"success":false} (200 with FailureStatusOK).
		{"unknown type", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"type": "slack", "message": goodMessage()})},
			want{status: 400, success: &no, errText: "Invalid notification type"}},
		{"type is case-sensitive", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"type": "Discord", "encrypted_webhook": e.seal(testWebhook), "message": goodMessage()})},
			want{status: 400, success: &no, errText: "Invalid notification type"}},
		{"missing encrypted_webhook", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"type": "discord", "encrypted_token": e.seal(testBotToken), "message": goodMessage()})},
			want{status: 400, success: &no, errText: "Missing encrypted_webhook for Discord notification"}},
		{"null encrypted_webhook", e, request{method: "POST", path: "/send-notification", header: jh, body: discord(nil)},
			want{status: 400, success: &no, errText: "Missing encrypted_webhook for Discord notification"}},
		{"missing encrypted_token", e, request{method: "POST", path: "/send-notification", header: jh, body: telegram(nil, e.seal(testChatID))},
			want{status: 400, success: &no, errText: "Missing encrypted_token for Telegram notification"}},
		{"missing both telegram fields", e, request{method: "POST", path: "/send-notification", header: jh, body: telegram(nil, nil)},
			want{status: 400, success: &no, errText: "Missing encrypted_token for Telegram notification"}},
		{"missing encrypted_chat_id", e, request{method: "POST", path: "/send-notification", header: jh, body: telegram(e.seal(testBotToken), nil)},
			want{status: 400, success: &no, errText: "Missing encrypted_chat_id for Telegram notification"}},
		{"bad base64", e, request{method: "POST", path: "/send-notification", header: jh, body: discord("!!!not base64!!!")},
			want{status: 400, success: &no, errText: "Invalid encrypted data: not base64 (encrypted_webhook)"}},
		{"too short", e, request{method: "POST", path: "/send-notification", header: jh, body: discord(tooShort)},
			want{status: 400, success: &no, errText: "Invalid encrypted data: too short (encrypted_webhook)"}},
		{"empty sealed value", e, request{method: "POST", path: "/send-notification", header: jh, body: discord("")},
			want{status: 400, success: &no, errText: "Invalid encrypted data: too short (encrypted_webhook)"}},
		{"wrong key", e, request{method: "POST", path: "/send-notification", header: jh, body: discord(wrongKey)},
			want{status: 400, success: &no, errText: "Decryption failed: wrong key or corrupted data (encrypted_webhook)"}},
		{"plaintext not UTF-8", e, request{method: "POST", path: "/send-notification", header: jh, body: discord(notUTF8)},
			want{status: 400, success: &no, errText: "Decryption failed: plaintext is not UTF-8 (encrypted_webhook)"}},
		{"telegram token wrong key", e, request{method: "POST", path: "/send-notification", header: jh, body: telegram(wrongKey, e.seal(testChatID))},
			want{status: 400, success: &no, errText: "Decryption failed: wrong key or corrupted data (encrypted_token)"}},
		{"telegram chat id too short", e, request{method: "POST", path: "/send-notification", header: jh, body: telegram(e.seal(testBotToken), tooShort)},
			want{status: 400, success: &no, errText: "Invalid encrypted data: too short (encrypted_chat_id)"}},
		{"non-Discord host", e, request{method: "POST", path: "/send-notification", header: jh,
			body: discord(e.seal("https://evil.example.com/api/webhooks/1/EvilToken_xyz"))},
			want{status: 400, success: &no, errText: "Invalid destination: webhook host is not an allowed Discord host"}},
		{"not a webhook path", e, request{method: "POST", path: "/send-notification", header: jh,
			body: discord(e.seal("https://discord.com/api/users/1/EvilToken_xyz"))},
			want{status: 400, success: &no, errText: "Invalid destination: not a Discord webhook URL: the path must be /api/webhooks/{numeric id}/{token}"}},
		{"http URL without AllowHTTP", strict, request{method: "POST", path: "/send-notification", header: jh,
			body: discord(strict.seal("http://127.0.0.1:1/api/webhooks/1/EvilToken_xyz"))},
			want{status: 400, success: &no, errText: "Invalid destination: webhook URL must use https"}},
		{"Discord URL with a port", strict, request{method: "POST", path: "/send-notification", header: jh,
			body: discord(strict.seal("https://discord.com:18081/api/webhooks/1/EvilToken_xyz"))},
			want{status: 400, success: &no, errText: "Invalid destination: webhook URL must not carry a port: Discord answers on the https port only"}},
		{"bad telegram token", e, request{method: "POST", path: "/send-notification", header: jh,
			body: telegram(e.seal("not-a-token-secret"), e.seal(testChatID))},
			want{status: 400, success: &no, errText: "Invalid destination: telegram bot token is malformed (want <digits>:<letters, digits, _ or ->)"}},
		{"bad telegram chat id", e, request{method: "POST", path: "/send-notification", header: jh,
			body: telegram(e.seal(testBotToken), e.seal("SECRETCHAT"))},
			want{status: 400, success: &no, errText: "Invalid destination: telegram chat id is malformed (want a decimal id or @username)"}},

		// Successes (StreakyWait 0: answered 202 as soon as stored; 200 with FailureStatusOK).
		{"discord", e, request{method: "POST", path: "/send-notification", header: jh, body: e.discordBody()},
			want{status: 202, success: &yes}},
		{"telegram", e, request{method: "POST", path: "/send-notification", header: jh, body: e.telegramBody()},
			want{status: 202, success: &yes}},
		{"Worker's own ciphertext", e, request{method: "POST", path: "/send-notification", header: jh, body: discord(vecSealed)},
			want{status: 202, success: &yes}},
		{"second configured secret", e, request{method: "POST", path: "/send-notification",
			header: hdr("Content-Type", "application/json", "X-API-Secret", "second-secret-abcdefgh"), body: e.discordBody()},
			want{status: 202, success: &yes}},
		{"content type with charset", e, request{method: "POST", path: "/send-notification",
			header: hdr("Content-Type", "application/json; charset=utf-8", "X-API-Secret", testAPISecret), body: e.discordBody()},
			want{status: 202, success: &yes}},
		{"content type +json", e, request{method: "POST", path: "/send-notification",
			header: hdr("Content-Type", "Application/Vnd.Streaky+JSON", "X-API-Secret", testAPISecret), body: e.discordBody()},
			want{status: 202, success: &yes}},
		{"unknown fields ignored", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"type": "discord", "encrypted_webhook": e.seal(testWebhook), "extra": []int{1}, "Type": 5,
				"message": msgWith("mood", map[string]any{"x": 1})})},
			want{status: 202, success: &yes}},
		{"contributions_today omitted or null", e, request{method: "POST", path: "/send-notification", header: jh,
			body: withMessage(msgWith("contributions_today", nil))},
			want{status: 202, success: &yes}},
		{"other type's fields ignored", e, request{method: "POST", path: "/send-notification", header: jh,
			body: streakyBody(map[string]any{"type": "telegram", "encrypted_token": e.seal(testBotToken), "encrypted_chat_id": e.seal(testChatID),
				"encrypted_webhook": "garbage", "message": goodMessage()})},
			want{status: 202, success: &yes}},
		{"negative streak", e, request{method: "POST", path: "/send-notification", header: jh, body: withMessage(msgWith("current_streak", -5))},
			want{status: 202, success: &yes}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want.success != nil {
				// The same answer with status 200 when failures are 200s.
				ok := okMode[tt.env]
				before := ok.streamMsgs()
				rec := ok.do(tt.req)
				var reply map[string]any
				decodeJSON(t, rec.Body, &reply)
				if rec.Code != 200 || reply["success"] != *tt.want.success {
					t.Fatalf("failure_status ok: %d %v, want 200 success:%v", rec.Code, reply, *tt.want.success)
				}
				if !*tt.want.success && (reply["error"] != tt.want.errText || ok.streamMsgs() != before) {
					t.Fatalf("failure_status ok: error %v, stored %d, want %q and nothing stored", reply["error"], ok.streamMsgs()-before, tt.want.errText)
				}
			}
			before := tt.env.streamMsgs()
			rec := tt.env.do(tt.req)
			if rec.Code != tt.want.status {
				t.Fatalf("status = %d, want %d (body %q)", rec.Code, tt.want.status, rec.Body.String())
			}
			body := rec.Body.String()
			if tt.want.bodySet && body != tt.want.body {
				t.Fatalf("body = %q, want %q", body, tt.want.body)
			}
			if tt.want.contains != "" && !strings.Contains(body, tt.want.contains) {
				t.Fatalf("body %q does not contain %q", body, tt.want.contains)
			}
			stored := tt.env.streamMsgs() - before
			if tt.want.success == nil {
				switch rec.Code {
				case 415, 413, 400, 422:
					if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
						t.Fatalf("Content-Type = %q, want plain text", ct)
					}
				}
				if stored != 0 {
					t.Fatalf("a refused request stored %d jobs", stored)
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type = %q", ct)
			}
			var reply map[string]any
			decodeJSON(t, rec.Body, &reply)
			if reply["success"] != *tt.want.success {
				t.Fatalf("success = %v, want %v (body %s)", reply["success"], *tt.want.success, body)
			}
			errVal, hasErr := reply["error"]
			if !hasErr {
				t.Fatalf("reply has no error key: %s", body)
			}
			if *tt.want.success {
				if errVal != nil {
					t.Fatalf("error = %v, want null", errVal)
				}
				if stored != 1 {
					t.Fatalf("stored %d jobs, want 1", stored)
				}
				if reply["queued"] != true || reply["id"] == "" {
					t.Fatalf("reply = %s, want queued with id (StreakyWait 0)", body)
				}
				return
			}
			if errVal != tt.want.errText {
				t.Fatalf("error = %q, want %q", errVal, tt.want.errText)
			}
			if stored != 0 {
				t.Fatalf("a refused request stored %d jobs", stored)
			}
		})
	}
}

// TestStreakyStoresJob checks the stored job field by field: Streaky's message,
// and the credentials exactly as sent (still sealed).
func TestStreakyStoresJob(t *testing.T) {
	e := newTestEnv(t)
	t.Run("discord", func(t *testing.T) {
		sealed := e.seal(testWebhook)
		// The Worker trims and sends standard padded base64; send it as is.
		start := time.Now().UTC()
		rec := e.streaky(streakyBody(map[string]any{"type": "discord", "encrypted_webhook": sealed,
			"message": map[string]any{"username": "octocat", "current_streak": 365, "contributions_today": 3, "message": "Commit today! 🚀"}}))
		if rec.Code != 202 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var reply streakyReply
		decodeJSON(t, rec.Body, &reply)
		job, raw := e.lastJob(herald.ChannelDiscord)
		if job.ID != reply.ID {
			t.Fatalf("stored id %s, replied %s", job.ID, reply.ID)
		}
		if got := raw.Header.Get("Nats-Msg-Id"); got != job.ID {
			t.Fatalf("Nats-Msg-Id = %q, want the job id %q", got, job.ID)
		}
		if raw.Subject != herald.JobIDSubject(herald.ChannelDiscord, job.ID) {
			t.Fatalf("subject %s", raw.Subject)
		}
		if job.Version != herald.JobVersion || job.Source != "streaky" || job.Channel != herald.ChannelDiscord {
			t.Fatalf("job header = v%d %s %s", job.Version, job.Source, job.Channel)
		}
		if job.Credentials != (herald.Credentials{Webhook: sealed}) {
			t.Fatal("credentials are not the sealed string sent")
		}
		if strings.Contains(string(raw.Data), testWebhook) || strings.Contains(string(raw.Data), testWebhookTk) {
			t.Fatal("the stored job holds the plaintext webhook")
		}
		m := job.Message
		if m.Title != "⚠️ GitHub Streak Alert" || m.Text != "Commit today! 🚀" || m.Footer != "Streaky - Never lose your GitHub streak" || m.Username != "Streaky Bot" {
			t.Fatalf("message = %+v", m)
		}
		if m.Color == nil || *m.Color != 16739947 {
			t.Fatalf("color = %v", m.Color)
		}
		wantFields := []herald.Field{
			{Name: "GitHub Username", Value: "octocat", Inline: true, Icon: "👤"},
			{Name: "Current Streak", Value: "365 days", Inline: true, Icon: "🔥"},
		}
		if len(m.Fields) != 2 || m.Fields[0] != wantFields[0] || m.Fields[1] != wantFields[1] {
			t.Fatalf("fields = %+v", m.Fields)
		}
		if m.Timestamp == nil || m.Timestamp.Location() != time.UTC || m.Timestamp.Before(start.Add(-time.Second)) || m.Timestamp.After(time.Now().Add(time.Second)) {
			t.Fatalf("timestamp = %v", m.Timestamp)
		}
		if job.CreatedAt.IsZero() || m.URL != "" {
			t.Fatalf("created_at %v url %q", job.CreatedAt, m.URL)
		}
		// Its status reads queued.
		st, err := e.status.Lookup(context.Background(), job.ID)
		if err != nil || st.State != herald.StateQueued || st.Channel != herald.ChannelDiscord {
			t.Fatalf("status = %+v, %v", st, err)
		}
	})
	t.Run("telegram", func(t *testing.T) {
		token, chat := e.seal(testBotToken), e.seal(testChatID)
		rec := e.streaky(streakyBody(map[string]any{"type": "telegram", "encrypted_token": token, "encrypted_chat_id": chat,
			"message": map[string]any{"username": "octocat", "current_streak": 1, "message": "hi"}}))
		if rec.Code != 202 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		job, raw := e.lastJob(herald.ChannelTelegram)
		if job.Credentials != (herald.Credentials{BotToken: token, ChatID: chat}) {
			t.Fatal("credentials are not the sealed strings sent")
		}
		if strings.Contains(string(raw.Data), testBotToken) || strings.Contains(string(raw.Data), testChatID) {
			t.Fatal("the stored job holds a plaintext credential")
		}
		if job.Message.Fields[1].Value != "1 days" || job.Source != "streaky" {
			t.Fatalf("job = %+v", job.Message)
		}
	})
}

// TestStreakyWait plays the worker: the reply follows the delivery result. A
// job that failed or was dead-lettered within the wait is a 502 (a 200 with
// FailureStatusOK).
func TestStreakyWait(t *testing.T) {
	tests := []struct {
		name   string
		result herald.Status
		status int
		want   string
	}{
		{"delivered", herald.Status{State: herald.StateDelivered, Attempts: 1}, 200, `{"success":true,"error":null}`},
		{"failed", herald.Status{State: herald.StateFailed, Attempts: 1, LastError: "Discord API error: 404 Not Found - Unknown Webhook (code 10015)"},
			502, `{"success":false,"error":"Discord API error: 404 Not Found - Unknown Webhook (code 10015)"}`},
		{"dead", herald.Status{State: herald.StateDead, Attempts: 5, LastError: "gave up after 5 attempts"},
			502, `{"success":false,"error":"gave up after 5 attempts"}`},
		{"failed without text", herald.Status{State: herald.StateFailed}, 502, `{"success":false,"error":"Delivery failed"}`},
	}
	for _, tt := range tests {
		for _, mode := range []FailureStatus{FailureStatusError, FailureStatusOK} {
			for _, local := range []bool{false, true} {
				name := tt.name + "/" + string(mode) + "/worker elsewhere"
				if local {
					name = tt.name + "/" + string(mode) + "/worker in this process"
				}
				want := tt.status
				if mode == FailureStatusOK {
					want = 200
				}
				t.Run(name, func(t *testing.T) {
					// A generous wait: the worker answers long before it, and
					// the test never depends on how long.
					e := newTestEnv(t, withWait(MaxStreakyWait), withFailureStatus(mode))
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					ids, errs, done := e.playWorker(ctx, tt.result, local)
					defer func() { cancel(); <-done }()
					rec := e.streaky(e.discordBody())
					if rec.Code != want || rec.Body.String() != tt.want {
						t.Fatalf("reply %d %s, want %d %s", rec.Code, rec.Body, want, tt.want)
					}
					select {
					case <-ids:
					case err := <-errs:
						t.Fatal(err)
					}
					if n := e.waits.Waiting(); n != 0 {
						t.Errorf("%d jobs still waited for after the reply", n)
					}
				})
			}
		}
	}
	t.Run("nobody", func(t *testing.T) {
		e := newTestEnv(t, withWait(300*time.Millisecond))
		rec := e.streaky(e.discordBody())
		var reply map[string]any
		decodeJSON(t, rec.Body, &reply)
		if rec.Code != 202 || reply["success"] != true || reply["error"] != nil || reply["queued"] != true {
			t.Fatalf("reply %d %v, want 202 queued", rec.Code, reply)
		}
		job, _ := e.lastJob(herald.ChannelDiscord)
		if reply["id"] != job.ID {
			t.Fatalf("id %v, stored %s", reply["id"], job.ID)
		}
		if body := e.do(request{method: "GET", path: "/metrics"}).Body.String(); !strings.Contains(body, `herald_streaky_unwaited_total{reason="timeout"} 1`+"\n") {
			t.Error("the timed-out wait is not counted")
		}
	})
	t.Run("client leaves", func(t *testing.T) {
		e := newTestEnv(t, withWait(MaxStreakyWait))
		sub, err := e.nc.SubscribeSync(herald.JobSubjects)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			// Leave as soon as the job is published.
			if _, err := sub.NextMsg(10 * time.Second); err == nil {
				cancel()
			}
		}()
		started := time.Now()
		e.do(request{method: "POST", path: "/send-notification", body: e.discordBody(), ctx: ctx,
			header: map[string]string{"Content-Type": "application/json", "X-API-Secret": testAPISecret}})
		if time.Since(started) >= MaxStreakyWait {
			t.Fatal("the handler kept waiting after the client left")
		}
		if n := e.streamMsgs(); n != 1 {
			t.Fatalf("stream holds %d jobs, want 1", n)
		}
		job, _ := e.lastJob(herald.ChannelDiscord)
		testkit.WaitFor(t, 10*time.Second, "queued status", func() bool {
			st, err := e.status.Lookup(context.Background(), job.ID)
			return err == nil && st.State == herald.StateQueued
		})
	})
}

// TestStreakyNotStored: with NATS gone the Worker gets 503 + Retry-After,
// never a 2xx.
func TestStreakyNotStored(t *testing.T) {
	for _, wait := range []time.Duration{0, time.Second} {
		t.Run(wait.String(), func(t *testing.T) {
			e := newTestEnv(t, withWait(wait))
			body := e.discordBody()
			e.stopNATS()
			rec := e.streaky(body)
			if rec.Code != 503 {
				t.Fatalf("status %d, want 503: %s", rec.Code, rec.Body)
			}
			if rec.Header().Get("Retry-After") != "5" {
				t.Fatalf("Retry-After = %q", rec.Header().Get("Retry-After"))
			}
			var reply map[string]any
			decodeJSON(t, rec.Body, &reply)
			if reply["success"] != false || reply["error"] == nil {
				t.Fatalf("reply = %v", reply)
			}
			if !strings.Contains(e.logs.String(), "code=not_stored") {
				t.Fatalf("failure not logged with its code: %s", e.logs)
			}
		})
	}
}

// TestStreakyOverHTTP sends what the Worker sends, over a real connection.
func TestStreakyOverHTTP(t *testing.T) {
	e := newTestEnv(t)
	ts := httptest.NewServer(e.h)
	defer ts.Close()
	post := func(secret, body string) (*http.Response, string) {
		req, err := http.NewRequest("POST", ts.URL+"/send-notification", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if secret != "" {
			req.Header.Set("X-API-Secret", secret)
		}
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		assertNoSecrets(t, "response", string(b))
		return res, string(b)
	}
	if res, body := post(testAPISecret, e.telegramBody()); res.StatusCode != 202 || !strings.HasPrefix(body, `{"success":true,"error":null`) {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	if res, body := post("", e.telegramBody()); res.StatusCode != 401 || body != "" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	if res, _ := post(testAPISecret, `{"type":"discord","message":{"username":"a","current_streak":1,"message":"`+strings.Repeat("x", DefaultMaxBodyBytes)+`"}}`); res.StatusCode != 413 {
		t.Fatalf("oversize: %d", res.StatusCode)
	}
}

// TestStreakyWaitersCapped: past its share of Config.MaxWaiting requests
// waiting for their result, a request of one API secret is answered as soon
// as its job is stored, as a wait that timed out would be; the job is stored
// all the same, and the other secret's request still waits.
func TestStreakyWaitersCapped(t *testing.T) {
	// Two secrets, two slots: one each.
	e := newTestEnv(t, withWait(MaxStreakyWait), func(c *Config, _ *Deps) { c.MaxWaiting = 2 })
	metricsSay := func(want string) {
		t.Helper()
		if body := e.do(request{method: "GET", path: "/metrics"}).Body.String(); !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	metricsSay(`herald_streaky_unwaited_total{reason="share_spent"} 0`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	post := func(secret string) *httptest.ResponseRecorder {
		return e.do(request{method: "POST", path: "/send-notification", body: e.discordBody(), ctx: ctx,
			header: map[string]string{"Content-Type": "application/json", "X-API-Secret": secret}})
	}
	waiters := make(chan *httptest.ResponseRecorder, 2)
	go func() { waiters <- post(testAPISecret) }()
	testkit.WaitFor(t, 5*time.Second, "the first request to wait", func() bool { return e.waits.Waiting() == 1 })
	metricsSay("herald_streaky_waiting 1")

	// The same secret again: its share is in use.
	rec := post(testAPISecret)
	var reply streakyReply
	decodeJSON(t, rec.Body, &reply)
	if rec.Code != 202 || !reply.Success || !reply.Queued || reply.ID == "" {
		t.Fatalf("over the share: %d %+v, want 202 success, queued", rec.Code, reply)
	}
	metricsSay(`herald_streaky_unwaited_total{reason="share_spent"} 1`)

	// The other secret's slot is its own: its request waits.
	go func() { waiters <- post("second-secret-abcdefgh") }()
	testkit.WaitFor(t, 5*time.Second, "the other secret's request to wait", func() bool { return e.waits.Waiting() == 2 })
	metricsSay("herald_streaky_waiting 2")
	metricsSay(`herald_streaky_unwaited_total{reason="share_spent"} 1`)

	cancel() // both clients leave
	for range 2 {
		if r := <-waiters; r.Code != 202 {
			t.Fatalf("a waiting request: %d", r.Code)
		}
	}
	if n := e.streamMsgs(); n != 3 {
		t.Fatalf("stream holds %d jobs, want 3", n)
	}
	metricsSay("herald_streaky_waiting 0")
}
