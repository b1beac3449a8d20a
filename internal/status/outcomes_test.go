package status_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/testkit/relay"
	"github.com/nats-io/nats.go/jetstream"
)

func newOutcomes(t *testing.T, store *status.Store) *status.Outcomes {
	t.Helper()
	o, err := store.Outcomes()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

func wait(t *testing.T, o *status.Outcomes, id string) *status.Wait {
	t.Helper()
	w, err := o.Wait(id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// serverSubs is the number of subscriptions e's server holds.
func serverSubs(e *relay.Env) uint32 { return e.Server.NATS().NumSubscriptions() }

func TestOutcomesSeeWritesOfAnotherProcess(t *testing.T) {
	e, store, kv := newTestStore(t)
	// The worker writes through its own connection, as in production.
	worker := storeOn(t, e)
	ctx := testCtx(t)
	o := newOutcomes(t, store)

	// A thousand waiting requests cost no subscription of their own.
	before := serverSubs(e)
	waits := make([]*status.Wait, 1000)
	for i := range waits {
		waits[i] = wait(t, o, fmt.Sprintf("job-%d", i))
	}
	if after := serverSubs(e); after != before {
		t.Errorf("the server holds %d subscriptions with 1,000 waits, %d without", after, before)
	}
	if n := o.Waiting(); n != 1000 {
		t.Errorf("Waiting = %d, want 1000", n)
	}

	done := make(chan struct{})
	defer func() { <-done }() // the worker's last Put may still await its ack
	go func() {
		defer close(done)
		for _, st := range []herald.State{herald.StateDelivering, herald.StateDelivering, herald.StateDelivered} {
			if err := worker.Put(context.Background(), herald.Status{ID: "job-7", State: st, Attempts: 2}); err != nil {
				t.Error(err)
			}
		}
	}()
	got, err := waits[7].Final(ctx)
	if err != nil {
		t.Fatalf("Final: %v", err)
	}
	if got.State != herald.StateDelivered || got.ID != "job-7" || got.Attempts != 2 {
		t.Errorf("Final = %+v, want the delivered record", got)
	}
	// Settled waits leave the map; the others stay.
	if n := o.Waiting(); n != 999 {
		t.Errorf("Waiting = %d after one outcome, want 999", n)
	}
	// Outcomes is a plain subscription, not a JetStream consumer.
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.(*jetstream.KeyValueBucketStatus).StreamInfo().State.Consumers; n != 0 {
		t.Errorf("the bucket has %d consumers, want 0", n)
	}
	for _, w := range waits {
		w.Stop()
	}
	if n := o.Waiting(); n != 0 {
		t.Errorf("Waiting = %d after every Stop, want 0", n)
	}
}

func TestOutcomesIgnoreOtherJobsAndNonFinal(t *testing.T) {
	_, store, _ := newTestStore(t)
	ctx := testCtx(t)
	o := newOutcomes(t, store)
	w := wait(t, o, "mine")
	if err := store.Put(ctx, herald.Status{ID: "other", State: herald.StateDelivered}); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, herald.Status{ID: "mine", State: herald.StateDelivering}); err != nil {
		t.Fatal(err)
	}
	o.Settle(herald.Status{ID: "mine", State: herald.StateDelivering})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if got, err := w.Final(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Final = %+v, %v; want DeadlineExceeded while the job is delivering", got, err)
	}

	// A wait that gave up takes no record any more: its request answered
	// without the outcome, so the job must keep its record.
	if o.Settle(herald.Status{ID: "mine", State: herald.StateDead, LastError: "gone"}) {
		t.Error("Settle reported a record taken by a wait that gave up")
	}
}

func TestOutcomesSettleHandsOverWithoutAWrite(t *testing.T) {
	_, store, _ := newTestStore(t)
	ctx := testCtx(t)
	o := newOutcomes(t, store)
	a, b := wait(t, o, "local"), wait(t, o, "local") // two requests, one job
	if o.Settle(herald.Status{ID: "local", State: herald.StateDelivering}) {
		t.Error("Settle reported a record that is not final taken")
	}
	if !o.Settle(herald.Status{ID: "local", State: herald.StateFailed, LastError: "Discord API error: 404"}) {
		t.Error("Settle reported the final record not taken by the waiting requests")
	}
	for _, w := range []*status.Wait{a, b} {
		got, err := w.Final(ctx)
		if err != nil || got.State != herald.StateFailed || got.LastError != "Discord API error: 404" {
			t.Fatalf("Final = %+v, %v; want the settled record", got, err)
		}
	}
	// Nothing was written: the hand-over is in memory.
	if _, err := store.Get(ctx, "local"); !errors.Is(err, status.ErrNotFound) {
		t.Errorf("Get = %v, want ErrNotFound", err)
	}
	// The record written later is not handed over twice (nobody waits), and
	// a second Settle does not block.
	if o.Settle(herald.Status{ID: "local", State: herald.StateDelivered}) {
		t.Error("Settle reported a record taken with nobody waiting")
	}
	if n := o.Waiting(); n != 0 {
		t.Errorf("Waiting = %d, want 0", n)
	}
}

func TestOutcomesLastLookOnContextEnd(t *testing.T) {
	_, store, _ := newTestStore(t)
	ctx := testCtx(t)
	o := newOutcomes(t, store)
	// The record became final before the wait existed (a duplicate publish
	// of a delivered job): the subscription missed the write, the last look
	// finds it.
	if err := store.Put(ctx, herald.Status{ID: "done", State: herald.StateFailed}); err != nil {
		t.Fatal(err)
	}
	w := wait(t, o, "done")
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	got, err := w.Final(short)
	if err != nil || got.State != herald.StateFailed {
		t.Fatalf("Final = %+v, %v; want the failed record from the last look", got, err)
	}
}

func TestOutcomesSkipDeletesAndGarbage(t *testing.T) {
	_, store, kv := newTestStore(t)
	ctx := testCtx(t)
	o := newOutcomes(t, store)
	w := wait(t, o, "job-x")
	if _, err := kv.Put(ctx, "job-x", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "job-x", []byte(`{"id":"job-y","state":"delivered"}`)); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "job-x"); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, herald.Status{ID: "job-x", State: herald.StateDelivered}); err != nil {
		t.Fatal(err)
	}
	got, err := w.Final(ctx)
	if err != nil || got.State != herald.StateDelivered || got.ID != "job-x" {
		t.Fatalf("Final = %+v, %v", got, err)
	}
}

