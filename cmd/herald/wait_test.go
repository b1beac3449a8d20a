package main

import (
	"context"
	"strings"
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
	if msg, _ := reply["error"].(string); code != 200 || reply["success"] != false || !strings.Contains(msg, "Unknown Webhook") {
		t.Fatalf("reply %d %v, want the failure with its reason", code, reply)
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
	if code != 200 || reply["success"] != true || reply["queued"] != true || id == "" {
		t.Fatalf("reply %d %v, want queued with the id", code, reply)
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
