package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
)

// With the ingest and the workers in separate processes (here: separate
// Apps on separate connections), a waiting Streaky request learns its
// outcome through the status bucket's writes.
func TestStreakyWaitAcrossProcesses(t *testing.T) {
	srv, _, js := testkit.JetStream(t)
	discord := fake.NewDiscord(t)
	discord.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		if r.WebhookID == "404" {
			return fake.Respond404UnknownWebhook()
		}
		return fake.Response{}
	})
	env := sharedNATSEnv(srv.URL())
	env["HERALD_INGEST_STREAKY_WAIT"] = "10s"
	ingest := newTestAppAs(t, roleIngest, env)
	newTestAppAs(t, roleWorker, env)

	code, reply := postStreakyDiscord(t, ingest, discord.WebhookURL("123456789012345678", "split-token"))
	if code != 200 || reply["success"] != true || reply["error"] != nil || reply["queued"] != nil {
		t.Fatalf("reply %d %v, want the delivered outcome", code, reply)
	}
	code, reply = postStreakyDiscord(t, ingest, discord.WebhookURL("404", "gone-token"))
	if msg, _ := reply["error"].(string); code != 502 || reply["success"] != false || !strings.Contains(msg, "Unknown Webhook") {
		t.Fatalf("reply %d %v, want 502 with the failure's reason", code, reply)
	}
	if n := discord.Count(); n != 2 {
		t.Errorf("the fake got %d requests, want 2", n)
	}
	// Across processes the record is the signal: it is written.
	if n := statusRecords(t, js); n != 2 {
		t.Errorf("%d status records, want 2", n)
	}
}

// In one process, a request that took its delivered outcome leaves no
// status record: it never learned the job's id, so nobody could read it.
func TestServeStreakyWaitLeavesNoRecord(t *testing.T) {
	discord := fake.NewDiscord(t)
	app := newTestApp(t, map[string]string{"HERALD_INGEST_STREAKY_WAIT": "10s"})
	for range 3 {
		code, reply := postStreakyDiscord(t, app, discord.WebhookURL("123456789012345678", "one-process-token"))
		if code != 200 || reply["success"] != true || reply["queued"] != nil {
			t.Fatalf("reply %d %v, want the delivered outcome", code, reply)
		}
	}
	if n := statusRecords(t, app.js); n != 0 {
		t.Errorf("%d status records, want none", n)
	}
}

// A job whose request stopped waiting keeps its record: that request was
// answered with the job's id, to look it up later.
func TestServeStreakyWaitTimedOutKeepsRecord(t *testing.T) {
	discord := fake.NewDiscord(t)
	discord.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Response{Delay: 800 * time.Millisecond} })
	app := newTestApp(t, map[string]string{"HERALD_INGEST_STREAKY_WAIT": "200ms"})
	code, reply := postStreakyDiscord(t, app, discord.WebhookURL("123456789012345678", "slow-token"))
	id, _ := reply["id"].(string)
	if code != 202 || reply["success"] != true || reply["queued"] != true || id == "" {
		t.Fatalf("reply %d %v, want 202 queued with the id", code, reply)
	}
	kv, err := app.js.KeyValue(context.Background(), herald.StatusBucket)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the delivered record", func() bool {
		e, err := kv.Get(context.Background(), id)
		return err == nil && strings.Contains(string(e.Value()), `"delivered"`)
	})
}

// statusRecords counts the records in the status bucket.
func statusRecords(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), herald.StatusBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range keys.Keys() {
		n++
	}
	return n
}

