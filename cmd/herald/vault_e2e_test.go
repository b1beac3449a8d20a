package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
)

func apiErrCode(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func notificationByID(channel, id, text string) string {
	return fmt.Sprintf(`{"channel":%q,"credential_id":%q,"message":{"title":"By id","text":%q}}`, channel, id, text)
}

var verificationCode = regexp.MustCompile(`^Herald verification code: (\d{6})$`)

// codesAt returns the verification codes the fake received, oldest first,
// and how many other messages it received.
func codesAt(d *fake.Discord) (codes []string, others int) {
	for _, r := range d.Requests() {
		embeds, _ := r.Body["embeds"].([]any)
		if len(embeds) == 0 {
			others++
			continue
		}
		title, _ := embeds[0].(map[string]any)["title"].(string)
		if m := verificationCode.FindStringSubmatch(title); m != nil {
			codes = append(codes, m[1])
		} else {
			others++
		}
	}
	return codes, others
}

func waitCode(t *testing.T, d *fake.Discord, n int) string {
	t.Helper()
	var codes []string
	testkit.WaitFor(t, 15*time.Second, fmt.Sprintf("verification code %d at the destination", n), func() bool {
		codes, _ = codesAt(d)
		return len(codes) >= n
	})
	return codes[n-1]
}

func otherCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

// Store a webhook, send to it by credential id, delete it: the API then
// refuses such jobs, and one published straight to NATS is dead-lettered.
// No response, log line, status record or dead letter holds the webhook.
func TestServeCredentialVaultEndToEnd(t *testing.T) {
	discord := fake.NewDiscord(t)
	app := newTestApp(t, map[string]string{"HERALD_ADMIN_SECRET": testAdminSecret})
	token := "vault-e2e-token_42"
	webhook := discord.WebhookURL("4242", token)
	secrets := []string{webhook, token, testkit.Key, testSecret}

	code, out := apiCall(t, app, "POST", "/v1/credentials", fmt.Sprintf(`{"channel":"discord","webhook":%q}`, webhook), secrets...)
	if code != http.StatusCreated || out["usable"] != true {
		t.Fatalf("store: %d %v", code, out)
	}
	id, _ := out["id"].(string)
	code, out = apiCall(t, app, "POST", "/v1/notifications", notificationByID("discord", id, "first"), secrets...)
	if code != http.StatusAccepted {
		t.Fatalf("job by credential id: %d %v", code, out)
	}
	jobID, _ := out["id"].(string)
	testkit.WaitFor(t, 15*time.Second, "delivery", func() bool { return discord.Count() == 1 })
	if r := discord.Requests()[0]; r.WebhookID != "4242" || r.Token != token {
		t.Fatalf("delivered to webhook %s", r.WebhookID)
	}
	testkit.WaitFor(t, 15*time.Second, "status delivered", func() bool { return getStatus(t, app.URL, jobID)["state"] == "delivered" })

	if code, _ := apiCall(t, app, "GET", "/v1/credentials/"+id, "", secrets...); code != 200 {
		t.Fatalf("get: %d", code)
	}
	if code, _ := apiCall(t, app, "DELETE", "/v1/credentials/"+id, "", secrets...); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	code, out = apiCall(t, app, "POST", "/v1/notifications", notificationByID("discord", id, "after delete"), secrets...)
	if code != http.StatusUnprocessableEntity || apiErrCode(out) != "unknown_credential" {
		t.Fatalf("job naming a deleted credential: %d %v", code, out)
	}

	// Straight to NATS, as another backend would: dead-lettered, cause
	// credentials.
	_, js := testkit.Connect(t, app.NATSURL())
	res, err := publisher.New(js).Publish(context.Background(), &herald.Job{
		Channel: herald.ChannelDiscord, CredentialID: id, Message: herald.Message{Text: "from NATS"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	testkit.WaitFor(t, 15*time.Second, "status dead", func() bool {
		st = getStatus(t, app.URL, res.ID)
		return st["state"] == "dead"
	})
	if reason, _ := st["last_error"].(string); !strings.Contains(reason, "no such credential") {
		t.Errorf("last_error %q", reason)
	}
	code, list := adminCall(t, app, http.MethodGet, "/admin/dlq", "")
	letters, _ := list["letters"].([]any)
	if code != 200 || len(letters) != 1 {
		t.Fatalf("dead letters: %d %v", code, list)
	}
	raw, _ := json.Marshal(letters[0])
	if !bytes.Contains(raw, []byte(`"credentials"`)) || !bytes.Contains(raw, []byte(id)) {
		t.Errorf("dead letter %s lacks the cause or the credential id", raw)
	}
	if discord.Count() != 1 {
		t.Fatalf("the fake got %d requests, want 1", discord.Count())
	}
	stRaw, _ := json.Marshal(st)
	testkit.AssertNoSecrets(t, "log, dead letter and status", app.Logs.String()+string(raw)+string(stRaw), secrets...)
}

// With verification required: the code reaches the destination through the
// normal delivery path; four wrong codes, then the right one, verify it; five
// wrong codes delete another.
func TestServeVerificationEndToEnd(t *testing.T) {
	discord := fake.NewDiscord(t)
	app := newTestApp(t, map[string]string{"HERALD_VAULT_REQUIRE_VERIFICATION": "true"})
	token := "verify-e2e-token_7"
	webhook := discord.WebhookURL("77", token)
	secrets := []string{webhook, token, testkit.Key, testSecret}

	code, out := apiCall(t, app, "POST", "/v1/credentials", fmt.Sprintf(`{"channel":"discord","webhook":%q}`, webhook), secrets...)
	if code != http.StatusCreated || out["usable"] != false || out["code_sent"] != true {
		t.Fatalf("store: %d %v", code, out)
	}
	id, _ := out["id"].(string)
	right := waitCode(t, discord, 1)
	if code, out := apiCall(t, app, "POST", "/v1/notifications", notificationByID("discord", id, "too early"), secrets...); code != 422 || apiErrCode(out) != "credential_unverified" {
		t.Fatalf("job before verification: %d %v", code, out)
	}
	for i := range 4 {
		code, out := apiCall(t, app, "POST", "/v1/credentials/"+id+"/verify", `{"code":"`+otherCode(right)+`"}`, secrets...)
		if code != 422 || apiErrCode(out) != "wrong_code" {
			t.Fatalf("wrong code %d: %d %v", i+1, code, out)
		}
	}
	if code, out := apiCall(t, app, "POST", "/v1/credentials/"+id+"/verify", `{"code":"`+right+`"}`, secrets...); code != 200 || out["verified"] != true {
		t.Fatalf("right code: %d %v", code, out)
	}
	if code, out := apiCall(t, app, "POST", "/v1/notifications", notificationByID("discord", id, "verified"), secrets...); code != 202 {
		t.Fatalf("job after verification: %d %v", code, out)
	}
	testkit.WaitFor(t, 15*time.Second, "the job delivered", func() bool { _, others := codesAt(discord); return others == 1 })

	// Five wrong codes delete a registration.
	other := discord.WebhookURL("78", token+"b")
	_, out = apiCall(t, app, "POST", "/v1/credentials", fmt.Sprintf(`{"channel":"discord","webhook":%q}`, other), secrets...)
	doomed, _ := out["id"].(string)
	right = waitCode(t, discord, 2)
	for range 5 {
		code, out = apiCall(t, app, "POST", "/v1/credentials/"+doomed+"/verify", `{"code":"`+otherCode(right)+`"}`, secrets...)
	}
	if code != http.StatusGone || apiErrCode(out) != "too_many_attempts" {
		t.Fatalf("fifth wrong code: %d %v", code, out)
	}
	if code, _ := apiCall(t, app, "POST", "/v1/credentials/"+doomed+"/verify", `{"code":"`+right+`"}`, secrets...); code != 404 {
		t.Fatalf("right code after deletion: %d", code)
	}
	testkit.AssertNoSecrets(t, "log", app.Logs.String(), secrets...)
}

// The registration page: the form, a webhook, the code at the destination,
// the id on the page; a form without its CSRF token is refused. The id is a
// bearer credential: every API secret holding it sends with it.
func TestServeRegisterPageEndToEnd(t *testing.T) {
	discord := fake.NewDiscord(t)
	app := newTestApp(t, map[string]string{"HERALD_INGEST_API_SECRETS": otherTenantSecret})
	token := "register-e2e-token_9"
	webhook := discord.WebhookURL("99", token)
	secrets := []string{webhook, token, testkit.Key, testSecret}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	page := func(resp *http.Response, err error) (int, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		testkit.AssertNoSecrets(t, "page", string(b), secrets...)
		return resp.StatusCode, string(b)
	}
	hidden := func(body, name string) string {
		t.Helper()
		m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("page lacks %s:\n%s", name, body)
		}
		return m[1]
	}

	code, body := page(browser.Get(app.URL + "/register"))
	if code != 200 || !strings.Contains(body, `name="webhook"`) {
		t.Fatalf("GET /register: %d\n%s", code, body)
	}
	csrf := hidden(body, "csrf")
	if code, _ := page(browser.PostForm(app.URL+"/register", url.Values{"channel": {"discord"}, "webhook": {webhook}})); code != http.StatusForbidden {
		t.Fatalf("form without CSRF token: %d", code)
	}
	code, body = page(browser.PostForm(app.URL+"/register", url.Values{"csrf": {csrf}, "channel": {"discord"}, "webhook": {webhook}}))
	if code != 200 {
		t.Fatalf("POST /register: %d\n%s", code, body)
	}
	id := hidden(body, "id")
	code, body = page(browser.PostForm(app.URL+"/register/verify?id="+id, url.Values{
		"csrf": {hidden(body, "csrf")}, "id": {id}, "code": {waitCode(t, discord, 1)}, "action": {"verify"},
	}))
	if code != 200 || !strings.Contains(body, "<code>"+id+"</code>") {
		t.Fatalf("POST /register/verify: %d\n%s", code, body)
	}
	// The id works for jobs, whichever API secret sends them.
	if code, out := apiCall(t, app, "POST", "/v1/notifications", notificationByID("discord", id, "hello"), secrets...); code != 202 {
		t.Fatalf("job by the registered id: %d %v", code, out)
	}
	if code, out := otherCall(t, app, "POST", "/v1/notifications", notificationByID("discord", id, "hello again"), secrets...); code != 202 {
		t.Fatalf("another API secret's job by the registered id: %d %v", code, out)
	}
	if code, out := otherCall(t, app, "GET", "/v1/credentials/"+id, "", secrets...); code != 200 || out["verified"] != true {
		t.Fatalf("another API secret's read of the registered id: %d %v", code, out)
	}
	testkit.WaitFor(t, 15*time.Second, "delivery", func() bool { _, others := codesAt(discord); return others == 2 })
	testkit.AssertNoSecrets(t, "log", app.Logs.String(), secrets...)
}

// Read-once secrets through the real wiring.
func TestServeReadOnceSecret(t *testing.T) {
	app := newTestApp(t, nil)
	code, out := apiCall(t, app, "POST", "/v1/secrets", `{"value":"hunter2-but-longer","ttl":"10m"}`)
	if code != http.StatusCreated {
		t.Fatalf("put: %d %v", code, out)
	}
	id, _ := out["id"].(string)
	if code, out := apiCall(t, app, "GET", "/v1/secrets/"+id, ""); code != 200 || out["value"] != "hunter2-but-longer" {
		t.Fatalf("first read: %d %v", code, out)
	}
	if code, _ := apiCall(t, app, "GET", "/v1/secrets/"+id, ""); code != 404 {
		t.Fatalf("second read: %d", code)
	}
	testkit.AssertNoSecrets(t, "log", app.Logs.String(), "hunter2-but-longer")
}
