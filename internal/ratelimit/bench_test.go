package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

// roomy never runs out during a benchmark: every Take is admitted and
// written.
var roomy = Config{Default: Bucket{MaxTokens: 1e9, RefillRate: 1e9, RefillTime: time.Second}}

// clientKeys returns n distinct client keys (n addresses).
func clientKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = Client{IP: "198.51." + strconv.Itoa(i/256%256) + "." + strconv.Itoa(i%256)}.Key()
	}
	return keys
}

// BenchmarkTake measures Take against an embedded server (file storage,
// loopback), all admitted: one client (the Streaky Worker's API secret), 1000
// clients seen before (cached: one write each), or clients never seen (a read
// and a create each); serial, and with 16 goroutines per core.
func BenchmarkTake(b *testing.B) {
	s := testkit.NewServer(b)
	keys := clientKeys(1000)
	for _, bc := range []struct {
		name     string
		keys     []string
		parallel bool
	}{
		{"one-key/serial", keys[:1], false},
		{"one-key/parallel", keys[:1], true},
		{"many-keys/serial", keys, false},
		{"many-keys/parallel", keys, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := newReplica(b, s, roomy, nil)
			for _, k := range bc.keys {
				take(b, r.lim, GroupAPI, k)
			}
			benchTakes(b, []*Limiter{r.lim}, bc.keys, bc.parallel, true)
		})
	}
	var n atomic.Int64 // fresh keys across every run of the sub-benchmarks
	for _, parallel := range []bool{false, true} {
		name := "new-keys/serial"
		if parallel {
			name = "new-keys/parallel"
		}
		b.Run(name, func(b *testing.B) {
			r := newReplica(b, s, roomy, nil)
			b.ReportAllocs()
			run := func() {
				k := "new" + strconv.FormatInt(n.Add(1), 36)
				if d, err := r.lim.Take(context.Background(), GroupAPI, k); err != nil || !d.Allowed {
					b.Errorf("Take = %+v, %v", d, err)
				}
			}
			if !parallel {
				for b.Loop() {
					run()
				}
				return
			}
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					run()
				}
			})
		})
	}
}

// BenchmarkTakeTwoReplicas: two instances, each with its own connection,
// hammer one bucket or many, every bucket from both in turn: without Run, a
// replica's cached revision is then mostly stale (a lost write, a read, a
// write); with Run, it mostly is not.
func BenchmarkTakeTwoReplicas(b *testing.B) {
	s := testkit.NewServer(b)
	keys := clientKeys(1000)
	for _, bc := range []struct {
		name    string
		keys    []string
		watched bool
	}{
		{"one-key/parallel", keys[:1], false},
		{"one-key/parallel/run", keys[:1], true},
		{"many-keys/parallel", keys, false},
		{"many-keys/parallel/run", keys, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			lims := []*Limiter{newReplica(b, s, roomy, nil).lim, newReplica(b, s, roomy, nil).lim}
			if bc.watched {
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				for _, l := range lims {
					wg.Go(func() { _ = l.Run(ctx) })
				}
				b.Cleanup(func() {
					cancel()
					wg.Wait()
				})
			}
			for _, k := range bc.keys {
				take(b, lims[0], GroupAPI, k)
				take(b, lims[1], GroupAPI, k)
			}
			benchTakes(b, lims, bc.keys, true, true)
		})
	}
}

// BenchmarkTakeRefused: a client past its limit, refused from the cached
// state.
func BenchmarkTakeRefused(b *testing.B) {
	s := testkit.NewServer(b)
	r := newReplica(b, s, Config{Default: Bucket{MaxTokens: 1, RefillRate: 1, RefillTime: time.Hour}}, nil)
	key := clientKeys(1)[0]
	take(b, r.lim, GroupAPI, key)
	b.Run("serial", func(b *testing.B) { benchTakes(b, []*Limiter{r.lim}, []string{key}, false, false) })
	b.Run("parallel", func(b *testing.B) { benchTakes(b, []*Limiter{r.lim}, []string{key}, true, false) })
}

func benchTakes(b *testing.B, lims []*Limiter, keys []string, parallel, wantAllowed bool) {
	ctx := context.Background()
	var next atomic.Int64
	one := func(i int64) {
		// Consecutive requests, and each key's requests, go to every
		// limiter in turn, as behind a round-robin load balancer.
		n, r := int64(len(keys)), i
		if n > 1 {
			r += i / n
		}
		d, err := lims[r%int64(len(lims))].Take(ctx, GroupAPI, keys[i%n])
		if err != nil || d.Allowed != wantAllowed || d.Fallback {
			b.Errorf("Take = %+v, %v", d, err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for i := int64(0); b.Loop(); i++ {
			one(i)
		}
		return
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			one(next.Add(1))
		}
	})
}

// BenchmarkHandler measures an HTTP handler that does nothing but answer
// 200, bare and behind the Middleware, so the difference is the limiter's
// cost per request: one API client, or 1000 addresses (each seen before).
func BenchmarkHandler(b *testing.B) {
	s := testkit.NewServer(b)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	id := &Identifier{APIClient: func(r *http.Request) (string, bool) {
		return "client-1", r.Header.Get("X-API-Secret") != ""
	}}
	for _, bc := range []struct {
		name    string
		limited bool
		clients int
		secret  bool
	}{
		{"bare", false, 1000, false},
		{"limited/one-api-client", true, 1, true},
		{"limited/many-addresses", true, 1000, false},
	} {
		for _, parallel := range []bool{false, true} {
			name := bc.name + "/serial"
			if parallel {
				name = bc.name + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				var next atomic.Int64
				one := func(h http.Handler) {
					i := next.Add(1) % int64(bc.clients)
					req := httptest.NewRequest(http.MethodPost, "/v1/notifications", nil)
					req.RemoteAddr = "198.51." + strconv.Itoa(int(i/256%256)) + "." + strconv.Itoa(int(i%256)) + ":4000"
					if bc.secret {
						req.Header.Set("X-API-Secret", "x")
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Errorf("status %d", rec.Code)
					}
				}
				h := http.Handler(ok)
				if bc.limited {
					h = newReplica(b, s, roomy, nil).lim.Middleware(id, nil, nil)(ok)
					for range bc.clients {
						one(h)
					}
				}
				b.ReportAllocs()
				if !parallel {
					for b.Loop() {
						one(h)
					}
					return
				}
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						one(h)
					}
				})
			})
		}
	}
}

// BenchmarkJetStreamPublish is the reference: one acknowledged publish of a
// 512-byte message to a file stream on the same server, which every accepted
// job costs the ingest anyway.
func BenchmarkJetStreamPublish(b *testing.B) {
	s := testkit.NewServer(b)
	_, js := connect(b, s)
	ctx := testCtx(b)
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"bench.>"}, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 512)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := js.Publish(ctx, "bench.x", payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := js.Publish(ctx, "bench.x", payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