// Issue 17's measurement made a test: one API secret holds as many waiting
// Streaky requests as it may (and more: ingest.streaky.max_waiting of them,
// which took every slot before waiting slots were shared per secret), to a
// webhook that never answers, from several client addresses. Another
// secret's requests still wait for their real outcomes: a dead webhook is
// reported dead, a healthy one delivered. The first secret's requests past
// its share are answered as a timed-out wait is, at once.
func TestStreakyWaitingSlotsPerSecret(t *testing.T) {
	const (
		maxWaiting = 20
		share      = maxWaiting / 2 // the default: max_waiting over the 2 secrets
		secretB    = "second-streaky-secret-for-tests"
		hungID     = "111111111111111111"
		goneID     = "404"
	)
	discord := fake.NewDiscord(t)
	discord.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		switch r.WebhookID {
		case hungID:
			return fake.Response{Hang: true}
		case goneID:
			return fake.Respond404UnknownWebhook()
		}
		return fake.Response{}
	})
	app := newTestApp(t, map[string]string{
		"HERALD_INGEST_API_SECRETS":         secretB,
		"HERALD_INGEST_STREAKY_MAX_WAITING": strconv.Itoa(maxWaiting),
		// The longest wait: secret A's requests still wait when B's are
		// answered, however slow the machine.
		"HERALD_INGEST_STREAKY_WAIT": "14s",
	})
	body := func(webhook string) string {
		b, _ := json.Marshal(map[string]any{"type": "discord", "encrypted_webhook": testkit.Seal(t, app.Keys, webhook), "message": streakyMessage("octocat")})
		return string(b)
	}

	// Secret A (VPS_SECRET): max_waiting requests to the hung webhook, from
	// 127.0.0.2-6.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type answer struct {
		code  int
		reply map[string]any
	}
	answered := make(chan answer, maxWaiting)
	var wg sync.WaitGroup
	for i := range maxWaiting {
		client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%5))},
		}).DialContext}}
		b := body(discord.WebhookURL(hungID, "hung-token"))
		wg.Go(func() {
			req := newRequest(http.MethodPost, app.URL+"/send-notification", "X-API-Secret", testSecret, b)
			resp, err := client.Do(req.WithContext(ctx))
			if err != nil {
				return // cancelled at the end of the test, still waiting
			}
			defer resp.Body.Close()
			var reply map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&reply)
			answered <- answer{resp.StatusCode, reply}
		})
	}
	waiting := func() int {
		for line := range strings.Lines(get(t, app.MetricsURL+"/metrics")) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "herald_streaky_waiting "); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		return -1
	}
	testkit.WaitFor(t, 20*time.Second, "every request of secret A waiting or answered", func() bool {
		return waiting()+len(answered) == maxWaiting && discord.Count() > 0
	})

	// Secret B: the dead webhook is reported dead, the healthy one delivered.
	post := func(webhook string) (int, map[string]any) {
		t.Helper()
		return jsonCall(t, http.MethodPost, app.URL+"/send-notification", "X-API-Secret", secretB, body(webhook), secretB)
	}
	code, reply := post(discord.WebhookURL(goneID, "gone-token"))
	t.Logf("secret A: %d requests waiting, %d answered at once; secret B, webhook answering 404: %d %v", waiting(), len(answered), code, reply)
	if msg, _ := reply["error"].(string); code != 502 || reply["success"] != false || !strings.Contains(msg, "Unknown Webhook") {
		t.Errorf("secret B, webhook answering 404: reply %d %v, want 502 with the failure's reason", code, reply)
	}
	code, reply = post(discord.WebhookURL("123456789012345678", "healthy-token"))
	if code != 200 || reply["success"] != true || reply["error"] != nil || reply["queued"] != nil {
		t.Errorf("secret B, healthy webhook: reply %d %v, want the delivered outcome", code, reply)
	}

	// Secret A holds its share; the rest was answered as a timed-out wait.
	if n := waiting(); n != share {
		t.Errorf("%d requests waiting, want secret A's share %d", n, share)
	}
	if n := len(answered); n != maxWaiting-share {
		t.Errorf("%d of secret A's requests answered at once, want %d", n, maxWaiting-share)
	}
	for range len(answered) {
		a := <-answered
		if id, _ := a.reply["id"].(string); a.code != 202 || a.reply["success"] != true || a.reply["queued"] != true || id == "" {
			t.Errorf("secret A past its share: reply %d %v, want 202 queued with the id", a.code, a.reply)
		}
	}
	if m := get(t, app.MetricsURL+"/metrics"); !strings.Contains(m, `herald_streaky_unwaited_total{reason="share_spent"} `+strconv.Itoa(maxWaiting-share)+"\n") {
		t.Errorf("/metrics does not count secret A's unwaited requests by reason")
	}
	cancel()
	wg.Wait()
	discord.Close() // releases the hung sends, so the app stops at once
}

// jobsStored is the jobs stream's last sequence: how many jobs were ever
// stored in it.
func jobsStored(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), herald.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.LastSeq
}

// A waiting request's job is tried before it is stored: delivered at once,
// it is never stored; failed once, it is stored, retried after its backoff
// and still answered with its outcome. Turned off, or with a wait shorter
// than a send may last, every job is stored first.
func TestServeStreakySendsFirst(t *testing.T) {
	discord := fake.NewDiscord(t)
	discord.Script(func(r fake.DiscordRequest, n int) fake.Response {
		if r.WebhookID == "500500500500500500" && n == 1 {
			return fake.Response{Status: http.StatusInternalServerError, Body: `{"message": "500: Internal Server Error", "code": 0}`}
		}
		return fake.Response{}
	})
	app := newTestApp(t, nil)
	code, reply := postStreakyDiscord(t, app, discord.WebhookURL("123456789012345678", "first-token"))
	if code != 200 || reply["success"] != true || reply["queued"] != nil {
		t.Fatalf("reply %d %v, want delivered", code, reply)
	}
	if n := jobsStored(t, app.js); n != 0 {
		t.Errorf("%d jobs stored, want none: it was delivered before", n)
	}
	metrics := get(t, app.MetricsURL+"/metrics")
	if !strings.Contains(metrics, `herald_sent_first_total{channel="discord",result="delivered"} 1`) {
		t.Errorf("metrics lack the first send:\n%s", grepLines(metrics, "herald_sent_first"))
	}

	code, reply = postStreakyDiscord(t, app, discord.WebhookURL("500500500500500500", "flaky-token"))
	if code != 200 || reply["success"] != true {
		t.Fatalf("reply %d %v, want delivered after one retry", code, reply)
	}
	flaky := 0
	for _, r := range discord.Requests() {
		if r.WebhookID == "500500500500500500" {
			flaky++
		}
	}
	if n := flaky; n != 2 {
		t.Errorf("the flaky webhook got %d requests, want 2", n)
	}
	if n := jobsStored(t, app.js); n != 1 {
		t.Errorf("%d jobs stored, want the one that failed first", n)
	}

	for name, env := range map[string]map[string]string{
		"off":        {"HERALD_INGEST_STREAKY_SEND_FIRST": "false"},
		"short wait": {"HERALD_INGEST_STREAKY_WAIT": "2s"},
	} {
		app := newTestApp(t, env)
		code, reply := postStreakyDiscord(t, app, discord.WebhookURL("123456789012345678", "first-token"))
		if code != 200 || reply["success"] != true {
			t.Fatalf("%s: reply %d %v, want delivered", name, code, reply)
		}
		if n := jobsStored(t, app.js); n != 1 {
			t.Errorf("%s: %d jobs stored, want 1: stored first", name, n)
		}
	}
	testkit.AssertNoSecrets(t, "log", app.Logs.String(), "first-token", "flaky-token", testkit.Key, testSecret)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
