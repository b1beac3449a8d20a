package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/vault"
)

// testVaultKey is the vault key of the tests.
const testVaultKey = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// vaultRef lets a test build the vault once the env's JetStream exists; the
// Server only calls it after that.
type vaultRef struct{ *vault.Vault }

// codes records the verification codes the vault sends.
type codes struct {
	mu   sync.Mutex
	sent []string
}

var codeRE = regexp.MustCompile(`(\d{6})$`)

func (c *codes) Notify(_ context.Context, n herald.Notification) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, codeRE.FindString(n.Message.Title))
	return nil
}

func (c *codes) last(t testing.TB) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sent) == 0 {
		t.Fatal("no code was sent")
	}
	return c.sent[len(c.sent)-1]
}

// newVaultEnv is newTestEnv with a real vault on its JetStream.
func newVaultEnv(t *testing.T, edit func(*vault.Config)) (*env, *codes) {
	t.Helper()
	ref := &vaultRef{}
	e := newTestEnv(t, func(_ *Config, d *Deps) { d.Vault = ref })
	creds, secrets, err := vault.EnsureBuckets(testkit.Context(t, 10*time.Second), e.js, vault.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	discord, _ := channels.NewDiscord(channels.DiscordConfig{AllowedHosts: []string{"127.0.0.1", "discord.com"}, AllowHTTP: true}, nil)
	telegram, _ := channels.NewTelegram(channels.TelegramConfig{}, nil)
	sent := &codes{}
	cfg := vault.Config{Keys: []string{testVaultKey}}
	if edit != nil {
		edit(&cfg)
	}
	ref.Vault, err = vault.New(cfg, vault.Deps{
		Credentials: creds, Secrets: secrets, Notifier: sent,
		Checkers: map[herald.Channel]vault.TargetChecker{herald.ChannelDiscord: discord, herald.ChannelTelegram: telegram},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, sent
}

// api sends an authenticated JSON request of Herald's API.
func (e *env) vaultAPI(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	h := map[string]string{"Authorization": "Bearer " + testAPISecret}
	if body != "" {
		h["Content-Type"] = "application/json"
	}
	rec := e.do(request{method: method, path: path, body: body, header: h})
	var out map[string]any
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			e.t.Fatalf("%s %s: reply is not JSON: %q", method, path, rec.Body.String())
		}
	}
	if rec.Code < 300 && rec.Body.Len() > 0 && strings.HasPrefix(path, "/v1/") && rec.Header().Get("Cache-Control") != "no-store" && path != "/v1/notifications" {
		e.t.Errorf("%s %s: Cache-Control %q", method, path, rec.Header().Get("Cache-Control"))
	}
	return rec.Code, out
}

func errCode(out map[string]any) string {
	if e, ok := out["error"].(map[string]any); ok {
		code, _ := e["code"].(string)
		return code
	}
	return ""
}

func jobByID(channel, id string) string {
	return fmt.Sprintf(`{"channel":%q,"credential_id":%q,"message":{"title":"t","text":"by id"}}`, channel, id)
}

func TestCredentialLifecycle(t *testing.T) {
	e, _ := newVaultEnv(t, nil)
	code, out := e.vaultAPI("POST", "/v1/credentials", fmt.Sprintf(`{"channel":"discord","webhook":%q}`, testWebhook))
	if code != http.StatusCreated {
		t.Fatalf("store: %d %v", code, out)
	}
	id, _ := out["id"].(string)
	if !herald.ValidID(id) || out["channel"] != "discord" || out["usable"] != true || out["key_id"] != "t1" {
		t.Fatalf("store reply %v", out)
	}
	if code, out := e.vaultAPI("GET", "/v1/credentials/"+id, ""); code != 200 || out["id"] != id || out["verified"] != false {
		t.Fatalf("get: %d %v", code, out)
	}

	// A job names it: stored with the id, no sealed credentials.
	if code, out := e.vaultAPI("POST", "/v1/notifications", jobByID("discord", id)); code != http.StatusAccepted {
		t.Fatalf("job by credential id: %d %v", code, out)
	}
	job, _ := e.lastJob(herald.ChannelDiscord)
	if job.CredentialID != id || job.Credentials != (herald.Credentials{}) {
		t.Fatalf("stored job: credential_id %q, credentials %+v", job.CredentialID, job.Credentials)
	}
	// Of another channel, or with sealed credentials too: refused.
	if code, out := e.vaultAPI("POST", "/v1/notifications", jobByID("telegram", id)); code != 422 || errCode(out) != "credential_mismatch" {
		t.Fatalf("other channel: %d %v", code, out)
	}
	both := fmt.Sprintf(`{"channel":"discord","credential_id":%q,"credentials":{"webhook":%q},"message":{"text":"x"}}`, id, e.seal(testWebhook))
	if code, out := e.vaultAPI("POST", "/v1/notifications", both); code != 422 || errCode(out) != "invalid_job" {
		t.Fatalf("both: %d %v", code, out)
	}

	if code, _ := e.vaultAPI("DELETE", "/v1/credentials/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, out := e.vaultAPI("GET", "/v1/credentials/"+id, ""); code != 404 || errCode(out) != "not_found" {
		t.Fatalf("get after delete: %d %v", code, out)
	}
	if code, out := e.vaultAPI("DELETE", "/v1/credentials/"+id, ""); code != 404 {
		t.Fatalf("second delete: %d %v", code, out)
	}
	before := e.streamMsgs()
	code, out = e.vaultAPI("POST", "/v1/notifications", jobByID("discord", id))
	if code != 422 || errCode(out) != "unknown_credential" {
		t.Fatalf("job naming a deleted credential: %d %v", code, out)
	}
	if e.streamMsgs() != before {
		t.Fatal("a refused job was stored")
	}
}

func TestCredentialRequestsRefused(t *testing.T) {
	e, _ := newVaultEnv(t, nil)
	for name, tc := range map[string]struct {
		body   string
		status int
		code   string
	}{
		"no webhook":      {`{"channel":"discord"}`, 422, "missing_credentials"},
		"telegram part":   {`{"channel":"telegram","bot_token":"` + testBotToken + `"}`, 422, "missing_credentials"},
		"mixed":           {`{"channel":"discord","webhook":"` + testWebhook + `","chat_id":1}`, 422, "missing_credentials"},
		"unknown channel": {`{"channel":"slack","webhook":"x"}`, 422, "invalid_job"},
		"unknown field":   {`{"channel":"discord","webhook":"x","sealed":true}`, 400, "invalid_body"},
		"chat id object":  {`{"channel":"telegram","bot_token":"` + testBotToken + `","chat_id":{}}`, 400, "invalid_body"},
		"other host":      {`{"channel":"discord","webhook":"https://evil.example.com/api/webhooks/1/EvilToken_xyz"}`, 422, "target_not_allowed"},
		"bad bot token":   {`{"channel":"telegram","bot_token":"not-a-token-secret","chat_id":"SECRETCHAT"}`, 422, "target_not_allowed"},
		"not json":        {`webhook=x`, 400, "malformed_json"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out := e.vaultAPI("POST", "/v1/credentials", tc.body)
			if code != tc.status || errCode(out) != tc.code {
				t.Fatalf("%d %v, want %d %s", code, out, tc.status, tc.code)
			}
		})
	}
	// A Telegram chat id may be a JSON number.
	code, out := e.vaultAPI("POST", "/v1/credentials", `{"channel":"telegram","bot_token":"`+testBotToken+`","chat_id":`+testChatID+`}`)
	if code != 201 {
		t.Fatalf("numeric chat id: %d %v", code, out)
	}
	// Every vault route needs the API secret.
	for _, r := range []struct{ method, path string }{
		{"POST", "/v1/credentials"}, {"GET", "/v1/credentials/x"}, {"DELETE", "/v1/credentials/x"},
		{"POST", "/v1/credentials/x/verify"}, {"POST", "/v1/credentials/x/verify/resend"},
		{"POST", "/v1/secrets"}, {"GET", "/v1/secrets/x"},
	} {
		rec := e.do(request{method: r.method, path: r.path, body: "{}", header: map[string]string{"Content-Type": "application/json"}})
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s %s without a secret: %d", r.method, r.path, rec.Code)
		}
	}
}

