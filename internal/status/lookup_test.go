package status_test

import (
	"errors"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/nats-io/nats.go/jetstream"
)

// newLookupStore returns a Store built WithJobs on a relay env (a server
// with the jobs stream and the status bucket), and the JetStream context the
// jobs stream is reached with.
func newLookupStore(t *testing.T) (*status.Store, jetstream.JetStream) {
	t.Helper()
	e, _, kv := newTestStore(t)
	jobs, err := e.JS.Stream(testCtx(t), herald.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	return status.New(kv, e.NC, status.WithJobs(jobs)), e.JS
}

func TestLookup(t *testing.T) {
	store, js := newLookupStore(t)
	ctx := testCtx(t)
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	publish := func(subject, body string) {
		t.Helper()
		if _, err := js.Publish(ctx, subject, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	publish(herald.JobIDSubject(herald.ChannelTelegram, "waiting"), `{"v":1,"id":"waiting","channel":"telegram","created_at":"2026-01-02T03:04:05Z"}`)
	publish(herald.JobIDSubject(herald.ChannelDiscord, "retrying"), `{"v":1,"id":"retrying","channel":"discord"}`)
	publish(herald.JobSubject(herald.ChannelDiscord), `{"v":1,"id":"by-channel","channel":"discord"}`)
	publish(herald.JobIDSubject(herald.ChannelDiscord, "garbage"), `not json`)
	if err := store.Put(ctx, herald.Status{ID: "retrying", Channel: herald.ChannelDiscord, State: herald.StateDelivering, Attempts: 2}); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, herald.Status{ID: "done", Channel: herald.ChannelDiscord, State: herald.StateDelivered}); err != nil {
		t.Fatal(err)
	}

	t.Run("in the stream, no record", func(t *testing.T) {
		got, err := store.Lookup(ctx, "waiting")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != "waiting" || got.State != herald.StateQueued || got.Channel != herald.ChannelTelegram ||
			!got.CreatedAt.Equal(created) || got.Attempts != 0 || got.UpdatedAt.IsZero() {
			t.Errorf("Lookup = %+v", got)
		}
	})
	t.Run("record wins over the stream", func(t *testing.T) {
		got, err := store.Lookup(ctx, "retrying")
		if err != nil || got.State != herald.StateDelivering || got.Attempts != 2 {
			t.Errorf("Lookup = %+v, %v", got, err)
		}
	})
	t.Run("record only", func(t *testing.T) {
		got, err := store.Lookup(ctx, "done")
		if err != nil || got.State != herald.StateDelivered {
			t.Errorf("Lookup = %+v, %v", got, err)
		}
	})
	t.Run("undecodable job is still queued", func(t *testing.T) {
		got, err := store.Lookup(ctx, "garbage")
		if err != nil || got.State != herald.StateQueued || got.Channel != herald.ChannelDiscord || !got.CreatedAt.IsZero() {
			t.Errorf("Lookup = %+v, %v", got, err)
		}
	})
	for _, id := range []string{"by-channel", "nowhere", "not valid", "*", ""} {
		t.Run("not found "+id, func(t *testing.T) {
			if got, err := store.Lookup(ctx, id); !errors.Is(err, status.ErrNotFound) {
				t.Errorf("Lookup(%q) = %+v, %v; want ErrNotFound", id, got, err)
			}
		})
	}
}

func TestLookupWithoutJobs(t *testing.T) {
	e, store, _ := newTestStore(t)
	ctx := testCtx(t)
	_, js := e.Server.Connect()
	if _, err := queue.EnsureJobsStream(ctx, js, queue.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, herald.JobIDSubject(herald.ChannelDiscord, "j1"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Lookup(ctx, "j1"); !errors.Is(err, status.ErrNotFound) {
		t.Errorf("Lookup without WithJobs = %v, want ErrNotFound", err)
	}
}
