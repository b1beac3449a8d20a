package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/heraldrelay/herald/internal/fake"
)

const testAdminSecret = "admin-secret-for-tests-0123"

func adminCall(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	code, raw := call(t, method, url, "Authorization", "Bearer "+testAdminSecret, body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return code, out
}

// A deleted webhook: one request, a dead letter with the reason; the operator
// fixes the destination, replays through the admin API, and it is delivered.
func TestServeDeadLetterThenReplayThroughAdminAPI(t *testing.T) {
	discord := fake.NewDiscord(t)
	var broken atomic.Bool
	broken.Store(true)
	discord.Script(func(fake.DiscordRequest, int) fake.Response {
		if broken.Load() {
			return fake.Respond404UnknownWebhook()
		}
		return fake.Response{}
	})
	app := newTestApp(t, map[string]string{"HERALD_ADMIN_SECRET": testAdminSecret})
	webhook := discord.WebhookURL("9001", "dlq-token-9001")
	code, reply := postStreaky(t, app.URL, map[string]any{
		"type": "discord", "encrypted_webhook": app.seal(t, webhook), "message": streakyMessage("octocat"),
	})
	if code != 200 || reply["success"] != false {
		t.Fatalf("reply %d %v, want success:false", code, reply)
	}
	if discord.Count() != 1 {
		t.Fatalf("fake saw %d requests, want exactly 1", discord.Count())
	}

	// Without the secret the admin API refuses.
	resp, err := http.Get(app.URL + "/admin/dlq")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin without secret: %d", resp.StatusCode)
	}
	code, list := adminCall(t, http.MethodGet, app.URL+"/admin/dlq", "")
	letters, _ := list["letters"].([]any)
	if code != 200 || len(letters) != 1 {
		t.Fatalf("list: %d %v", code, list)
	}
	letter := letters[0].(map[string]any)
	raw, _ := json.Marshal(letter)
	if !bytes.Contains(raw, []byte("Unknown Webhook")) || !bytes.Contains(raw, []byte("404")) {
		t.Errorf("dead letter lacks the reason: %s", raw)
	}

	broken.Store(false)
	code, res := adminCall(t, http.MethodPost, app.URL+"/admin/dlq/replay", `{"all":true}`)
	if code != 200 || res["replayed"] != float64(1) {
		t.Fatalf("replay: %d %v", code, res)
	}
	waitFor(t, "replayed job delivered", func() bool { return discord.Count() == 2 })
	code, list = adminCall(t, http.MethodGet, app.URL+"/admin/dlq", "")
	if letters, _ := list["letters"].([]any); code != 200 || len(letters) != 0 {
		t.Fatalf("dead letter still there after replay: %v", list)
	}
	assertNoSecrets(t, app.Logs.String()+string(raw), webhook, "dlq-token-9001", testKey, testSecret, testAdminSecret)
}
