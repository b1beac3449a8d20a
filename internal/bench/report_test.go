package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	return &Report{
		Version: "test", Date: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		Run:  RunInfo{Target: "child", Via: ViaAPI, Concurrency: 64, Jobs: 20000, Webhooks: 100, DrainTimeoutS: 60, CPUs: 2},
		Sent: 20000, Accepted: 19990, Refused: map[string]int{"503": 7, labelError: 3},
		Delivered: 19990, Duplicates: 2,
		SendSeconds: 4, DeliverSeconds: 5, AcceptedPerSecond: 4997.5, DeliveredPerSecond: 3998,
		DeliveryLatency: Latency{Count: 19990, P50: 1376.2, P95: 1520, P99: 1563, Max: 1582, Mean: 1300},
		HTTPLatency:     Latency{Count: 19997, P50: 9.23, P95: 20, P99: 28.4, Max: 55.4, Mean: 10},
		Destination:     DestinationStats{Requests: 20010, Delivered: 19992, RateLimited: 18},
		Herald: &ProcessReport{PID: 42, IdleRSS: 25 << 20, PeakRSS: 80 << 20, HWM: 81 << 20,
			IdlePrivate: 6 << 20, PeakPrivate: 55 << 20, CPUSeconds: 5.8, ThreadRuns: 139930},
		HarnessCPUSeconds: 2.5,
		Baseline:          &BaselineReport{Sent: 20000, Accepted: 20000, Seconds: 2, AcceptedPerSecond: 10000, Ratio: 0.49975},
	}
}

func TestReportJSONHasEveryFigure(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	for _, k := range []string{
		"version", "date", "run", "sent", "accepted", "refused", "delivered", "lost", "duplicates",
		"delivered_unaccepted", "unexpected", "send_s", "deliver_s", "accepted_per_s", "delivered_per_s",
		"delivery_latency", "http_latency", "destination", "herald", "harness_cpu_s", "baseline",
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	lat := m["delivery_latency"].(map[string]any)
	for _, k := range []string{"p50_ms", "p95_ms", "p99_ms", "max_ms"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("delivery_latency lacks %q", k)
		}
	}
	h := m["herald"].(map[string]any)
	if h["idle_rss_bytes"] != float64(25<<20) || h["peak_rss_bytes"] != float64(80<<20) || h["cpu_s"] != 5.8 ||
		h["idle_private_bytes"] != float64(6<<20) || h["peak_private_bytes"] != float64(55<<20) || h["thread_runs"] != float64(139930) {
		t.Errorf("herald %v", h)
	}
	if m["destination"].(map[string]any)["rate_limited"] != float64(18) {
		t.Errorf("destination %v", m["destination"])
	}
	if r := m["baseline"].(map[string]any)["ratio"]; r != 0.49975 {
		t.Errorf("baseline ratio %v", r)
	}
	// A report read back is the same report.
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back.Accepted != 19990 || back.Herald.HWM != 81<<20 {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

func TestReportTable(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"herald bench  2026-11-23T10:00:00Z  via api, as fast as possible, 64 clients, 20000 jobs, 100 webhooks, 2 CPUs",
		"accepted           19,990  (4,998/s)",
		"refused            10  (503: 7, error: 3)",
		"delivered          19,990  (3,998/s)",
		"duplicates         2",
		"delivery latency   p50 1.38 s  p95 1.52 s  p99 1.56 s  max 1.58 s",
		"HTTP latency       p50 9.23 ms  p99 28.4 ms  max 55.4 ms",
		"429s received      18  (of 20,010 requests to the fake)",
		"Herald RSS idle    25.0 MiB  (private 6.0 MiB)",
		"Herald RSS peak    80.0 MiB  (VmHWM 81.0 MiB; private 55.0 MiB, the rest mapped files' pages)",
		"Herald CPU         5.80 s  (290.1 ms per 1,000 jobs; threads run 7.0 times per job)",
		"Herald / baseline  0.50",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Paced runs have no ratio; skipped baselines say why.
	r := sampleReport()
	r.Run.Rate, r.Baseline.Ratio = 1000, 0
	buf.Reset()
	_ = r.WriteTable(&buf)
	if !strings.Contains(buf.String(), "1000 jobs/s") || !strings.Contains(buf.String(), "n/a (Herald's run was paced by --rate)") {
		t.Errorf("paced table:\n%s", buf.String())
	}
	r.Baseline, r.BaselineSkipped = nil, "disabled"
	buf.Reset()
	_ = r.WriteTable(&buf)
	if !strings.Contains(buf.String(), "skipped: disabled") {
		t.Errorf("skipped baseline:\n%s", buf.String())
	}
}

func TestReportTableIngestOnly(t *testing.T) {
	r := sampleReport()
	r.Run.Via, r.Run.IngestOnly, r.Run.Rounds, r.Run.Jobs = ViaStreaky, true, 2, 20000
	r.Delivered, r.Duplicates, r.DeliveredPerSecond, r.DeliveryLatency, r.Destination = 0, 0, 0, Latency{}, DestinationStats{}
	r.IngestOnly = &IngestOnlyReport{Stored: 19989, Missing: 1, Rounds: []IngestRound{
		{Jobs: 10000, Accepted: 9995, AcceptedPerSecond: 4800, Stored: 9995, BaselineAccepted: 10000, BaselineAcceptedPerSecond: 9500},
		{Jobs: 10000, Accepted: 9995, AcceptedPerSecond: 5200, Stored: 9994, BaselineFirst: true, BaselineAccepted: 10000, BaselineAcceptedPerSecond: 10500},
	}}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"via streaky, ingest only, 2 rounds, as fast as possible",
		"accepted             19,990  (4,998/s)",
		"in jobs stream       19,989  (missing 1, extra 0)",
		"delivered            n/a (ingest only)",
		"lost                 n/a (ingest only)",
		"duplicates           n/a (ingest only)",
		"delivery latency     n/a (ingest only)",
		"HTTP latency         p50 9.23 ms",
		"429s received        n/a (ingest only)",
		"harness CPU          2.50 s  (NATS server included)",
		"Herald / baseline    0.50",
		"rounds (accepted/s)  Herald 4,800 / 5,200, baseline 9,500 / 10,500",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// A job missing from the stream fails the run, as a lost one does.
	if err := r.LostError(); err == nil || !strings.Contains(err.Error(), "1 of 19990 accepted jobs are not in the jobs stream") {
		t.Errorf("LostError = %v", err)
	}
	r.IngestOnly.Missing = 0
	if err := r.LostError(); err != nil {
		t.Errorf("LostError = %v with every job stored", err)
	}
}

func TestCountAndDurationFormats(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -5: "-5"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
	for v, want := range map[float64]string{0.664: "0.66 ms", 21.04: "21.0 ms", 124.4: "124 ms", 4140: "4.14 s", 12345: "12.3 s"} {
		if got := msString(v); got != want {
			t.Errorf("msString(%v) = %q, want %q", v, got, want)
		}
	}
}
