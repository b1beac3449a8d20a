package ratelimit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const testKey = "0123456789abcdef0123456789abcdef"

func TestTakeUntilEmpty(t *testing.T) {
	s := testkit.NewServer(t)
	r := newReplica(t, s, Config{Default: Bucket{MaxTokens: 5, RefillRate: 1, RefillTime: 2 * time.Second}}, newFakeClock())
	for i := range 5 {
		d := take(t, r.lim, GroupAPI, testKey)
		if !d.Allowed || d.Remaining != 4-i || d.Fallback {
			t.Fatalf("take %d = %+v, want allowed with %d remaining", i+1, d, 4-i)
		}
	}
	d := take(t, r.lim, GroupAPI, testKey)
	if d.Allowed || d.RetryAfter != 2*time.Second || d.Fallback {
		t.Fatalf("take 6 = %+v, want refused, retry after 2s", d)
	}
	if got := testutil.ToFloat64(r.m.Limited.WithLabelValues(GroupAPI)); got != 1 {
		t.Errorf("limited{api} = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(r.m.LimiterFallbacks); got != 0 {
		t.Errorf("fallbacks counted: %d series", got)
	}
}

func TestStateIsSharedThroughTheStore(t *testing.T) {
	s := testkit.NewServer(t)
	clock := newFakeClock()
	cfg := Config{Default: Bucket{MaxTokens: 3, RefillRate: 1, RefillTime: time.Minute}}
	a := newReplica(t, s, cfg, clock)
	take(t, a.lim, GroupAPI, testKey)
	take(t, a.lim, GroupAPI, testKey)

	// A second instance knows nothing locally and reads the store.
	b := newReplica(t, s, cfg, clock)
	if d := take(t, b.lim, GroupAPI, testKey); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("replica b = %+v, want the last token", d)
	}
	// a's cache is stale now: its write loses the compare-and-swap, it reads
	// and refuses.
	if d := take(t, a.lim, GroupAPI, testKey); d.Allowed {
		t.Fatalf("replica a admitted a 4th request of 3: %+v", d)
	}
	ent, err := a.kv.Get(testCtx(t), storeKey(GroupAPI, testKey))
	if err != nil {
		t.Fatal(err)
	}
	st, ok := decodeState(ent.Value())
	if !ok || st.tokens != 0 || st.at != clock.Now().UnixMilli() {
		t.Errorf("stored %q = %+v, want 0 tokens at now", ent.Value(), st)
	}
}

func TestRefillOverTime(t *testing.T) {
	s := testkit.NewServer(t)
	clock := newFakeClock()
	// 2 tokens every 10 s: one every 5 s.
	r := newReplica(t, s, Config{Default: Bucket{MaxTokens: 3, RefillRate: 2, RefillTime: 10 * time.Second}}, clock)
	for range 3 {
		take(t, r.lim, GroupStreaky, testKey)
	}
	d := take(t, r.lim, GroupStreaky, testKey)
	if d.Allowed || d.RetryAfter != 5*time.Second {
		t.Fatalf("empty bucket: %+v, want refused for 5s", d)
	}
	clock.Advance(4 * time.Second)
	if d := take(t, r.lim, GroupStreaky, testKey); d.Allowed || d.RetryAfter != time.Second {
		t.Fatalf("after 4s: %+v, want refused for 1s more", d)
	}
	clock.Advance(time.Second)
	if d := take(t, r.lim, GroupStreaky, testKey); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after 5s: %+v, want one token", d)
	}
	if d := take(t, r.lim, GroupStreaky, testKey); d.Allowed {
		t.Fatalf("after 5s, second: %+v, want refused", d)
	}
	// Refill stops at MaxTokens.
	clock.Advance(time.Hour)
	for i := range 3 {
		if d := take(t, r.lim, GroupStreaky, testKey); !d.Allowed || d.Remaining != 2-i {
			t.Fatalf("after an hour, take %d: %+v", i+1, d)
		}
	}
	if d := take(t, r.lim, GroupStreaky, testKey); d.Allowed {
		t.Fatalf("a full bucket held more than MaxTokens: %+v", d)
	}
}

