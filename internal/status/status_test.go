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
	if err := store.Put(ctx, herald.Status{ID: "job-1", State: herald.StateDelivering, Attempts: 1, LastError: "discord API error: 500", UpdatedAt: at}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err = store.Get(ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != herald.StateDelivering || got.Attempts != 1 || got.LastError != "discord API error: 500" || !got.UpdatedAt.Equal(at) {
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

func TestWatchSeesLaterPut(t *testing.T) {
	e, store, kv := newTestStore(t)
	// The worker writes through its own connection, as in production.
	worker := storeOn(t, e)
	ctx := testCtx(t)

	w, err := store.Watch("job-w")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	done := make(chan struct{})
	defer func() { <-done }() // the worker's last Put may still await its ack
	go func() {
		defer close(done)
		for _, st := range []herald.State{herald.StateQueued, herald.StateDelivering, herald.StateDelivering, herald.StateDelivered} {
			if err := worker.Put(context.Background(), herald.Status{ID: "job-w", State: st, Attempts: 2}); err != nil {
				t.Error(err)
			}
		}
	}()
	got, err := w.Final(ctx)
	if err != nil {
		t.Fatalf("Final: %v", err)
	}
	if got.State != herald.StateDelivered || got.ID != "job-w" || got.Attempts != 2 {
		t.Errorf("Final = %+v, want the delivered record", got)
	}
	// A watch is a plain subscription, not a JetStream consumer.
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.(*jetstream.KeyValueBucketStatus).StreamInfo().State.Consumers; n != 0 {
		t.Errorf("the bucket has %d consumers, want 0", n)
	}
}

func TestWatchIgnoresOtherJobsAndNonFinal(t *testing.T) {
	_, store, _ := newTestStore(t)
	ctx := testCtx(t)
	w, err := store.Watch("mine")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := store.Put(ctx, herald.Status{ID: "other", State: herald.StateDelivered}); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, herald.Status{ID: "mine", State: herald.StateDelivering}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if got, err := w.Final(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Final = %+v, %v; want DeadlineExceeded while the job is delivering", got, err)
	}

	// Still usable after a timed-out wait.
	if err := store.Put(ctx, herald.Status{ID: "mine", State: herald.StateDead, LastError: "gone"}); err != nil {
		t.Fatal(err)
	}
	got, err := w.Final(ctx)
	if err != nil || got.State != herald.StateDead {
		t.Fatalf("Final = %+v, %v; want dead", got, err)
	}
}

func TestFinalLastLookOnContextEnd(t *testing.T) {
	_, store, _ := newTestStore(t)
	ctx := testCtx(t)
	// The record became final before the watch existed (a duplicate publish
	// of a delivered job): the watch misses the write, the last look finds it.
	if err := store.Put(ctx, herald.Status{ID: "done", State: herald.StateFailed}); err != nil {
		t.Fatal(err)
	}
	w, err := store.Watch("done")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	got, err := w.Final(short)
	if err != nil || got.State != herald.StateFailed {
		t.Fatalf("Final = %+v, %v; want the failed record from the last look", got, err)
	}
}

func TestFinalSkipsDeletesAndGarbage(t *testing.T) {
	_, store, kv := newTestStore(t)
	ctx := testCtx(t)
	w, err := store.Watch("job-x")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := kv.Put(ctx, "job-x", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "job-x"); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, herald.Status{ID: "job-x", State: herald.StateDelivered}); err != nil {
		t.Fatal(err)
	}
	got, err := w.Final(ctx)
	if err != nil || got.State != herald.StateDelivered {
		t.Fatalf("Final = %+v, %v", got, err)
	}
}

func TestWatchStop(t *testing.T) {
	_, store, _ := newTestStore(t)
	if _, err := store.Watch("bad id"); !errors.Is(err, status.ErrNotFound) {
		t.Errorf("Watch(invalid) = %v, want ErrNotFound", err)
	}
	w, err := store.Watch("stopme")
	if err != nil {
		t.Fatal(err)
	}
	w.Stop()
	w.Stop() // idempotent

	noConn := status.New(nil, nil)
	if _, err := noConn.Watch("x"); err == nil {
		t.Error("Watch without a connection succeeded")
	}
}
