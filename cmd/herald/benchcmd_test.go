package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/bench"
)

// TestBenchCommandAccountsForEveryJob runs `herald bench` as a user would:
// the built binary starts itself as `herald serve`, sends 300 jobs through
// the API and runs the baseline.
func TestBenchCommandAccountsForEveryJob(t *testing.T) {
	bin := buildHerald(t)
	out := filepath.Join(t.TempDir(), "report.json")
	stdout, stderr, err := runBinary(t, bin, "bench", "--via", "api", "--jobs", "300", "--concurrency", "8", "--webhooks", "10", "--json", "--out", out)
	if err != nil {
		t.Fatalf("herald bench: %v\nstderr:\n%s\nstdout:\n%s", err, stderr, stdout)
	}
	var r bench.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout)
	}
	if r.Sent != 300 || r.Accepted != 300 || r.Delivered != 300 || r.Lost != 0 || r.Duplicates != 0 ||
		r.Unexpected != 0 || r.DeliveredUnaccepted != 0 || len(r.Refused) != 0 {
		t.Fatalf("jobs not all accounted for: %+v", r)
	}
	if r.Destination.Delivered != 300 || r.Destination.Refused != 0 || r.Destination.Foreign != 0 {
		t.Errorf("the fake saw %+v", r.Destination)
	}
	if r.DeliveryLatency.Count != 300 || r.DeliveryLatency.P50 <= 0 || r.DeliveryLatency.Max < r.DeliveryLatency.P99 ||
		r.HTTPLatency.Count != 300 || r.AcceptedPerSecond <= 0 || r.DeliveredPerSecond <= 0 {
		t.Errorf("figures missing: delivery %+v http %+v accepted/s %v delivered/s %v",
			r.DeliveryLatency, r.HTTPLatency, r.AcceptedPerSecond, r.DeliveredPerSecond)
	}
	if h := r.Herald; h == nil || h.PID <= 0 || h.IdleRSS <= 0 || h.PeakRSS < h.IdleRSS || h.HWM <= 0 || h.CPUSeconds <= 0 {
		t.Errorf("Herald process figures: %+v", r.Herald)
	}
	if b := r.Baseline; b == nil || b.Accepted != 300 || b.AcceptedPerSecond <= 0 || b.Ratio <= 0 {
		t.Errorf("baseline: %+v", r.Baseline)
	}
	if r.Version != version || r.Run.Via != bench.ViaAPI || r.Run.Target != "child" {
		t.Errorf("run info: version %q %+v", r.Version, r.Run)
	}
	saved, err := os.ReadFile(out)
	if err != nil || string(saved) != stdout {
		t.Errorf("--out file differs from the JSON printed (%v)", err)
	}
}

// TestBenchCommandSuite runs the default: Herald with the Streaky wait,
// without it, and the bare relay, each a child of its own, and the ratios.
func TestBenchCommandSuite(t *testing.T) {
	bin := buildHerald(t)
	stdout, stderr, err := runBinary(t, bin, "bench", "--jobs", "300", "--concurrency", "8", "--webhooks", "10", "--json")
	if err != nil {
		t.Fatalf("herald bench: %v\nstderr:\n%s\nstdout:\n%s", err, stderr, stdout)
	}
	var s bench.Suite
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("stdout is not a JSON suite: %v\n%s", err, stdout)
	}
	names := []string{bench.SuiteWait, bench.SuiteNoWait, bench.SuiteBareRelay}
	if len(s.Runs) != len(names) {
		t.Fatalf("%d runs, want %d: %s", len(s.Runs), len(names), stdout)
	}
	for i, run := range s.Runs {
		r := run.Report
		if run.Name != names[i] || r.Run.Via != bench.ViaStreaky {
			t.Errorf("run %d: %q via %s, want %q via streaky", i, run.Name, r.Run.Via, names[i])
		}
		if r.Sent != 300 || r.Accepted != 300 || r.Delivered != 300 || r.Lost != 0 || r.Duplicates != 0 {
			t.Errorf("%s: jobs not all accounted for: sent %d accepted %d delivered %d lost %d duplicates %d",
				run.Name, r.Sent, r.Accepted, r.Delivered, r.Lost, r.Duplicates)
		}
		if h := r.Herald; h == nil || h.CPUSeconds <= 0 || h.PeakRSS <= 0 {
			t.Errorf("%s: process figures %+v", run.Name, r.Herald)
		}
		if r.Baseline != nil {
			t.Errorf("%s: the suite's runs have no decode-and-publish baseline", run.Name)
		}
	}
	if w := s.Runs[0].Report.Run.StreakyWait(); w != 10*time.Second {
		t.Errorf("the first run waits %s, want 10s", w)
	}
	if w := s.Runs[1].Report.Run.StreakyWait(); w != 0 {
		t.Errorf("the second run waits %s, want 0", w)
	}
	if target := s.Runs[2].Report.Run.Target; target != "bare relay" {
		t.Errorf("the third run's target is %q", target)
	}
	if len(s.Ratios) != 6 || s.Version != version {
		t.Errorf("ratios %+v, version %q", s.Ratios, s.Version)
	}
	for _, r := range s.Ratios {
		if r.Value <= 0 {
			t.Errorf("ratio %s = %v", r.Name, r.Value)
		}
	}
}