func TestGroupsHaveTheirOwnBuckets(t *testing.T) {
	s := testkit.NewServer(t)
	cfg := Config{
		Default: Bucket{MaxTokens: 4, RefillRate: 1, RefillTime: time.Minute},
		Groups:  map[string]Bucket{GroupRegister: {MaxTokens: 1}},
	}
	r := newReplica(t, s, cfg, newFakeClock())
	if d := take(t, r.lim, GroupRegister, testKey); !d.Allowed {
		t.Fatal("register refused its first request")
	}
	if d := take(t, r.lim, GroupRegister, testKey); d.Allowed || d.RetryAfter != time.Minute {
		t.Fatalf("register override: %+v, want 1 token refilled per minute", d)
	}
	for i := range 4 {
		if d := take(t, r.lim, GroupAPI, testKey); !d.Allowed {
			t.Fatalf("api take %d refused: the register bucket leaked into api", i+1)
		}
	}
	if d := take(t, r.lim, GroupAPI, testKey); d.Allowed {
		t.Fatal("api admitted more than its default 4")
	}
	// An unknown group takes the default bucket and an "other" label.
	for range 4 {
		take(t, r.lim, "misc", testKey)
	}
	if d := take(t, r.lim, "misc", testKey); d.Allowed {
		t.Fatal("unknown group admitted more than the default")
	}
	if got := testutil.ToFloat64(r.m.Limited.WithLabelValues("other")); got != 1 {
		t.Errorf("limited{other} = %v, want 1", got)
	}
}

