package breaker

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

func TestEvictionBound(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 2, OpenTimeout: time.Hour, MaxDestinations: 100})
	// Five destinations are down.
	var down []string
	for i := range 5 {
		down = append(down, fmt.Sprintf("discord:down%d", i))
	}
	x.open(down...)
	// Many more failed once: closed breakers with a failure on record.
	for i := range 10_000 {
		x.fail(fmt.Sprintf("discord:%d", i))
		if n := x.Len(); n > 100 {
			t.Fatalf("Len = %d after %d keys, want at most 100", n, i+1)
		}
	}
	if n := x.Len(); n != 100 {
		t.Errorf("Len = %d, want 100", n)
	}
	// Open breakers are never dropped while closed ones can be.
	for _, k := range down {
		if st := x.State(k); st.String() != "open" {
			t.Errorf("%s = %s, want still open", k, st)
		}
	}
	// The most recently used closed breakers are the ones kept.
	x.fail("discord:9999")
	if st := x.State("discord:9999"); st.String() != "open" {
		t.Errorf("recent breaker lost its failure count: %s", st)
	}
	if got := x.gaugeTotal("discord"); got != 100 {
		t.Errorf("gauges total %d, want 100", got)
	}
	if got := x.gauge("discord", labelOpen); got != 6 {
		t.Errorf("open gauge %d, want 6", got)
	}
	if strings.Contains(x.logs.String(), "breaker dropped") {
		t.Error("a breaker was dropped with a warning although closed ones could go")
	}
}

func TestEvictionAllOpen(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 1, OpenTimeout: time.Hour, MaxDestinations: 10})
	for i := range 20 {
		x.open(fmt.Sprintf("discord:%d", i))
	}
	if n := x.Len(); n != 10 {
		t.Fatalf("Len = %d, want 10", n)
	}
	// The oldest went first, with a warning each.
	if st := x.State("discord:0"); st.String() != "closed" {
		t.Errorf("oldest = %s, want dropped (closed)", st)
	}
	if st := x.State("discord:19"); st.String() != "open" {
		t.Errorf("newest = %s, want open", st)
	}
	if n := strings.Count(x.logs.String(), `"msg":"breaker dropped"`); n != 10 {
		t.Errorf("drop warnings = %d, want 10", n)
	}
	if x.gauge("discord", labelOpen) != 10 || x.gaugeTotal("discord") != 10 {
		t.Errorf("open gauge %d, total %d, want 10 and 10", x.gauge("discord", labelOpen), x.gaugeTotal("discord"))
	}
}

func TestIdleBreakersDropped(t *testing.T) {
	t.Parallel()
	clock := testkit.NewClock(time.Now())
	x := newTestSet(t, Config{Failures: 2, OpenTimeout: time.Hour, IdleTTL: time.Minute})
	x.Set.now = clock.Now
	x.open("discord:open")
	// Closed breakers with one failure on record.
	for i := range 50 {
		x.fail(fmt.Sprintf("discord:%d", i))
	}
	clock.Advance(30 * time.Second)
	x.fail("discord:recent")
	if n := x.Len(); n != 52 {
		t.Fatalf("Len = %d, want 52", n)
	}
	clock.Advance(45 * time.Second)
	x.call([]string{"discord:recent"}, func() error { return errPermanent }) // a success: counts cleared, forgotten
	x.fail("discord:recent")
	// The 50 idle closed ones are gone; the open one stays within its
	// OpenTimeout (an hour, by the Set's clock).
	if n := x.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2 (recent and open)", n)
	}
	if st := x.State("discord:open"); st.String() != "open" {
		t.Errorf("open breaker = %s", st)
	}
	clock.Advance(2 * time.Hour)
	x.fail("discord:new")
	if n := x.Len(); n != 1 {
		t.Fatalf("Len = %d, want 1 (new)", n)
	}
	if x.gaugeTotal("discord") != 1 || x.gauge("discord", labelOpen) != 0 {
		t.Errorf("gauges total %d open %d", x.gaugeTotal("discord"), x.gauge("discord", labelOpen))
	}
	if !strings.Contains(x.logs.String(), `"reason":"idle"`) {
		t.Error("dropping the idle open breaker was not logged")
	}
}

// TestConcurrent hammers a small Set from many goroutines (run with -race)
// and checks the gauges still count the breakers kept.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	x := newTestSet(t, Config{Failures: 2, OpenTimeout: 100 * time.Millisecond, MaxDestinations: 20})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 2000 {
				keys := []string{fmt.Sprintf("telegram:%d:%d", r.IntN(3), r.IntN(10)), fmt.Sprintf("telegram:%d", r.IntN(3))}
				x.call(keys, func() error {
					switch r.IntN(4) {
					case 0:
						return errTransient
					case 1:
						return errPermanent
					case 2:
						return err429
					}
					return nil
				})
				if r.IntN(50) == 0 {
					x.State(keys[0])
				}
			}
		}()
	}
	wg.Wait()
	if n := x.Len(); n > 20 {
		t.Errorf("Len = %d, want at most 20", n)
	}
	if got, want := x.gaugeTotal("telegram"), x.Len(); got != want {
		t.Errorf("gauges total %d, Len %d", got, want)
	}
}
