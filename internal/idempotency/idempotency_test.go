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
	kv, err := idempotency.EnsureBucket(testkit.Context(t, 10*time.Second), js, window, 0)
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
	if _, err := idempotency.EnsureBucket(ctx, js, time.Millisecond, 1); err == nil {
		t.Fatal("a window under a second was accepted")
	}
	kv, err := idempotency.EnsureBucket(ctx, js, 0, 0)
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
