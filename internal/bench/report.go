package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run. Its JSON form is what `herald bench
// --json` prints; rates are per second, latencies in milliseconds, memory in
// bytes.
type Report struct {
	// Version is the herald version that ran the harness.
	Version string    `json:"version,omitempty"`
	Date    time.Time `json:"date"`
	Run     RunInfo   `json:"run"`
	// Interrupted says the run was stopped before its end (Ctrl-C).
	Interrupted bool `json:"interrupted,omitempty"`

	// Sent counts jobs sent; Accepted those Herald took (2xx; Streaky:
	// success:true; NATS: acknowledged); Refused the others by answer
	// ("503", "200 success:false", "error" for no answer).
	Sent     int            `json:"sent"`
	Accepted int            `json:"accepted"`
	Refused  map[string]int `json:"refused"`
	// Delivered counts accepted jobs delivered at least once; Lost accepted
	// jobs not delivered within the drain timeout; Duplicates deliveries
	// beyond the first of a job; DeliveredUnaccepted jobs delivered although
	// their request was refused or failed (stored after all); Unexpected
	// deliveries naming no job that was sent.
	Delivered           int      `json:"delivered"`
	Lost                int      `json:"lost"`
	LostSample          []string `json:"lost_sample,omitempty"`
	Duplicates          int      `json:"duplicates"`
	DeliveredUnaccepted int      `json:"delivered_unaccepted"`
	Unexpected          int      `json:"unexpected"`

	// SendSeconds runs from the first request to the last answer;
	// DeliverSeconds from the first request to the last first delivery.
	SendSeconds        float64 `json:"send_s"`
	DeliverSeconds     float64 `json:"deliver_s"`
	AcceptedPerSecond  float64 `json:"accepted_per_s"`
	DeliveredPerSecond float64 `json:"delivered_per_s"`
	// MaxScheduleLag is, with a rate, how late the most delayed job left
	// (all clients busy); 0 as fast as possible.
	MaxScheduleLagMS float64 `json:"max_schedule_lag_ms"`

	// DeliveryLatency is, per delivered job, from the moment its request was
	// sent to its first delivery at the fake; HTTPLatency, per answered
	// request, from sending to the answer (for NATS: the publish ack).
	DeliveryLatency Latency `json:"delivery_latency"`
	HTTPLatency     Latency `json:"http_latency"`

	// Destination holds the fake Discord's counters; RateLimited there is
	// the number of 429s Herald received.
	Destination DestinationStats `json:"destination"`

	// Herald is the measured Herald process (absent when not measured).
	Herald *ProcessReport `json:"herald,omitempty"`
	// HarnessCPUSeconds is the CPU time the harness itself used during the
	// run (load, fake Discord): on a shared machine, Herald had the rest.
	HarnessCPUSeconds float64 `json:"harness_cpu_s"`

	// Baseline is the bare handler's run (absent when skipped; then
	// BaselineSkipped says why).
	Baseline        *BaselineReport `json:"baseline,omitempty"`
	BaselineSkipped string          `json:"baseline_skipped,omitempty"`

	// IngestOnly holds an ingest-only run's rounds and its check of the jobs
	// stream; nothing is delivered then, and the delivery figures above
	// stay zero.
	IngestOnly *IngestOnlyReport `json:"ingest_only,omitempty"`
}

// RunInfo is the run's configuration, as reported.
type RunInfo struct {
	Target        string  `json:"target"` // "child", "bare relay" or the URL driven
	IngestOnly    bool    `json:"ingest_only,omitempty"`
	Rounds        int     `json:"rounds,omitempty"`
	Via           Via     `json:"via"`
	Rate          float64 `json:"rate"` // jobs/s; 0 = as fast as possible
	Concurrency   int     `json:"concurrency"`
	Jobs          int     `json:"jobs,omitempty"`
	DurationS     float64 `json:"duration_s,omitempty"`
	Webhooks      int     `json:"webhooks"`
	LatencyMS     float64 `json:"fake_latency_ms"`
	RateLimit     string  `json:"rate_limit,omitempty"`
	GlobalLimit   int     `json:"global_limit,omitempty"`
	StreakyWaitS  float64 `json:"streaky_wait_s,omitempty"`
	DrainTimeoutS float64 `json:"drain_timeout_s"`
	CPUs          int     `json:"cpus"`
	// Limits are the child's CPU quota and memory limit ("" when none).
	Limits string `json:"limits,omitempty"`
}