func TestCredentialVerificationOverTheAPI(t *testing.T) {
	e, sent := newVaultEnv(t, func(c *vault.Config) { c.RequireVerification = true })
	_, out := e.vaultAPI("POST", "/v1/credentials", fmt.Sprintf(`{"channel":"discord","webhook":%q}`, testWebhook))
	id, _ := out["id"].(string)
	if out["usable"] != false || out["code_sent"] != true {
		t.Fatalf("store reply %v", out)
	}
	if code, out := e.vaultAPI("POST", "/v1/notifications", jobByID("discord", id)); code != 422 || errCode(out) != "credential_unverified" {
		t.Fatalf("job before verification: %d %v", code, out)
	}
	right := sent.last(t)
	wrong := "000000"
	if right == wrong {
		wrong = "111111"
	}
	for i := range 4 {
		code, out := e.vaultAPI("POST", "/v1/credentials/"+id+"/verify", `{"code":"`+wrong+`"}`)
		if code != 422 || errCode(out) != "wrong_code" {
			t.Fatalf("wrong code %d: %d %v", i+1, code, out)
		}
	}
	if code, out := e.vaultAPI("POST", "/v1/credentials/"+id+"/verify", `{"code":"`+right+`"}`); code != 200 || out["verified"] != true {
		t.Fatalf("right code: %d %v", code, out)
	}
	if code, out := e.vaultAPI("POST", "/v1/notifications", jobByID("discord", id)); code != 202 {
		t.Fatalf("job after verification: %d %v", code, out)
	}
	if code, out := e.vaultAPI("POST", "/v1/credentials/"+id+"/verify/resend", ""); code != 409 || errCode(out) != "already_verified" {
		t.Fatalf("resend when verified: %d %v", code, out)
	}

	// Five wrong codes delete a registration.
	_, out = e.vaultAPI("POST", "/v1/credentials", `{"channel":"telegram","bot_token":"`+testBotToken+`","chat_id":"`+testChatID+`"}`)
	other, _ := out["id"].(string)
	if code, out := e.vaultAPI("POST", "/v1/credentials/"+other+"/verify/resend", ""); code != 202 || out["code_sent"] != true {
		t.Fatalf("resend: %d %v", code, out)
	}
	for i := range 5 {
		code, out := e.vaultAPI("POST", "/v1/credentials/"+other+"/verify", `{"code":"`+wrong+`"}`)
		want, wantCode := 422, "wrong_code"
		if i == 4 {
			want, wantCode = 410, "too_many_attempts"
		}
		if code != want || errCode(out) != wantCode {
			t.Fatalf("wrong code %d: %d %v", i+1, code, out)
		}
	}
	if code, _ := e.vaultAPI("GET", "/v1/credentials/"+other, ""); code != 404 {
		t.Fatalf("get after too many codes: %d", code)
	}
}

