package status_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"
	"github.com/nats-io/nats.go/jetstream"
)

// newTestStore starts a relay env (a server with the jobs stream and the
// status bucket) and returns it, its Store and the bucket.
func newTestStore(t *testing.T) (*relay.Env, *status.Store, jetstream.KeyValue) {
	t.Helper()
	e := relay.New(t)
	kv, err := e.JS.KeyValue(testCtx(t), herald.StatusBucket)
	if err != nil {
		t.Fatal(err)
	}
	return e, e.Status, kv
}

// storeOn returns a Store on a connection of its own to e's server, as a
// worker writes in production.
func storeOn(t *testing.T, e *relay.Env) *status.Store {
	t.Helper()
	nc, js := e.Server.Connect()
	kv, err := queue.EnsureStatusBucket(testCtx(t), js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	return status.New(kv, nc)
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	return testkit.Context(t, 20*time.Second)
}

func TestQueuedPutGet(t *testing.T) {
	_, store, _ := newTestStore(t)
	ctx := testCtx(t)
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	if err := store.Queued(ctx, herald.Status{ID: "job-1", Channel: herald.ChannelDiscord, CreatedAt: created}); err != nil {
		t.Fatalf("Queued: %v", err)
	}
	got, err := store.Get(ctx, "job-1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.ID != "job-1" || got.State != herald.StateQueued || got.Channel != herald.ChannelDiscord || !got.CreatedAt.Equal(created) {
		t.Errorf("record = %+v", got)
	}
	if got.UpdatedAt.IsZero() || time.Since(got.UpdatedAt) > time.Minute {
		t.Errorf("UpdatedAt = %v, want about now", got.UpdatedAt)
	}

	at := time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)
	if err := store.Put(ctx, herald.Status{ID: "job-1", State: herald.StateDelivering, Attempts: 1, LastError: "Discord API error: 500", UpdatedAt: at}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err = store.Get(ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != herald.StateDelivering || got.Attempts != 1 || got.LastError != "Discord API error: 500" || !got.UpdatedAt.Equal(at) {
		t.Errorf("record after Put = %+v", got)
	}
}

func TestQueuedDoesNotOverwriteLaterState(t *testing.T) {
	_, store, _ := newTestStore(t)
	ctx := testCtx(t)
	// A fast worker delivered the job before the ingest wrote "queued".
	if err := store.Put(ctx, herald.Status{ID: "fast", State: herald.StateDelivered, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	if err := store.Queued(ctx, herald.Status{ID: "fast"}); err != nil {
		t.Fatalf("Queued over an existing record = %v, want nil", err)
	}
	got, err := store.Get(ctx, "fast")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != herald.StateDelivered {
		t.Errorf("state = %s, want delivered kept", got.State)
	}
}

func TestGetNotFound(t *testing.T) {
	_, store, _ := newTestStore(t)
	ctx := testCtx(t)
	for _, id := range []string{"missing", "", "bad id", "a.b", "*", ">", string(make([]byte, 65))} {
		if _, err := store.Get(ctx, id); !errors.Is(err, status.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestInvalidRecordsRefused(t *testing.T) {
	_, store, _ := newTestStore(t)
	ctx := testCtx(t)
	if err := store.Put(ctx, herald.Status{ID: "a.b", State: herald.StateQueued}); err == nil {
		t.Error("Put with an invalid id succeeded")
	}
	if err := store.Put(ctx, herald.Status{ID: "ok"}); err == nil {
		t.Error("Put without a state succeeded")
	}
	if err := store.Queued(ctx, herald.Status{ID: ""}); err == nil {
		t.Error("Queued without an id succeeded")
	}
}

// With WithDeliveredTTL, a delivered record expires on its own TTL; the
// records of other states keep the bucket's.
func TestDeliveredTTL(t *testing.T) {
	e, _, _ := newTestStore(t)
	ctx := testCtx(t)
	nc, js := e.Server.Connect()
	kv, err := queue.EnsureStatusBucket(ctx, js, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	store := status.New(kv, nc, status.WithDeliveredTTL(js, time.Second))
	for id, state := range map[string]herald.State{"done": herald.StateDelivered, "dead": herald.StateDead, "retry": herald.StateDelivering} {
		if err := store.Put(ctx, herald.Status{ID: id, State: state}); err != nil {
			t.Fatal(err)
		}
	}
	if rec, err := store.Get(ctx, "done"); err != nil || rec.State != herald.StateDelivered {
		t.Fatalf("Get(done) = %+v, %v before its TTL", rec, err)
	}
	testkit.WaitFor(t, 10*time.Second, "the delivered record to expire", func() bool {
		_, err := store.Get(ctx, "done")
		return errors.Is(err, status.ErrNotFound)
	})
	for _, id := range []string{"dead", "retry"} {
		if _, err := store.Get(ctx, id); err != nil {
			t.Errorf("Get(%s) = %v: expired with the delivered record", id, err)
		}
	}
}