// ProcessReport is what /proc says of the Herald process.
type ProcessReport struct {
	PID int `json:"pid"`
	// IdleRSS is read after start (or before the load), PeakRSS the largest
	// resident size sampled during the run, HWM the kernel's VmHWM (the peak
	// since the process started) at the end of the run.
	IdleRSS int64 `json:"idle_rss_bytes"`
	PeakRSS int64 `json:"peak_rss_bytes"`
	HWM     int64 `json:"hwm_bytes"`
	// IdlePrivate and PeakPrivate are the same for the private part of
	// the resident memory (RssAnon: heap, stacks, the runtime's own). The
	// rest of RSS is pages of mapped files, the executable's above all:
	// the page cache holds those and the kernel can take them back at any
	// time, and a smaller binary has fewer.
	IdlePrivate int64 `json:"idle_private_bytes"`
	PeakPrivate int64 `json:"peak_private_bytes"`
	// CPUSeconds is user + system CPU time used during the run.
	CPUSeconds float64 `json:"cpu_s"`
	// ThreadRuns is how many times the process's threads were put on a
	// CPU during the run (woken, or preempted and resumed); 0 when it
	// could not be read.
	ThreadRuns int64 `json:"thread_runs,omitempty"`
	// IdleCPUPercent is the CPU the process used, in percent of one core,
	// over Config.Idle before the load; 0 when not measured.
	IdleCPUPercent float64 `json:"idle_cpu_percent,omitempty"`
	// ReadyS is how long a child took from its start to answering
	// /readyz; 0 for a Herald the harness did not start.
	ReadyS float64 `json:"ready_s,omitempty"`
	// CgroupPeak is the most memory the child's cgroup used (page cache
	// included), under Config.Limits; 0 without limits.
	CgroupPeak int64 `json:"cgroup_peak_bytes,omitempty"`
	// LogLines counts lines the child logged (at warn and above).
	LogLines int `json:"log_lines"`
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as an aligned, readable table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t%s\n", name, fmt.Sprintf(format, args...))
	}

	fmt.Fprintf(tw, "herald bench  %s  %s\n", r.Date.UTC().Format(time.RFC3339), r.Run.describe())
	if r.Interrupted {
		fmt.Fprintln(tw, "  interrupted before the end: the figures cover what was sent")
	}
	row("jobs sent", "%s", count(r.Sent))
	row("accepted", "%s  (%s/s)", count(r.Accepted), rate(r.AcceptedPerSecond))
	row("refused", "%s", refusals(r.Refused))
	if c := r.IngestOnly; c != nil {
		const na = "n/a (ingest only)"
		row("in jobs stream", "%s  (missing %s, extra %s)", count(c.Stored), count(c.Missing), count(c.Extra))
		for _, name := range []string{"delivered", "lost", "duplicates", "delivery latency"} {
			row(name, na)
		}
		row(r.Run.answerName()+" latency", "%s", r.HTTPLatency.describe(false))
		row("429s received", na)
	} else {
		row("delivered", "%s  (%s/s)", count(r.Delivered), rate(r.DeliveredPerSecond))
		row("lost", "%s", count(r.Lost))
		row("duplicates", "%s", count(r.Duplicates))
		if r.DeliveredUnaccepted > 0 || r.Unexpected > 0 {
			row("delivered, not accepted", "%s  (unexpected: %s)", count(r.DeliveredUnaccepted), count(r.Unexpected))
		}
		row("delivery latency", "%s", r.DeliveryLatency.describe(true))
		row(r.Run.answerName()+" latency", "%s", r.HTTPLatency.describe(false))
		if r.MaxScheduleLagMS > 0 {
			row("max schedule lag", "%s", msString(r.MaxScheduleLagMS))
		}
		row("429s received", "%s  (of %s requests to the fake)", count(int(r.Destination.RateLimited)), count(int(r.Destination.Requests)))
	}
	if h := r.Herald; h != nil {
		row("Herald RSS idle", "%s  (private %s)", mib(h.IdleRSS), mib(h.IdlePrivate))
		row("Herald RSS peak", "%s  (VmHWM %s; private %s, the rest mapped files' pages)", mib(h.PeakRSS), mib(h.HWM), mib(h.PeakPrivate))
		perJob := ""
		if r.Accepted > 0 {
			perJob = fmt.Sprintf("  (%.1f ms per 1,000 jobs", h.CPUSeconds*1e6/float64(r.Accepted))
			if h.ThreadRuns > 0 {
				perJob += fmt.Sprintf("; threads run %.1f times per job", float64(h.ThreadRuns)/float64(r.Accepted))
			}
			perJob += ")"
		}
		row("Herald CPU", "%.2f s%s", h.CPUSeconds, perJob)
		if h.IdleCPUPercent > 0 {
			row("Herald CPU idle", "%.3f %% of a core  (before the load)", h.IdleCPUPercent)
		}
		if h.CgroupPeak > 0 {
			row("cgroup memory peak", "%s  (what the cgroup charged against the limit)", mib(h.CgroupPeak))
		}
		if h.ReadyS > 0 {
			row("ready after", "%s", msString(h.ReadyS*1000))
		}
		if h.LogLines > 0 {
			row("Herald log lines", "%d  (warn and above)", h.LogLines)
		}
	}
	if r.IngestOnly != nil {
		row("harness CPU", "%.2f s  (NATS server included)", r.HarnessCPUSeconds)
	} else {
		row("harness CPU", "%.2f s", r.HarnessCPUSeconds)
	}
	if b := r.Baseline; b != nil {
		row("baseline accepted", "%s  (%s/s)  HTTP p50 %s  p99 %s", count(b.Accepted), rate(b.AcceptedPerSecond),
			msString(b.HTTPLatency.P50), msString(b.HTTPLatency.P99))
		if b.Ratio > 0 {
			row("Herald / baseline", "%.2f", b.Ratio)
		} else {
			row("Herald / baseline", "n/a (Herald's run was paced by --rate)")
		}
	} else if r.BaselineSkipped != "" {
		row("baseline", "skipped: %s", r.BaselineSkipped)
	}
	if c := r.IngestOnly; c != nil && len(c.Rounds) > 0 {
		row("rounds (accepted/s)", "%s", c.describeRounds())
	}
	return tw.Flush()
}

