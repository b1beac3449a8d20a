package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/heraldrelay/herald/internal/ingest"
)

// DefaultSuiteWait is the Streaky wait of the suite's first run: Herald's
// default ingest.streaky.wait, the path Streaky's Worker takes.
const DefaultSuiteWait = ingest.DefaultStreakyWait

// The suite's runs, in the order they run.
const (
	SuiteWait      = "streaky, wait"
	SuiteNoWait    = "streaky, no wait"
	SuiteBareRelay = "bare relay"
)

// Suite is a suite run's outcome: Herald's default path (the Streaky
// endpoint waiting for the outcome), the same without the wait, and the
// bare relay, under the same load, each with a fresh child; and the ratios
// between them.
type Suite struct {
	Version string       `json:"version,omitempty"`
	Date    time.Time    `json:"date"`
	Runs    []SuiteRun   `json:"runs"`
	Ratios  []SuiteRatio `json:"ratios"`
}

// SuiteRun is one run of a suite.
type SuiteRun struct {
	Name   string  `json:"name"`
	Report *Report `json:"report"`
}

// SuiteRatio compares two runs: Value is A's figure over B's.
type SuiteRatio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// RunSuite runs cfg's load three times, each against a fresh child: Herald
// with the Streaky wait (cfg.StreakyWait, DefaultSuiteWait when 0), Herald
// without it, and the bare relay (BareRelay), all via streaky and without
// the decode-and-publish baseline. It stops at the first run that fails; the
// suite holds the runs made so far.
func RunSuite(ctx context.Context, cfg Config) (*Suite, error) {
	if cfg.URL != "" || cfg.IngestOnly || cfg.BareRelay {
		return nil, errors.New("bench: the suite starts its own children: no url, ingest only or bare relay")
	}
	wait := cfg.StreakyWait
	if wait == 0 {
		wait = DefaultSuiteWait
	}
	cfg.Via, cfg.NoBaseline = ViaStreaky, true
	runs := []struct {
		name string
		cfg  func(Config) Config
	}{
		{SuiteWait, func(c Config) Config { c.StreakyWait = wait; return c }},
		{SuiteNoWait, func(c Config) Config { c.StreakyWait = 0; return c }},
		{SuiteBareRelay, func(c Config) Config { c.StreakyWait, c.BareRelay = 0, true; return c }},
	}
	s := &Suite{Date: time.Now().UTC()}
	for _, run := range runs {
		if cfg.Output.Progress != nil {
			fmt.Fprintf(cfg.Output.Progress, "suite: %s\n", run.name)
		}
		r, err := Run(ctx, run.cfg(cfg))
		if r != nil {
			s.Runs = append(s.Runs, SuiteRun{Name: run.name, Report: r})
		}
		if err != nil {
			return s, fmt.Errorf("%s: %w", run.name, err)
		}
		if r.Interrupted {
			break
		}
	}
	s.ratios()
	return s, nil
}

// run returns the named run's report, nil when it did not run.
func (s *Suite) run(name string) *Report {
	for _, r := range s.Runs {
		if r.Name == name {
			return r.Report
		}
	}
	return nil
}

// ratios fills s.Ratios from the runs that ran.
func (s *Suite) ratios() {
	s.Ratios = nil
	add := func(name string, a, b float64) {
		if a > 0 && b > 0 {
			s.Ratios = append(s.Ratios, SuiteRatio{Name: name, Value: a / b})
		}
	}
	wait, noWait, bare := s.run(SuiteWait), s.run(SuiteNoWait), s.run(SuiteBareRelay)
	if wait != nil && noWait != nil {
		add("delivered/s: wait / no wait", wait.DeliveredPerSecond, noWait.DeliveredPerSecond)
	}
	if wait != nil && bare != nil {
		add("delivered/s: wait / bare relay", wait.DeliveredPerSecond, bare.DeliveredPerSecond)
		add("CPU per job: wait / bare relay", cpuPerJob(wait), cpuPerJob(bare))
		add("HTTP p99: wait / bare relay", wait.HTTPLatency.P99, bare.HTTPLatency.P99)
	}
	if noWait != nil && bare != nil {
		add("delivered/s: no wait / bare relay", noWait.DeliveredPerSecond, bare.DeliveredPerSecond)
		add("CPU per job: no wait / bare relay", cpuPerJob(noWait), cpuPerJob(bare))
	}
}

// cpuPerJob is the measured process's CPU seconds per delivered job; 0 when
// not measured.
func cpuPerJob(r *Report) float64 {
	if r.Herald == nil || r.Delivered == 0 {
		return 0
	}
	return r.Herald.CPUSeconds / float64(r.Delivered)
}

// Lost returns the jobs lost over all runs.
func (s *Suite) Lost() int {
	n := 0
	for _, r := range s.Runs {
		n += r.Report.Lost
	}
	return n
}

// LostError is an error naming the lost jobs, nil when none was lost.
func (s *Suite) LostError() error {
	for _, r := range s.Runs {
		if err := r.Report.LostError(); err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
	}
	return nil
}

// WriteJSON writes s as indented JSON.
func (s *Suite) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteTable writes each run's table, then one line per run side by side,
// then the ratios.
func (s *Suite) WriteTable(w io.Writer) error {
	for _, r := range s.Runs {
		fmt.Fprintf(w, "== %s\n", r.Name)
		if err := r.Report.WriteTable(w); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "summary\tdelivered/s\tHTTP p50\tHTTP p99\tCPU per 1,000 jobs\tRSS idle\tRSS peak\tlost\t\n")
	for _, r := range s.Runs {
		rep := r.Report
		cpu, idle, peak := "-", "-", "-"
		if rep.Herald != nil {
			cpu = fmt.Sprintf("%.0f ms", cpuPerJob(rep)*1e6)
			idle, peak = mib(rep.Herald.IdleRSS), mib(rep.Herald.PeakRSS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", r.Name, rate(rep.DeliveredPerSecond),
			msString(rep.HTTPLatency.P50), msString(rep.HTTPLatency.P99), cpu, idle, peak, rep.Lost)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Ratios) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range s.Ratios {
			fmt.Fprintf(tw, "  %s\t%.2f\n", r.Name, r.Value)
		}
		return tw.Flush()
	}
	return nil
}
