package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
)

// A delivery's log line says "attempts" as the API does, with the same
// count (failed attempts); JetStream's delivery count is "delivery".
func TestLogAttemptsAgreeWithTheAPI(t *testing.T) {
	discord := unlimitedDiscord(t)
	discord.Script(func(_ fake.DiscordRequest, n int) fake.Response {
		if n <= 2 {
			return fake.RespondDiscordError(http.StatusInternalServerError, 0, "try again")
		}
		return fake.Response{}
	})
	app := newTestApp(t, nil)
	hook := testkit.Seal(t, app.Keys, discord.WebhookURL("123456789012345678", "attempts-token"))
	code, out := apiCall(t, app, "POST", "/v1/notifications",
		fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"text":"third time lucky"}}`, hook))
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/notifications = %d %v", code, out)
	}
	id, _ := out["id"].(string)
	var st map[string]any
	testkit.WaitFor(t, 20*time.Second, "the job delivered", func() bool {
		st = getStatus(t, app.URL, id)
		return st["state"] == "delivered"
	})
	if st["attempts"] != 2.0 {
		t.Fatalf("API attempts = %v, want 2 (two failed)", st["attempts"])
	}
	var line map[string]any
	testkit.WaitFor(t, 5*time.Second, "the delivered line", func() bool {
		line = deliveryLine(app.Logs.String(), id, "delivered")
		return line != nil
	})
	if line["attempts"] != st["attempts"] || line["delivery"] != 3.0 {
		t.Errorf("log says attempts=%v delivery=%v, API attempts=%v (want the same, and delivery 3)", line["attempts"], line["delivery"], st["attempts"])
	}
	if _, ok := line["failures"]; ok {
		t.Errorf("log line still has failures: %v", line)
	}
}

// deliveryLine returns the JSON "delivery" log line of job id with outcome.
func deliveryLine(logs, id, outcome string) map[string]any {
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "delivery" && m["job_id"] == id && m["outcome"] == outcome {
			return m
		}
	}
	return nil
}

// readmeNATSExample is the README's `nats pub --jetstream` example: the
// subject, the header and the body (with $HOOK in it).
var readmeNATSExample = regexp.MustCompile(`(?m)^nats --server "nats://\$\(cat data/nats.token\)@127.0.0.1:4222" \\\n  pub --jetstream (\S+) -H "([^:"]+):([^"]+)" \\\n  "((?:[^"\\]|\\.)*)"$`)

// The README's `nats pub --jetstream` example does what it says: the
// publish is answered with the stream's ack (what the nats CLI prints),
// a second one inside the duplicate window is a duplicate, and the job
// (published without created_at) is delivered and counted in
// herald_delivery_latency_seconds from when the stream stored it.
func TestREADMENATSExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := readmeNATSExample.FindStringSubmatch(string(readme))
	if m == nil {
		t.Fatal("README.md has no `nats --server <url with data/nats.token> pub --jetstream <subject> -H ... \"<job>\"` example")
	}
	subject, hdrKey, hdrVal := m[1], m[2], m[3]
	discord := unlimitedDiscord(t)
	app := newTestApp(t, nil)
	hook := testkit.Seal(t, app.Keys, discord.WebhookURL("123456789012345678", "readme-token"))
	body := strings.ReplaceAll(strings.ReplaceAll(m[4], `\"`, `"`), "$HOOK", hook)
	if strings.Contains(body, "created_at") {
		t.Fatal("the example sets created_at; this test is about a job without it")
	}

	nc, err := nats.Connect(app.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// What `nats pub --jetstream` does: a request, answered by the stream.
	publish := func() map[string]any {
		msg := nats.NewMsg(subject)
		msg.Header.Set(hdrKey, hdrVal)
		msg.Data = []byte(body)
		resp, err := nc.RequestMsg(msg, 5*time.Second)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		var ack map[string]any
		if err := json.Unmarshal(resp.Data, &ack); err != nil || ack["error"] != nil {
			t.Fatalf("ack %s: %v", resp.Data, err)
		}
		return ack
	}
	if ack := publish(); ack["stream"] != "HERALD_JOBS" || ack["seq"] == nil || ack["duplicate"] == true {
		t.Fatalf("first ack = %v, want stored in HERALD_JOBS", ack)
	}
	if ack := publish(); ack["duplicate"] != true {
		t.Fatalf("second ack = %v, want a duplicate", ack)
	}
	testkit.WaitFor(t, 20*time.Second, "the job delivered", func() bool { return discord.Count() == 1 })
	testkit.WaitFor(t, 5*time.Second, "its latency counted", func() bool {
		return strings.Contains(get(t, app.MetricsURL+"/metrics"), `herald_delivery_latency_seconds_count{channel="discord"} 1`)
	})
	if n := discord.Count(); n != 1 {
		t.Errorf("the fake got %d messages, want 1", n)
	}
}