// describeRounds lists each round's accepted/s: "Herald 5,100 / 5,300,
// baseline 9,000 / 8,800".
func (c *IngestOnlyReport) describeRounds() string {
	herald, base := make([]string, len(c.Rounds)), make([]string, len(c.Rounds))
	withBase := false
	for i, r := range c.Rounds {
		herald[i], base[i] = rate(r.AcceptedPerSecond), rate(r.BaselineAcceptedPerSecond)
		withBase = withBase || r.BaselineAccepted > 0
	}
	s := "Herald " + strings.Join(herald, " / ")
	if withBase {
		s += ", baseline " + strings.Join(base, " / ")
	}
	return s
}

func (i RunInfo) describe() string {
	parts := []string{"via " + string(i.Via)}
	if i.Target == "bare relay" {
		parts = []string{"bare relay (the proxy's synchronous path)"}
	}
	if i.IngestOnly {
		parts = append(parts, fmt.Sprintf("ingest only, %d rounds", i.Rounds))
	}
	if i.Rate > 0 {
		parts = append(parts, strconv.FormatFloat(i.Rate, 'f', -1, 64)+" jobs/s")
	} else {
		parts = append(parts, "as fast as possible")
	}
	parts = append(parts, fmt.Sprintf("%d clients", i.Concurrency))
	if i.Jobs > 0 {
		parts = append(parts, fmt.Sprintf("%d jobs", i.Jobs))
	}
	if i.DurationS > 0 {
		parts = append(parts, (time.Duration(i.DurationS * float64(time.Second))).String())
	}
	parts = append(parts, fmt.Sprintf("%d webhooks", i.Webhooks))
	if i.LatencyMS > 0 {
		parts = append(parts, "fake latency "+msString(i.LatencyMS))
	}
	if i.RateLimit != "" {
		parts = append(parts, "rate limit "+i.RateLimit+" per webhook")
	}
	if i.GlobalLimit > 0 {
		parts = append(parts, fmt.Sprintf("global limit %d/s", i.GlobalLimit))
	}
	if i.StreakyWait() > 0 {
		parts = append(parts, "streaky wait "+i.StreakyWait().String())
	}
	if i.CPUs > 0 {
		parts = append(parts, fmt.Sprintf("%d CPUs", i.CPUs))
	}
	if i.Limits != "" {
		parts = append(parts, "limited to "+i.Limits)
	}
	return strings.Join(parts, ", ")
}

// StreakyWait is the run's ingest.streaky.wait.
func (i RunInfo) StreakyWait() time.Duration {
	return time.Duration(i.StreakyWaitS * float64(time.Second))
}

func (i RunInfo) answerName() string {
	if i.Via == ViaNATS {
		return "publish"
	}
	return "HTTP"
}

func (l Latency) describe(withP95 bool) string {
	if l.Count == 0 {
		return "-"
	}
	s := "p50 " + msString(l.P50)
	if withP95 {
		s += "  p95 " + msString(l.P95)
	}
	return s + "  p99 " + msString(l.P99) + "  max " + msString(l.Max)
}

// msString formats milliseconds with about three significant digits.
func msString(v float64) string {
	switch {
	case v >= 10_000:
		return strconv.FormatFloat(v/1000, 'f', 1, 64) + " s"
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + " s"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	}
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }

func rate(v float64) string { return count(int(v + 0.5)) }

// count formats n with thousands separators.
func count(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return s
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func refusals(m map[string]int) string {
	total := 0
	for _, n := range m {
		total += n
	}
	if total == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+": "+count(m[k]))
	}
	return count(total) + "  (" + strings.Join(parts, ", ") + ")"
}