// TestSharedBucketAcrossReplicas hammers one client's bucket from two ingest
// instances, each with its own NATS connection, concurrently: together they
// admit exactly MaxTokens, not twice that.
func TestSharedBucketAcrossReplicas(t *testing.T) {
	s := testkit.NewServer(t)
	clock := newFakeClock() // frozen: no refill during the test
	const maxTokens = 50
	cfg := Config{Default: Bucket{MaxTokens: maxTokens, RefillRate: 1, RefillTime: time.Hour}}
	replicas := []*replica{newReplica(t, s, cfg, clock), newReplica(t, s, cfg, clock)}

	var allowed, refused atomic.Int64
	perReplica := make([]atomic.Int64, len(replicas))
	var wg sync.WaitGroup
	for i, r := range replicas {
		for range 8 {
			wg.Go(func() {
				for range 30 {
					d, err := r.lim.Take(testCtx(t), GroupStreaky, testKey)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Fallback {
						t.Error("decided without the store")
					}
					if d.Allowed {
						allowed.Add(1)
						perReplica[i].Add(1)
					} else {
						refused.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if got := allowed.Load(); got != maxTokens {
		t.Fatalf("two replicas admitted %d requests, want exactly %d (refused %d)", got, maxTokens, refused.Load())
	}
	if refused.Load() != 2*8*30-maxTokens {
		t.Errorf("refused %d", refused.Load())
	}
	t.Logf("admitted per replica: %d + %d", perReplica[0].Load(), perReplica[1].Load())
	for _, r := range replicas {
		if n := testutil.CollectAndCount(r.m.LimiterFallbacks); n != 0 {
			t.Errorf("fallbacks counted")
		}
		if n := testutil.ToFloat64(r.m.StoreErrors.WithLabelValues("ratelimit")); n != 0 {
			t.Errorf("store errors: %v", n)
		}
	}
}

// TestSharedBucketWithRefill: on the real clock, two replicas hammering one
// bucket admit MaxTokens plus what refilled while they ran.
func TestSharedBucketWithRefill(t *testing.T) {
	s := testkit.NewServer(t)
	const maxTokens, perSecond = 20, 10
	cfg := Config{Default: Bucket{MaxTokens: maxTokens, RefillRate: perSecond, RefillTime: time.Second}}
	replicas := []*replica{newReplica(t, s, cfg, nil), newReplica(t, s, cfg, nil)}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	// Paced requests for a second, so that about ten tokens refill (longer
	// if the machine is too busy to take more than the initial tokens).
	for _, r := range replicas {
		for range 4 {
			wg.Go(func() {
				for time.Since(start) < time.Second || allowed.Load() <= maxTokens && time.Since(start) < 20*time.Second {
					time.Sleep(5 * time.Millisecond)
					d, err := r.lim.Take(testCtx(t), GroupAPI, testKey)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	refilled := int64(elapsed.Seconds()*perSecond) + 1
	// At least one token refilled during the second; never more than the
	// elapsed time allows.
	if got := allowed.Load(); got <= maxTokens || got > maxTokens+refilled {
		t.Fatalf("admitted %d in %s, want %d..%d", got, elapsed, maxTokens+1, maxTokens+refilled)
	}
	t.Logf("admitted %d in %s (bucket %d + refill up to %d)", allowed.Load(), elapsed, maxTokens, refilled)
}

// TestConcurrentRequestsShareOneWrite: many requests for one bucket in one
// process are decided in shared store rounds, exactly.
func TestConcurrentRequestsShareOneWrite(t *testing.T) {
	s := testkit.NewServer(t)
	const maxTokens = 100
	r := newReplica(t, s, Config{Default: Bucket{MaxTokens: maxTokens, RefillRate: 1, RefillTime: time.Hour}}, newFakeClock())
	var allowed atomic.Int64
	seen := make([]atomic.Int32, maxTokens)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 10 {
				d, err := r.lim.Take(testCtx(t), GroupAPI, testKey)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
					seen[d.Remaining].Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != maxTokens {
		t.Fatalf("admitted %d, want %d; log:\n%s", got, maxTokens, r.logs.String())
	}
	for i := range seen {
		if seen[i].Load() != 1 {
			t.Errorf("Remaining %d reported %d times, want once", i, seen[i].Load())
		}
	}
	ent, err := r.kv.Get(testCtx(t), storeKey(GroupAPI, testKey))
	if err != nil {
		t.Fatal(err)
	}
	if ent.Revision() > maxTokens+1 {
		t.Errorf("revision %d: more writes than admissions", ent.Revision())
	}
}

func TestStoreDownAllowFallsBackToLocalBucket(t *testing.T) {
	s := testkit.NewServer(t)
	clock := newFakeClock()
	r := newReplica(t, s, Config{Default: Bucket{MaxTokens: 3, RefillRate: 1, RefillTime: time.Hour}}, clock)
	take(t, r.lim, GroupAPI, testKey) // 2 left, known locally

	s.Shutdown()
	testkit.WaitFor(t, 10*time.Second, "disconnect", func() bool { return !r.nc.IsConnected() })

	// The local bucket starts from the last known state: 2 more, then none.
	for i := range 2 {
		d := take(t, r.lim, GroupAPI, testKey)
		if !d.Allowed || !d.Fallback {
			t.Fatalf("fallback take %d = %+v, want allowed by the local bucket", i+1, d)
		}
	}
	if d := take(t, r.lim, GroupAPI, testKey); d.Allowed || !d.Fallback || d.RetryAfter <= 0 {
		t.Fatalf("fallback take 3 = %+v, want refused by the local bucket", d)
	}
	// A client never seen gets a full local bucket.
	other := strings.Repeat("f", 32)
	for range 3 {
		if d := take(t, r.lim, GroupAPI, other); !d.Allowed {
			t.Fatal("new client refused in fallback")
		}
	}
	if d := take(t, r.lim, GroupAPI, other); d.Allowed {
		t.Fatal("fallback bucket does not limit")
	}
	if got := testutil.ToFloat64(r.m.LimiterFallbacks.WithLabelValues("allow")); got != 5 {
		t.Errorf("fallbacks{allow} = %v, want 5", got)
	}
	if got := testutil.ToFloat64(r.m.LimiterFallbacks.WithLabelValues("deny")); got != 2 {
		t.Errorf("fallbacks{deny} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(r.m.StoreErrors.WithLabelValues("ratelimit")); got < 1 {
		t.Errorf("store errors = %v, want at least 1", got)
	}
	if got := testutil.ToFloat64(r.m.Limited.WithLabelValues(GroupAPI)); got != 2 {
		t.Errorf("limited{api} = %v, want 2", got)
	}
	if !strings.Contains(r.logs.String(), "rate-limit store unreachable") {
		t.Errorf("no log line about the store:\n%s", r.logs.String())
	}
}

func TestStoreDownDenyRefuses(t *testing.T) {
	s := testkit.NewServer(t)
	clock := newFakeClock()
	cfg := Config{Default: Bucket{MaxTokens: 3, RefillRate: 1, RefillTime: time.Hour}, OnStoreError: OnStoreErrorDeny}
	r := newReplica(t, s, cfg, clock)
	take(t, r.lim, GroupAPI, testKey)

	// The bucket disappears: the store answers, but cannot count.
	if err := r.js.DeleteKeyValue(testCtx(t), BucketName); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		d, err := r.lim.Take(testCtx(t), GroupAPI, testKey)
		if !errors.Is(err, ErrUnavailable) || d.Allowed || !d.Fallback || d.RetryAfter != UnavailableRetryAfter {
			t.Fatalf("Take = %+v, %v; want refused with ErrUnavailable", d, err)
		}
	}
	if got := testutil.ToFloat64(r.m.LimiterFallbacks.WithLabelValues("deny")); got != 2 {
		t.Errorf("fallbacks{deny} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(r.m.Limited.WithLabelValues(GroupAPI)); got != 0 {
		t.Errorf("an unavailable store counted as a client over its limit")
	}

	// The bucket comes back; after the probe interval the store is used
	// again.
	if _, err := EnsureBucket(testCtx(t), r.js, cfg, 0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * probeInterval)
	d, err := r.lim.Take(testCtx(t), GroupAPI, testKey)
	if err != nil || !d.Allowed || d.Fallback {
		t.Fatalf("after recovery: %+v, %v; want allowed through the store", d, err)
	}
}

func TestResetRefillsForEveryReplica(t *testing.T) {
	s := testkit.NewServer(t)
	clock := newFakeClock()
	cfg := Config{Default: Bucket{MaxTokens: 2, RefillRate: 1, RefillTime: time.Hour}}
	a, b := newReplica(t, s, cfg, clock), newReplica(t, s, cfg, clock)
	take(t, a.lim, GroupChallenge, testKey)
	take(t, a.lim, GroupChallenge, testKey)
	if d := take(t, b.lim, GroupChallenge, testKey); d.Allowed {
		t.Fatal("b admitted from an empty bucket")
	}
	if err := a.lim.Reset(testCtx(t), GroupChallenge, testKey); err != nil {
		t.Fatal(err)
	}
	if d := take(t, a.lim, GroupChallenge, testKey); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("a after Reset: %+v, want a full bucket", d)
	}
	// b knew the bucket empty a moment ago; once that is old news it reads
	// the store again.
	clock.Advance(refusalFreshness)
	if d := take(t, b.lim, GroupChallenge, testKey); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("b after Reset: %+v, want the last token", d)
	}
	if err := a.lim.Reset(testCtx(t), "bad group!", testKey); !errors.Is(err, ErrInvalid) {
		t.Errorf("Reset with a bad group: %v", err)
	}
}

// TestIdleKeysExpire: a counter left alone for KeyTTL leaves the store (the
// bucket's TTL), and a later request starts from a full bucket.
func TestIdleKeysExpire(t *testing.T) {
	s := testkit.NewServer(t)
	cfg := Config{Default: Bucket{MaxTokens: 2, RefillRate: 1, RefillTime: 100 * time.Millisecond}, KeyTTL: time.Second}
	r := newReplica(t, s, cfg, newFakeClock())
	st, err := r.kv.Status(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != time.Second || st.History() != 1 {
		t.Fatalf("bucket TTL %s, history %d; want 1s, 1", st.TTL(), st.History())
	}
	take(t, r.lim, GroupAPI, testKey)
	k := storeKey(GroupAPI, testKey)
	if _, err := r.kv.Get(testCtx(t), k); err != nil {
		t.Fatalf("counter not stored: %v", err)
	}
	testkit.WaitFor(t, 15*time.Second, "the idle key to expire", func() bool {
		_, err := r.kv.Get(testCtx(t), k)
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	// The cached revision is gone from the store: the write loses, reads
	// nothing and creates the key anew.
	if d := take(t, r.lim, GroupAPI, testKey); !d.Allowed || d.Remaining != 1 || d.Fallback {
		t.Fatalf("after expiry: %+v, want a fresh bucket", d)
	}
	if _, err := r.kv.Get(testCtx(t), k); err != nil {
		t.Fatalf("counter not recreated: %v", err)
	}
}

func TestCacheEvictionKeepsCounting(t *testing.T) {
	s := testkit.NewServer(t)
	cfg := Config{Default: Bucket{MaxTokens: 2, RefillRate: 1, RefillTime: time.Hour}, CacheSize: 2}
	r := newReplica(t, s, cfg, newFakeClock())
	keys := []string{"k1", "k2", "k3", "k4", "k5"}
	for round := range 3 {
		for _, k := range keys {
			d := take(t, r.lim, GroupAPI, k)
			if want := round < 2; d.Allowed != want {
				t.Fatalf("round %d key %s: allowed %v, want %v", round, k, d.Allowed, want)
			}
		}
	}
	if n := r.lim.entries.len(); n > 2 {
		t.Errorf("cache holds %d entries, bound 2", n)
	}
}

func TestUnreadableCounterIsReplaced(t *testing.T) {
	s := testkit.NewServer(t)
	r := newReplica(t, s, Config{Default: Bucket{MaxTokens: 3, RefillRate: 1, RefillTime: time.Hour}}, newFakeClock())
	if _, err := r.kv.Put(testCtx(t), storeKey(GroupAPI, testKey), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if d := take(t, r.lim, GroupAPI, testKey); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("Take over garbage = %+v, want a full bucket", d)
	}
}

func TestTakeRefusesBadInput(t *testing.T) {
	s := testkit.NewServer(t)
	r := newReplica(t, s, Config{}, nil)
	for _, tc := range []struct{ group, key string }{
		{"", testKey}, {"API", testKey}, {"a.b", testKey}, {GroupAPI, ""}, {GroupAPI, "a.b"},
		{GroupAPI, "a b"}, {GroupAPI, strings.Repeat("a", 129)}, {GroupAPI, "*"},
	} {
		if _, err := r.lim.Take(testCtx(t), tc.group, tc.key); !errors.Is(err, ErrInvalid) {
			t.Errorf("Take(%q, %q) err = %v, want ErrInvalid", tc.group, tc.key, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.lim.Take(ctx, GroupAPI, testKey); !errors.Is(err, context.Canceled) {
		t.Errorf("Take with a canceled context: %v", err)
	}
}

func TestNewChecksItsArguments(t *testing.T) {
	if _, err := New(Config{}, nil, nil, nil); err == nil {
		t.Error("New without a bucket succeeded")
	}
	if _, err := New(Config{OnStoreError: "maybe"}, nil, nil, nil); err == nil {
		t.Error("New with a bad config succeeded")
	}
}

// TestQueuedRequestsAndCancellation drives the per-bucket queue by hand: a
// request waiting behind a round in flight leaves the queue when its context
// ends, and one handed the lead takes it up even if its context ended.
func TestQueuedRequestsAndCancellation(t *testing.T) {
	s := testkit.NewServer(t)
	r := newReplica(t, s, Config{Default: Bucket{MaxTokens: 5, RefillRate: 1, RefillTime: time.Hour}}, newFakeClock())
	k := storeKey(GroupAPI, testKey)
	e := r.lim.entries.get(k)
	queued := func(n int) func() bool {
		return func() bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			return len(e.queue) == n
		}
	}
	e.mu.Lock()
	e.busy = true // a round in flight
	e.mu.Unlock()

	// Canceled while queued: leaves the queue.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := r.lim.Take(ctx, GroupAPI, testKey)
		errc <- err
	}()
	testkit.WaitFor(t, 5*time.Second, "the request to queue", queued(1))
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled queued Take: %v", err)
	}
	if !queued(0)() {
		t.Fatal("canceled request left in the queue")
	}

	// Handed the lead, then canceled: it still leads, and is decided.
	ctx, cancel = context.WithCancel(context.Background())
	type result struct {
		d   Decision
		err error
	}
	resc := make(chan result, 1)
	go func() {
		d, err := r.lim.Take(ctx, GroupAPI, testKey)
		resc <- result{d, err}
	}()
	testkit.WaitFor(t, 5*time.Second, "the request to queue", queued(1))
	cancel()
	e.mu.Lock()
	if len(e.queue) == 1 { // not yet withdrawn: hand it the lead
		next := e.queue[0]
		next.lead = true
		close(next.done)
	} else {
		e.busy = false // it withdrew; the round "ends"
	}
	e.mu.Unlock()
	res := <-resc
	if res.err == nil && (!res.d.Allowed || res.d.Remaining != 4) {
		t.Fatalf("leader's decision: %+v", res.d)
	}
	e.mu.Lock()
	busy := e.busy
	e.mu.Unlock()
	if busy {
		t.Fatal("the bucket stayed busy: nobody leads it")
	}
	if d := take(t, r.lim, GroupAPI, testKey); !d.Allowed {
		t.Fatalf("after the queue drained: %+v", d)
	}
}

// TestFallbackAdmissionsAreChargedLater: what the local bucket admitted while
// the store was unreachable is charged to the shared bucket once it answers.
func TestFallbackAdmissionsAreChargedLater(t *testing.T) {
	s := testkit.NewServer(t)
	clock := newFakeClock()
	cfg := Config{Default: Bucket{MaxTokens: 10, RefillRate: 1, RefillTime: time.Hour}}
	r := newReplica(t, s, cfg, clock)
	take(t, r.lim, GroupAPI, testKey) // 9 left
	if err := r.js.DeleteKeyValue(testCtx(t), BucketName); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if d := take(t, r.lim, GroupAPI, testKey); !d.Allowed || !d.Fallback || d.Remaining != 8-i {
			t.Fatalf("fallback take %d = %+v", i+1, d)
		}
	}
	// The bucket is back, empty: the client's counter starts full, less the
	// three requests admitted meanwhile.
	if _, err := EnsureBucket(testCtx(t), r.js, cfg, 0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * probeInterval)
	if d := take(t, r.lim, GroupAPI, testKey); !d.Allowed || d.Fallback || d.Remaining != 6 {
		t.Fatalf("first take through the store again = %+v, want 6 remaining", d)
	}
	// Another replica sees the same.
	other := newReplica(t, s, cfg, clock)
	if d := take(t, other.lim, GroupAPI, testKey); !d.Allowed || d.Remaining != 5 {
		t.Fatalf("other replica = %+v, want 5 remaining", d)
	}
}