// TestBenchCommandIngestOnly runs `herald bench --ingest-only`: the
// harness runs NATS itself, starts the binary as `herald ingest`, and sends
// 300 jobs in three rounds to it and to the baseline; every accepted job
// must be in the jobs stream.
func TestBenchCommandIngestOnly(t *testing.T) {
	bin := buildHerald(t)
	stdout, stderr, err := runBinary(t, bin, "bench", "--ingest-only", "--jobs", "300", "--concurrency", "8", "--webhooks", "10", "--json")
	if err != nil {
		t.Fatalf("herald bench --ingest-only: %v\nstderr:\n%s\nstdout:\n%s", err, stderr, stdout)
	}
	var r bench.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout)
	}
	if !r.Run.IngestOnly || r.Run.Rounds != 3 || r.Run.Via != bench.ViaStreaky {
		t.Errorf("run info: %+v (want ingest only, 3 rounds, via streaky by default)", r.Run)
	}
	c := r.IngestOnly
	if r.Sent != 300 || r.Accepted != 300 || len(r.Refused) != 0 || c == nil || c.Stored != 300 || c.Missing != 0 || c.Extra != 0 {
		t.Fatalf("jobs not all in the jobs stream: sent %d accepted %d refused %v ingest-only %+v", r.Sent, r.Accepted, r.Refused, c)
	}
	if len(c.Rounds) != 3 {
		t.Fatalf("rounds: %+v", c.Rounds)
	}
	for i, round := range c.Rounds {
		if round.Jobs != 100 || round.Accepted != 100 || round.Stored != 100 || round.BaselineAccepted != 100 ||
			round.AcceptedPerSecond <= 0 || round.BaselineAcceptedPerSecond <= 0 || round.BaselineFirst != (i == 1) {
			t.Errorf("round %d: %+v", i+1, round)
		}
	}
	// Nothing is delivered: no workers run.
	if r.Delivered != 0 || r.Destination.Requests != 0 {
		t.Errorf("deliveries in an ingest-only run: %d, fake requests %d", r.Delivered, r.Destination.Requests)
	}
	if r.HTTPLatency.Count != 300 || r.AcceptedPerSecond <= 0 {
		t.Errorf("figures missing: http %+v accepted/s %v", r.HTTPLatency, r.AcceptedPerSecond)
	}
	if h := r.Herald; h == nil || h.PID <= 0 || h.IdleRSS <= 0 || h.PeakRSS < h.IdleRSS || h.CPUSeconds <= 0 {
		t.Errorf("Herald process figures: %+v", r.Herald)
	}
	if b := r.Baseline; b == nil || b.Sent != 300 || b.Accepted != 300 || b.HTTPLatency.Count != 300 || b.Ratio <= 0 {
		t.Errorf("baseline: %+v", r.Baseline)
	}
	if !strings.Contains(stderr, "ingest") || !strings.Contains(stderr, "round 3/3") {
		t.Errorf("progress on stderr does not name the rounds:\n%s", stderr)
	}
}

// TestBenchCommandFailsWhenJobsAreLost checks the exit status scripts rely
// on: the fake answers only after 2 s while the harness waits 1 ms for
// deliveries, so accepted jobs count as lost.
func TestBenchCommandFailsWhenJobsAreLost(t *testing.T) {
	bin := buildHerald(t)
	stdout, stderr, err := runBinary(t, bin, "bench", "--via", "streaky", "--jobs", "5", "--concurrency", "1",
		"--latency", "2s", "--drain-timeout", "1ms", "--baseline=false", "--quiet")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\nstderr:\n%s", err, stderr)
	}
	if lost := tableRow(stdout, "lost"); lost == "" || lost == "0" || tableRow(stdout, "baseline") != "skipped: disabled" {
		t.Errorf("the table does not show the losses:\n%s", stdout)
	}
	if !strings.Contains(stderr, "of 5 accepted jobs were not delivered within the drain timeout") {
		t.Errorf("stderr does not say why it failed:\n%s", stderr)
	}
}

