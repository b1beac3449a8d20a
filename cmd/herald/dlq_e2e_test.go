package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
)

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
	code, reply := postStreakyDiscord(t, app, webhook)
	if code != 502 || reply["success"] != false {
		t.Fatalf("reply %d %v, want 502 success:false", code, reply)
	}
	if discord.Count() != 1 {
		t.Fatalf("fake saw %d requests, want exactly 1", discord.Count())
	}

	// Without the secret the admin API refuses.
	if code, _, _ := call(t, http.MethodGet, app.URL+"/admin/dlq", "", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("admin without secret: %d", code)
	}
	code, list := adminCall(t, app, http.MethodGet, "/admin/dlq", "")
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
	code, res := adminCall(t, app, http.MethodPost, "/admin/dlq/replay", `{"all":true}`)
	if code != 200 || res["replayed"] != float64(1) {
		t.Fatalf("replay: %d %v", code, res)
	}
	testkit.WaitFor(t, 15*time.Second, "replayed job delivered", func() bool { return discord.Count() == 2 })
	code, list = adminCall(t, app, http.MethodGet, "/admin/dlq", "")
	if letters, _ := list["letters"].([]any); code != 200 || len(letters) != 0 {
		t.Fatalf("dead letter still there after replay: %v", list)
	}
	testkit.AssertNoSecrets(t, "log and dead letter", app.Logs.String()+string(raw), webhook, "dlq-token-9001", testkit.Key, testSecret, testAdminSecret)
}
