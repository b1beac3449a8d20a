package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

// countingStore counts the store calls a Limiter makes.
type countingStore struct {
	store
	gets, updates atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	s.gets.Add(1)
	return s.store.Get(ctx, key)
}

func (s *countingStore) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	s.updates.Add(1)
	return s.store.Update(ctx, key, value, revision)
}

// run starts l.Run until the end of the test.
func run(t *testing.T, l *Limiter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := l.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// knownRev is the revision l knows for the bucket of key in group.
func knownRev(l *Limiter, group, key string) uint64 {
	e := l.entries.peek(storeKey(group, key))
	if e == nil {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.known {
		return 0
	}
	return e.rev
}

// TestRunKeepsReplicasCurrent: with Run, a replica learns of the other's
// writes as they happen, and decides with one write instead of a lost write,
// a read and a write.
func TestRunKeepsReplicasCurrent(t *testing.T) {
	s := testkit.NewServer(t)
	clock := newFakeClock()
	cfg := Config{Default: Bucket{MaxTokens: 3, RefillRate: 1, RefillTime: time.Hour}}
	a, b := newReplica(t, s, cfg, clock), newReplica(t, s, cfg, clock)
	counted := &countingStore{store: b.lim.kv}
	b.lim.kv = counted
	run(t, a.lim)
	run(t, b.lim)
	// Run's watch starts asynchronously: wait until b sees a's writes (of
	// another bucket, which a's Reset writes every time).
	const probe = "probe"
	take(t, b.lim, GroupAPI, probe)
	take(t, a.lim, GroupAPI, probe)
	testkit.WaitFor(t, 10*time.Second, "b's watch", func() bool {
		if err := a.lim.Reset(testCtx(t), GroupAPI, probe); err != nil {
			t.Fatal(err)
		}
		return knownRev(b.lim, GroupAPI, probe) == knownRev(a.lim, GroupAPI, probe)
	})

	take(t, b.lim, GroupAPI, testKey) // b knows the bucket: 2 left
	take(t, a.lim, GroupAPI, testKey)
	take(t, a.lim, GroupAPI, testKey)
	rev := knownRev(a.lim, GroupAPI, testKey)
	testkit.WaitFor(t, 10*time.Second, "b to see a's writes", func() bool { return knownRev(b.lim, GroupAPI, testKey) == rev })
	// a took the last tokens: b refuses without a store call.
	gets, updates := counted.gets.Load(), counted.updates.Load()
	if d := take(t, b.lim, GroupAPI, testKey); d.Allowed {
		t.Fatalf("b admitted from a bucket a emptied: %+v", d)
	}
	if counted.gets.Load() != gets || counted.updates.Load() != updates {
		t.Errorf("refusal cost %d reads and %d writes, want none", counted.gets.Load()-gets, counted.updates.Load()-updates)
	}
	// a's Reset reaches b at once, not after refusalFreshness.
	if err := a.lim.Reset(testCtx(t), GroupAPI, testKey); err != nil {
		t.Fatal(err)
	}
	rev = knownRev(a.lim, GroupAPI, testKey)
	testkit.WaitFor(t, 10*time.Second, "b to see the reset", func() bool { return knownRev(b.lim, GroupAPI, testKey) == rev })
	gets, updates = counted.gets.Load(), counted.updates.Load()
	if d := take(t, b.lim, GroupAPI, testKey); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("b after a's Reset: %+v", d)
	}
	if counted.gets.Load() != gets || counted.updates.Load() != updates+1 {
		t.Errorf("admission cost %d reads and %d writes, want one write", counted.gets.Load()-gets, counted.updates.Load()-updates)
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	s := testkit.NewServer(t)
	r := newReplica(t, s, Config{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.lim.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