func TestBenchScenarioPresetsYieldToFlags(t *testing.T) {
	cmd := newBenchCmd(new(string), envMap(nil))
	f := cmd.Flags()
	if err := f.Parse([]string{"--jobs", "40"}); err != nil {
		t.Fatal(err)
	}
	if err := applyScenario(f, "ratelimited"); err != nil {
		t.Fatal(err)
	}
	jobs, _ := f.GetInt("jobs")
	webhooks, _ := f.GetInt("webhooks")
	rateLimit, _ := f.GetString("rate-limit")
	if jobs != 40 || webhooks != 4 || rateLimit != "5/2s" {
		t.Errorf("jobs %d webhooks %d rate-limit %q, want the flag's 40 and the preset's 4 and 5/2s", jobs, webhooks, rateLimit)
	}
	if err := applyScenario(f, "everything"); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "max, ratelimited, steady") {
		t.Errorf("unknown scenario: %v", err)
	}

	// A run's length is one setting: --duration replaces the preset's jobs
	// (free-tier at Discord's pace: 50/s for 20 s, not 300 jobs).
	cmd = newBenchCmd(new(string), envMap(nil))
	f = cmd.Flags()
	if err := f.Parse([]string{"--rate", "50", "--duration", "20s"}); err != nil {
		t.Fatal(err)
	}
	if err := applyScenario(f, "free-tier"); err != nil {
		t.Fatal(err)
	}
	jobs, _ = f.GetInt("jobs")
	duration, _ := f.GetDuration("duration")
	concurrency, _ := f.GetInt("concurrency")
	if jobs != 0 || duration != 20*time.Second || concurrency != 1 {
		t.Errorf("jobs %d duration %s concurrency %d, want no job count, the flag's 20s and the preset's 1", jobs, duration, concurrency)
	}
}

// tableRow returns the value column of the table row named name.
func tableRow(table, name string) string {
	for _, line := range strings.Split(table, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+"  "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// runBinary runs the built binary with args in an empty directory (no
// config.yaml there) and returns what it printed.
func runBinary(t *testing.T, bin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestBenchCommandSuiteRepeat runs the suite twice: the second round in the
// reverse order, each ratio the median of the rounds' with their range.
// --repeat is only the suite's.
func TestBenchCommandSuiteRepeat(t *testing.T) {
	bin := buildHerald(t)
	stdout, stderr, err := runBinary(t, bin, "bench", "--repeat", "2", "--jobs", "100", "--concurrency", "4", "--webhooks", "10", "--json")
	if err != nil {
		t.Fatalf("herald bench: %v\nstderr:\n%s\nstdout:\n%s", err, stderr, stdout)
	}
	var s bench.Suite
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("stdout is not a JSON suite: %v\n%s", err, stdout)
	}
	want := []struct {
		name  string
		round int
	}{{bench.SuiteWait, 1}, {bench.SuiteNoWait, 1}, {bench.SuiteBareRelay, 1},
		{bench.SuiteBareRelay, 2}, {bench.SuiteNoWait, 2}, {bench.SuiteWait, 2}}
	if len(s.Runs) != len(want) {
		t.Fatalf("%d runs, want %d", len(s.Runs), len(want))
	}
	for i, run := range s.Runs {
		if run.Name != want[i].name || run.Round != want[i].round || run.Report.Delivered != 100 || run.Report.Lost != 0 {
			t.Errorf("run %d: %q round %d, %d delivered; want %q round %d, 100", i, run.Name, run.Round,
				run.Report.Delivered, want[i].name, want[i].round)
		}
	}
	if len(s.Ratios) != 6 {
		t.Fatalf("ratios %+v, want 6", s.Ratios)
	}
	for _, r := range s.Ratios {
		if len(r.Rounds) != 2 || r.Min > r.Value || r.Value > r.Max || r.Min <= 0 {
			t.Errorf("ratio %+v: want two rounds' values, the median between their min and max", r)
		}
	}
	if !strings.Contains(stderr, "round 2 of 2") {
		t.Errorf("progress on stderr does not name the rounds:\n%s", stderr)
	}

	_, stderr, err = runBinary(t, bin, "bench", "--repeat", "2", "--via", "api", "--jobs", "10")
	if err == nil || !strings.Contains(stderr, "--repeat") {
		t.Errorf("--repeat with --via: err %v, stderr %q; want a usage error naming --repeat", err, stderr)
	}
}
