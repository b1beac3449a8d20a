package bench

import (
	"bytes"
	"strings"
	"testing"
)

// suiteReport is a report of delivered jobs at perSecond, with cpu seconds
// of CPU.
func suiteReport(perSecond, cpu float64) *Report {
	return &Report{Accepted: 1000, Delivered: 1000, DeliveredPerSecond: perSecond, HTTPLatency: Latency{P50: 1, P99: 2},
		Herald: &ProcessReport{CPUSeconds: cpu, IdleRSS: 1 << 20, PeakRSS: 3 << 20, PeakPrivate: 2 << 20, ThreadRuns: 7500}}
}

// Each ratio is taken within a round, and the suite reports their median
// and range; one round reports its ratios as they are.
func TestSuiteRatiosAreMediansOfRounds(t *testing.T) {
	s := &Suite{}
	// Herald's CPU per job over the relay's: 2.0, 1.2, 1.5 in rounds 1-3
	// (the relay's own cost moves from round to round, as on a busy
	// machine); the median is 1.5, not the ratio of the means.
	for i, f := range []struct{ wait, bare float64 }{{0.4, 0.2}, {0.36, 0.3}, {0.3, 0.2}} {
		round := i + 1
		s.Runs = append(s.Runs,
			SuiteRun{Name: SuiteWait, Round: round, Report: suiteReport(100, f.wait)},
			SuiteRun{Name: SuiteNoWait, Round: round, Report: suiteReport(50, 1)},
			SuiteRun{Name: SuiteBareRelay, Round: round, Report: suiteReport(200, f.bare)})
	}
	s.ratios()
	cpu := ratioNamed(t, s, "CPU per job: wait / bare relay")
	if !near(cpu.Value, 1.5) || !near(cpu.Min, 1.2) || !near(cpu.Max, 2.0) || len(cpu.Rounds) != 3 || !near(cpu.Rounds[0], 2.0) {
		t.Errorf("CPU ratio = %+v, want median 1.5 over 2.0, 1.2, 1.5", cpu)
	}
	if len(s.Ratios) != 6 {
		t.Errorf("%d ratios, want 6", len(s.Ratios))
	}
	var out bytes.Buffer
	if err := s.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"median of 3 rounds", "1.50  (1.20-2.00)", "streaky, wait, round 3", "bare relay, round 2",
		"runs per job  RSS idle  RSS peak  private peak", "7.5   1.0 MiB   3.0 MiB       2.0 MiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}

	one := &Suite{Runs: s.Runs[:3]}
	one.ratios()
	if r := ratioNamed(t, one, "CPU per job: wait / bare relay"); !near(r.Value, 2.0) || r.Rounds != nil {
		t.Errorf("one round: %+v, want 2.0 and no range", r)
	}
	out.Reset()
	if err := one.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "round") {
		t.Errorf("one round's table speaks of rounds:\n%s", out.String())
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		v    []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		v := append([]float64(nil), tt.v...)
		if got := median(v); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.v, got, tt.want)
		}
		if v[0] != tt.v[0] {
			t.Errorf("median reordered its argument: %v", v)
		}
	}
}

func ratioNamed(t *testing.T, s *Suite, name string) SuiteRatio {
	t.Helper()
	for _, r := range s.Ratios {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no ratio %q in %+v", name, s.Ratios)
	return SuiteRatio{}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