func TestOutcomesStopAndClose(t *testing.T) {
	_, store, _ := newTestStore(t)
	o := newOutcomes(t, store)
	if _, err := o.Wait("bad id"); !errors.Is(err, status.ErrNotFound) {
		t.Errorf("Wait(invalid) = %v, want ErrNotFound", err)
	}
	w := wait(t, o, "stopme")
	w.Stop()
	w.Stop() // idempotent
	if n := o.Waiting(); n != 0 {
		t.Errorf("Waiting = %d after Stop, want 0", n)
	}
	o.Close()
	if _, err := o.Wait("late"); !errors.Is(err, status.ErrClosed) {
		t.Errorf("Wait after Close = %v, want ErrClosed", err)
	}

	noConn := status.New(nil, nil)
	if _, err := noConn.Outcomes(); err == nil {
		t.Error("Outcomes without a connection succeeded")
	}
}

// A record settled while Final gives up is either returned by Final or
// reported not taken: never both lost.
func TestOutcomesSettleRacingTheDeadline(t *testing.T) {
	_, store, _ := newTestStore(t)
	o := newOutcomes(t, store)
	for i := range 200 {
		id := fmt.Sprintf("race-%d", i)
		w := wait(t, o, id)
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*100*time.Microsecond)
		taken := make(chan bool, 1)
		go func() { taken <- o.Settle(herald.Status{ID: id, State: herald.StateDelivered}) }()
		rec, err := w.Final(ctx)
		cancel()
		answered := err == nil && rec.State == herald.StateDelivered
		if took := <-taken; took != answered {
			t.Fatalf("%s: Settle reported taken=%v, Final answered %v (%+v, %v)", id, took, answered, rec, err)
		}
	}
}
