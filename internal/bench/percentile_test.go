package bench

import (
	"testing"
	"time"
)

func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single p50", seq(1), 50, 1 * time.Millisecond},
		{"single p99", seq(1), 99, 1 * time.Millisecond},
		{"ten p50", seq(10), 50, 5 * time.Millisecond},
		{"ten p90", seq(10), 90, 9 * time.Millisecond},
		{"ten p95 rounds up", seq(10), 95, 10 * time.Millisecond},
		{"ten p100", seq(10), 100, 10 * time.Millisecond},
		{"hundred p99", seq(100), 99, 99 * time.Millisecond},
		{"thousand p99", seq(1000), 99, 990 * time.Millisecond},
		{"thousand p99.9", seq(1000), 99.9, 999 * time.Millisecond},
		{"two p50 is the lower", seq(2), 50, 1 * time.Millisecond},
		{"two p51 is the upper", seq(2), 51, 2 * time.Millisecond},
		{"p0 is the minimum", seq(10), 0, 1 * time.Millisecond},
		{"above 100 is the maximum", seq(10), 150, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.values, tt.p); got != tt.want {
				t.Errorf("Percentile(%d values, %v) = %v, want %v", len(tt.values), tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeSortsAndReportsMilliseconds(t *testing.T) {
	ds := seq(100)
	// Reverse, so Summarize has to sort.
	for i, j := 0, len(ds)-1; i < j; i, j = i+1, j-1 {
		ds[i], ds[j] = ds[j], ds[i]
	}
	ds = append(ds, 1500*time.Microsecond)
	got := Summarize(ds)
	want := Latency{Count: 101, P50: 50, P95: 95, P99: 99, Max: 100}
	got.Mean = 0
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if s := Summarize(nil); s != (Latency{}) {
		t.Errorf("Summarize(nil) = %+v", s)
	}
	if m := Summarize([]time.Duration{1234567 * time.Nanosecond}); m.P50 != 1.235 || m.Mean != 1.235 {
		t.Errorf("one value of 1.234567 ms: %+v, want 1.235 (rounded to the microsecond)", m)
	}
}