func TestSecretsOverTheAPI(t *testing.T) {
	e, _ := newVaultEnv(t, func(c *vault.Config) { c.SecretMaxTTL = time.Hour })
	for _, ttl := range []string{`"10m"`, `600`, `null`} {
		code, out := e.vaultAPI("POST", "/v1/secrets", `{"value":"s3cr3t value","ttl":`+ttl+`}`)
		if code != http.StatusCreated {
			t.Fatalf("ttl %s: %d %v", ttl, code, out)
		}
		id, _ := out["id"].(string)
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(out["expires_at"])); err != nil || id == "" {
			t.Fatalf("reply %v", out)
		}
		if code, out := e.vaultAPI("GET", "/v1/secrets/"+id, ""); code != 200 || out["value"] != "s3cr3t value" {
			t.Fatalf("first read: %d %v", code, out)
		}
		if code, out := e.vaultAPI("GET", "/v1/secrets/"+id, ""); code != 404 || errCode(out) != "not_found" {
			t.Fatalf("second read: %d %v", code, out)
		}
	}
	for name, tc := range map[string]struct {
		body   string
		status int
		code   string
	}{
		"ttl above max": {`{"value":"v","ttl":"2h"}`, 422, "invalid_secret"},
		"empty value":   {`{"value":"","ttl":"1m"}`, 422, "invalid_secret"},
		"bad ttl":       {`{"value":"v","ttl":"soon"}`, 400, "invalid_body"},
		"fraction ttl":  {`{"value":"v","ttl":1.5}`, 400, "invalid_body"},
		"unknown field": {`{"value":"v","views":2}`, 400, "invalid_body"},
	} {
		t.Run(name, func(t *testing.T) {
			code, out := e.vaultAPI("POST", "/v1/secrets", tc.body)
			if code != tc.status || errCode(out) != tc.code {
				t.Fatalf("%d %v, want %d %s", code, out, tc.status, tc.code)
			}
		})
	}
	if code, _ := e.vaultAPI("GET", "/v1/secrets/"+herald.NewID(), ""); code != 404 {
		t.Fatalf("unknown secret: %d", code)
	}

	// Another API secret can neither read a secret nor spend its one read.
	_, out := e.vaultAPI("POST", "/v1/secrets", `{"value":"for the owner only","ttl":"10m"}`)
	id, _ := out["id"].(string)
	rec := e.do(request{method: "GET", path: "/v1/secrets/" + id, header: map[string]string{"Authorization": "Bearer second-secret-abcdefgh"}})
	if rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "for the owner only") {
		t.Fatalf("another API secret's read: %d %s, want 404", rec.Code, rec.Body.String())
	}
	if code, out := e.vaultAPI("GET", "/v1/secrets/"+id, ""); code != 200 || out["value"] != "for the owner only" {
		t.Fatalf("the owner's read after another secret tried: %d %v", code, out)
	}
}

// Without a vault the routes do not exist and jobs naming a credential are
// refused.
func TestNoVault(t *testing.T) {
	e := newTestEnv(t)
	rec := e.do(request{method: "POST", path: "/v1/credentials", body: "{}", header: map[string]string{"Authorization": "Bearer " + testAPISecret}})
	if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /v1/credentials without a vault: %d", rec.Code)
	}
	code, out := e.vaultAPI("POST", "/v1/notifications", jobByID("discord", "cred-1"))
	if code != 422 || errCode(out) != "unknown_credential" {
		t.Fatalf("job by credential id without a vault: %d %v", code, out)
	}
}
