package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/idempotency"
	"github.com/heraldrelay/herald/internal/testkit"
)

// keyedCall posts body to /v1/notifications with Idempotency-Key key.
func keyedCall(t *testing.T, app *testApp, key, body string) (int, map[string]any) {
	t.Helper()
	code, _, out := keyedAs(t, app, testSecret, key, body)
	return code, out
}

// jobsLastSeq is the jobs stream's last sequence: it moves with every job
// stored, delivered or not.
func jobsLastSeq(t *testing.T, app *testApp) uint64 {
	t.Helper()
	st, err := app.js.Stream(context.Background(), herald.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// The case, against a real Herald: a key reused after the stream's
// duplicate window (shortened here to a second) used to give the same id
// with "duplicate":false and deliver the message twice. It now stores
// nothing: one delivery. Past ingest.idempotency_window (a second here) the
// key is a new job with another id.
func TestServeIdempotencyKeyOutlivesDuplicateWindow(t *testing.T) {
	for _, tc := range []struct {
		name, window string
		// forgotten: the reuse comes after the idempotency window.
		forgotten bool
	}{
		{"inside the idempotency window", "24h", false},
		{"past the idempotency window", "1s", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			discord := fake.NewDiscord(t)
			app := newTestApp(t, map[string]string{
				"HERALD_NATS_STREAM_DUPLICATE_WINDOW": "500ms",
				"HERALD_INGEST_IDEMPOTENCY_WINDOW":    tc.window,
			})
			body := fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"text":"once"}}`,
				testkit.Seal(t, app.Keys, discord.WebhookURL("123456789012345678", "idem-token")))
			code, first := keyedCall(t, app, "deploy-42", body)
			if code != 202 || first["duplicate"] != false {
				t.Fatalf("first: %d %v", code, first)
			}
			testkit.WaitFor(t, 10*time.Second, "the first delivery", func() bool { return discord.Count() == 1 })
			seq := jobsLastSeq(t, app)
			time.Sleep(time.Second) // past the duplicate window
			if tc.forgotten {
				kv, err := app.js.KeyValue(context.Background(), idempotency.Bucket)
				if err != nil {
					t.Fatal(err)
				}
				// The bucket's count, one request: listing the keys
				// watches the bucket and could wait for ever on a key
				// expiring while it reads.
				testkit.WaitFor(t, 10*time.Second, "the key to expire", func() bool {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					defer cancel()
					st, err := kv.Status(ctx)
					return err == nil && st.Values() == 0
				})
			}

			code, again := keyedCall(t, app, "deploy-42", body)
			if code != 202 {
				t.Fatalf("reuse: %d %v", code, again)
			}
			if tc.forgotten {
				if again["id"] == first["id"] || again["duplicate"] != false {
					t.Fatalf("reuse past the window: %v, want a new job with a new id (first %v)", again, first["id"])
				}
				testkit.WaitFor(t, 10*time.Second, "the new job's delivery", func() bool { return discord.Count() == 2 })
				return
			}
			if again["id"] != first["id"] || again["duplicate"] != true {
				t.Fatalf("reuse: %v, want the first id %v with duplicate:true", again, first["id"])
			}
			if s := jobsLastSeq(t, app); s != seq {
				t.Fatalf("the reuse stored a job (stream sequence %d, was %d)", s, seq)
			}
			// A job sent after it is delivered; the reuse never is.
			if code, _ := apiCall(t, app, http.MethodPost, "/v1/notifications", body); code != 202 {
				t.Fatalf("a later job: %d", code)
			}
			testkit.WaitFor(t, 10*time.Second, "the later job's delivery", func() bool { return discord.Count() == 2 })
			if st := getStatus(t, app.URL, first["id"].(string)); st["state"] != string(herald.StateDelivered) {
				t.Errorf("the first job reads %v", st)
			}
		})
	}
}
