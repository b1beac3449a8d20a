package idempotency_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/idempotency"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

func newStore(t testing.TB, window time.Duration) (*idempotency.Store, jetstream.JetStream) {
	t.Helper()
	_, _, js := testkit.JetStream(t)
	kv, err := idempotency.EnsureBucket(testkit.Context(t, 10*time.Second), js, window, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return idempotency.New(kv), js
}

// Of requests racing with one key exactly one claims it; the others read
// its entry. Marking it stored twice is harmless; a released entry is
// claimed afresh.
func TestClaimStoredRelease(t *testing.T) {
	s, _ := newStore(t, time.Hour)
	ctx := testkit.Context(t, 10*time.Second)
	const n = 20
	var wg sync.WaitGroup
	results := make(chan idempotency.Entry, n)
	claims := make(chan bool, n)
	for i := range n {
		wg.Go(func() {
			e, claimed, err := s.Claim(ctx, "k1", herald.NewID(), "fp")
			if err != nil {
				t.Error(i, err)
				return
			}
			results <- e
			claims <- claimed
		})
	}
	wg.Wait()
	close(results)
	close(claims)
	ids, won := map[string]bool{}, 0
	for e := range results {
		ids[e.ID] = true
	}
	for c := range claims {
		if c {
			won++
		}
	}
	if won != 1 || len(ids) != 1 {
		t.Fatalf("%d claims won, %d ids seen; want 1 and 1", won, len(ids))
	}

	e, claimed, err := s.Claim(ctx, "k2", "job-2", "fp2")
	if err != nil || !claimed || e.Stored {
		t.Fatalf("claim: %+v %v %v", e, claimed, err)
	}
	if err := s.Stored(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := s.Stored(ctx, e); !errors.Is(err, idempotency.ErrChanged) {
		t.Fatalf("second mark = %v, want ErrChanged", err)
	}
	held, claimed, err := s.Claim(ctx, "k2", "job-other", "fp2")
	if err != nil || claimed || !held.Stored || held.ID != "job-2" || held.Fingerprint != "fp2" {
		t.Fatalf("reuse: %+v %v %v", held, claimed, err)
	}

	e, _, _ = s.Claim(ctx, "k3", "job-3", "fp3")
	if err := s.Release(ctx, e); err != nil {
		t.Fatal(err)
	}
	again, claimed, err := s.Claim(ctx, "k3", "job-3b", "fp3")
	if err != nil || !claimed || again.ID != "job-3b" {
		t.Fatalf("after release: %+v %v %v", again, claimed, err)
	}
	// A pending entry released by its first request after another stored
	// its job (resolving it) is written again, stored.
	if err := s.Release(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := s.Stored(ctx, again); err != nil {
		t.Fatalf("mark after release: %v", err)
	}
	if held, claimed, _ := s.Claim(ctx, "k3", "job-3c", "fp3"); claimed || !held.Stored || held.ID != "job-3b" {
		t.Fatalf("after mark: %+v %v", held, claimed)
	}
}

func TestEnsureBucketWindow(t *testing.T) {
	_, _, js := testkit.JetStream(t)
	ctx := testkit.Context(t, 10*time.Second)
	if _, err := idempotency.EnsureBucket(ctx, js, time.Millisecond, 0, 1); err == nil {
		t.Fatal("a window under a second was accepted")
	}
	kv, err := idempotency.EnsureBucket(ctx, js, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != idempotency.DefaultWindow || st.History() != 1 {
		t.Fatalf("bucket TTL %s history %d", st.TTL(), st.History())
	}
}

// A full bucket refuses new keys (ErrFull, with when its oldest key
// expires), and nothing of them is kept; keys it holds are still read,
// marked stored and released, and a released key's room is claimed again.
// Ensuring the bucket again with another bound applies it.
func TestBucketBound(t *testing.T) {
	_, _, js := testkit.JetStream(t)
	ctx := testkit.Context(t, 10*time.Second)
	kv, err := idempotency.EnsureBucket(ctx, js, time.Hour, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := idempotency.New(kv)
	held := make([]idempotency.Entry, 3)
	for i := range held {
		if held[i], _, err = s.Claim(ctx, "k"+strconv.Itoa(i), "job-"+strconv.Itoa(i), "fp"); err != nil {
			t.Fatal(i, err)
		}
	}
	_, claimed, err := s.Claim(ctx, "k3", "job-3", "fp")
	var full *idempotency.FullError
	if claimed || !errors.Is(err, idempotency.ErrFull) || !errors.As(err, &full) {
		t.Fatalf("claim in a full bucket: %v %v, want ErrFull", claimed, err)
	}
	if full.RetryAfter < 59*time.Minute || full.RetryAfter > time.Hour {
		t.Errorf("RetryAfter %s, want about the window (the oldest key was just written)", full.RetryAfter)
	}
	if _, ok, err := s.Held(ctx, "k3"); ok || err != nil {
		t.Fatalf("the refused key is held: %v %v", ok, err)
	}
	// Held keys: read, marked stored, released, all in the full bucket.
	if e, ok, err := s.Held(ctx, "k0"); !ok || err != nil || e.ID != "job-0" || e.Stored {
		t.Fatalf("Held(k0) = %+v %v %v", e, ok, err)
	}
	if e, claimed, err := s.Claim(ctx, "k0", "job-other", "fp"); claimed || err != nil || e.ID != "job-0" {
		t.Fatalf("a held key's reuse in a full bucket: %+v %v %v", e, claimed, err)
	}
	if err := s.Stored(ctx, held[0]); err != nil {
		t.Fatalf("mark stored in a full bucket: %v", err)
	}
	if err := s.Release(ctx, held[1]); err != nil {
		t.Fatalf("release in a full bucket: %v", err)
	}
	// The released key's marker takes its room until it expires, or until
	// the key is claimed again.
	if _, _, err := s.Claim(ctx, "k3", "job-3", "fp"); !errors.Is(err, idempotency.ErrFull) {
		t.Fatalf("claim after a release: %v, want ErrFull (the marker holds the room)", err)
	}
	if _, claimed, err := s.Claim(ctx, "k1", "job-1b", "fp"); !claimed || err != nil {
		t.Fatalf("the released key claimed again: %v %v", claimed, err)
	}
	// A larger bound makes room; a smaller one keeps what is held and
	// refuses new keys.
	if _, err := idempotency.EnsureBucket(ctx, js, time.Hour, 4, 0); err != nil {
		t.Fatal(err)
	}
	if _, claimed, err := s.Claim(ctx, "k3", "job-3", "fp"); !claimed || err != nil {
		t.Fatalf("claim after raising the bound: %v %v", claimed, err)
	}
	if _, err := idempotency.EnsureBucket(ctx, js, time.Hour, 2, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Claim(ctx, "k4", "job-4", "fp"); !errors.Is(err, idempotency.ErrFull) {
		t.Fatalf("claim over a lowered bound: %v, want ErrFull", err)
	}
	if e, ok, _ := s.Held(ctx, "k2"); !ok || e.ID != "job-2" {
		t.Fatalf("a key held before the bound was lowered: %+v %v", e, ok)
	}
}

// liveHeap is the heap in use after two collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkKeyCost measures what each Idempotency-Key costs the NATS server
// (embedded, file storage) while it is kept (ingest.idempotency_window): the
// heap it holds and the bytes of store, over 50,000 keys each claimed and
// marked stored as a request does. Multiply by the keyed requests per window
// for a deployment's figure.
//
//	go test ./internal/idempotency -run '^$' -bench KeyCost -benchtime 1x
func BenchmarkKeyCost(b *testing.B) {
	const n = 50_000
	s, js := newStore(b, 24*time.Hour)
	ctx := context.Background()
	scope := "0123456789abcdef0123456789abcdef"
	for i := range b.N {
		h0 := liveHeap()
		for k := range n {
			key := herald.IDFromKey(scope, strconv.Itoa(i)+"-"+strconv.Itoa(k))
			// An owned job id and a fingerprint, as the ingest writes them.
			e, claimed, err := s.Claim(ctx, key, herald.NewID()+"_abcdefghij", "0123456789abcdefghijkl")
			if err != nil || !claimed {
				b.Fatal(claimed, err)
			}
			if err := s.Stored(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
		h1 := liveHeap()
		// The file store keeps recently written blocks cached for a few
		// seconds; what stays after is what a key costs for its window.
		time.Sleep(15 * time.Second)
		h2 := liveHeap()
		st, err := js.Stream(ctx, "KV_"+idempotency.Bucket)
		if err != nil {
			b.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(h1-h0)/n, "B-heap-written/key")
		b.ReportMetric(float64(h2-h0)/n, "B-heap-kept/key")
		b.ReportMetric(float64(info.State.Bytes)/float64(info.State.Msgs), "B-store/key")
	}
}

// BenchmarkBoundedKeys shows the bound at work: twice as many fresh keys as
// the bucket may hold (50,000) are claimed, as a client sending a new key
// with every request does; the bucket keeps the first 50,000 and refuses
// the rest, and the NATS server's heap holds what the kept keys cost and no
// more. The default bound, 200,000 keys, is four times this.
//
//	go test ./internal/idempotency -run '^$' -bench BoundedKeys -benchtime 1x
func BenchmarkBoundedKeys(b *testing.B) {
	const bound, n = 50_000, 100_000
	_, _, js := testkit.JetStream(b)
	ctx := context.Background()
	kv, err := idempotency.EnsureBucket(ctx, js, 24*time.Hour, bound, 0)
	if err != nil {
		b.Fatal(err)
	}
	s := idempotency.New(kv)
	scope := "0123456789abcdef0123456789abcdef"
	for i := range b.N {
		h0 := liveHeap()
		refused := 0
		for k := range n {
			key := herald.IDFromKey(scope, strconv.Itoa(i)+"-"+strconv.Itoa(k))
			e, claimed, err := s.Claim(ctx, key, herald.NewID()+"_abcdefghij", "0123456789abcdefghijkl")
			if errors.Is(err, idempotency.ErrFull) {
				refused++
				continue
			}
			if err != nil || !claimed {
				b.Fatal(claimed, err)
			}
			if err := s.Stored(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(15 * time.Second) // as BenchmarkKeyCost: past the write cache
		h := liveHeap()
		st, err := kv.Status(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Values()), "keys-kept")
		b.ReportMetric(float64(refused), "keys-refused")
		b.ReportMetric(float64(h-h0)/1e6, "MB-heap-kept")
		b.ReportMetric(float64(st.Bytes())/1e6, "MB-store")
	}
}
