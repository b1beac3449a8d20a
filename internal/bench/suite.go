package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
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
	Name string `json:"name"`
	// Round is the round the run was part of, from 1 (see RunSuite).
	Round  int     `json:"round"`
	Report *Report `json:"report"`
}

// SuiteRatio compares two runs of each round: A's figure over B's, in the
// same round. Value is the median over the rounds; with more than one
// round, Min, Max and Rounds (one value per round, in order) say how far
// the rounds were apart.
type SuiteRatio struct {
	Name   string    `json:"name"`
	Value  float64   `json:"value"`
	Min    float64   `json:"min,omitempty"`
	Max    float64   `json:"max,omitempty"`
	Rounds []float64 `json:"rounds,omitempty"`
}

// RunSuite runs cfg's load three times, each against a fresh child: Herald
// with the Streaky wait (cfg.StreakyWait, DefaultSuiteWait when 0), Herald
// without it, and the bare relay (BareRelay), all via streaky and without
// the decode-and-publish baseline. With cfg.Repeat rounds, it does that
// Repeat times, every other round in the reverse order, so that a machine
// that gets busier or quieter during the suite weighs on every run alike;
// each ratio is taken within a round, and the suite reports their median.
// It stops at the first run that fails; the suite holds the runs made so
// far.
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
	rounds := max(cfg.Repeat, 1)
	s := &Suite{Date: time.Now().UTC()}
	defer s.ratios()
	for round := 1; round <= rounds; round++ {
		order := slices.Clone(runs)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, run := range order {
			if cfg.Output.Progress != nil {
				if rounds > 1 {
					fmt.Fprintf(cfg.Output.Progress, "suite: %s (round %d of %d)\n", run.name, round, rounds)
				} else {
					fmt.Fprintf(cfg.Output.Progress, "suite: %s\n", run.name)
				}
			}
			r, err := Run(ctx, run.cfg(cfg))
			if r != nil {
				s.Runs = append(s.Runs, SuiteRun{Name: run.name, Round: round, Report: r})
			}
			if err != nil {
				return s, fmt.Errorf("%s: %w", run.name, err)
			}
			if r.Interrupted {
				return s, nil
			}
		}
	}
	return s, nil
}

// rounds is the number of rounds s holds runs of.
func (s *Suite) rounds() int {
	n := 0
	for _, r := range s.Runs {
		n = max(n, r.Round)
	}
	return n
}

// run returns the report of the named run of round, nil when it did not
// run.
func (s *Suite) run(name string, round int) *Report {
	for _, r := range s.Runs {
		if r.Name == name && r.Round == round {
			return r.Report
		}
	}
	return nil
}

// ratios fills s.Ratios from the runs that ran: each ratio within each
// round, then their median over the rounds.
func (s *Suite) ratios() {
	s.Ratios = nil
	var names []string
	values := map[string][]float64{}
	rounds := s.rounds()
	for round := 1; round <= rounds; round++ {
		s.roundRatios(round, func(name string, a, b float64) {
			if a > 0 && b > 0 {
				if _, ok := values[name]; !ok {
					names = append(names, name)
				}
				values[name] = append(values[name], a/b)
			}
		})
	}
	for _, name := range names {
		v := values[name]
		r := SuiteRatio{Name: name, Value: median(v)}
		if rounds > 1 {
			r.Min, r.Max, r.Rounds = slices.Min(v), slices.Max(v), v
		}
		s.Ratios = append(s.Ratios, r)
	}
}

// median is the middle of v (the mean of the two middle values when there
// is an even number of them); v is not changed.
func median(v []float64) float64 {
	sorted := slices.Clone(v)
	slices.Sort(sorted)
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// roundRatios calls add with each ratio's name and the two figures it
// compares, from round's runs.
func (s *Suite) roundRatios(round int, add func(name string, a, b float64)) {
	wait, noWait, bare := s.run(SuiteWait, round), s.run(SuiteNoWait, round), s.run(SuiteBareRelay, round)
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
// then the ratios (with more than one round: the median, and the range over
// the rounds).
func (s *Suite) WriteTable(w io.Writer) error {
	rounds := s.rounds()
	label := func(r SuiteRun) string {
		if rounds > 1 {
			return fmt.Sprintf("%s, round %d", r.Name, r.Round)
		}
		return r.Name
	}
	for _, r := range s.Runs {
		fmt.Fprintf(w, "== %s\n", label(r))
		if err := r.Report.WriteTable(w); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "summary\tdelivered/s\tHTTP p50\tHTTP p99\tCPU per 1,000 jobs\truns per job\tRSS idle\tRSS peak\tprivate peak\tlost\t\n")
	for _, r := range s.Runs {
		rep := r.Report
		cpu, runs, idle, peak, private := "-", "-", "-", "-", "-"
		if rep.Herald != nil {
			cpu = fmt.Sprintf("%.0f ms", cpuPerJob(rep)*1e6)
			if rep.Herald.ThreadRuns > 0 && rep.Delivered > 0 {
				runs = fmt.Sprintf("%.1f", float64(rep.Herald.ThreadRuns)/float64(rep.Delivered))
			}
			idle, peak, private = mib(rep.Herald.IdleRSS), mib(rep.Herald.PeakRSS), mib(rep.Herald.PeakPrivate)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", label(r), rate(rep.DeliveredPerSecond),
			msString(rep.HTTPLatency.P50), msString(rep.HTTPLatency.P99), cpu, runs, idle, peak, private, rep.Lost)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Ratios) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if rounds > 1 {
			fmt.Fprintf(tw, "  median of %d rounds\t\t(range)\n", rounds)
		}
		for _, r := range s.Ratios {
			if len(r.Rounds) > 1 {
				fmt.Fprintf(tw, "  %s\t%.2f\t(%.2f-%.2f)\n", r.Name, r.Value, r.Min, r.Max)
			} else {
				fmt.Fprintf(tw, "  %s\t%.2f\n", r.Name, r.Value)
			}
		}
		return tw.Flush()
	}
	return nil
}
