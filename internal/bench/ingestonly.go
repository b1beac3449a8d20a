package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/queue"
)

// IngestOnlyReport is what an IngestOnly run adds to a Report: its rounds,
// and the check that the jobs stream holds every job Herald accepted (in
// place of the delivery accounting, as nothing is delivered).
type IngestOnlyReport struct {
	Rounds []IngestRound `json:"rounds"`
	// Stored counts the messages the jobs stream held after the Herald
	// phases; Missing the accepted jobs that were not there, Extra the
	// messages beyond the accepted jobs (requests refused or unanswered
	// whose job was stored all the same).
	Stored  int `json:"stored"`
	Missing int `json:"missing"`
	Extra   int `json:"extra"`
}

// IngestRound is one round of an IngestOnly run: a Herald phase and a
// baseline phase of Jobs jobs each.
type IngestRound struct {
	Jobs              int     `json:"jobs"`
	Accepted          int     `json:"accepted"`
	AcceptedPerSecond float64 `json:"accepted_per_s"`
	// Stored is the jobs stream's message count after the Herald phase.
	Stored int `json:"stored"`
	// BaselineFirst says the baseline phase ran before Herald's.
	BaselineFirst             bool    `json:"baseline_first,omitempty"`
	BaselineAccepted          int     `json:"baseline_accepted,omitempty"`
	BaselineAcceptedPerSecond float64 `json:"baseline_accepted_per_s,omitempty"`
}

// runIngestOnly is Run for cfg.IngestOnly (cfg has its defaults): an
// embedded JetStream server in this process, `herald ingest` as the child
// publishing to it, and rounds of a Herald phase and a baseline phase
// against the same server, in alternating order so that both meet the same
// machine load. The jobs stream and the baseline's are purged after each
// phase.
func runIngestOnly(ctx context.Context, cfg Config, notice func(string, ...any)) (*Report, error) {
	key, secret := randomSecret(), randomSecret()
	keys, err := crypto.NewKeyring(key)
	if err != nil {
		return nil, err
	}
	// The fake is never called (there are no workers); it names the webhooks
	// the child's ingest checks against its allowed hosts.
	dest, j, err := newDestination(cfg, keys, func(int) {})
	if err != nil {
		return nil, err
	}
	defer dest.Close()

	storeDir, err := os.MkdirTemp("", "herald-bench-nats-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(storeDir)
	ns, err := queue.StartEmbedded(queue.EmbeddedConfig{
		Listen: "127.0.0.1:0", StoreDir: storeDir, ServerName: "herald-bench",
	}, serverLogger(cfg.Output.HeraldLog))
	if err != nil {
		return nil, err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	natsURL := ns.ClientURL()

	notice("NATS JetStream at %s (in the harness); starting %s ingest", natsURL, cfg.Executable)
	ch, err := startChild(ctx, cfg, key, secret, natsURL)
	if err != nil {
		return nil, err
	}
	defer func() {
		if ch != nil {
			_ = ch.stop()
		}
	}()

	nc, err := nats.Connect(natsURL, nats.Name("herald-bench"))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	jobsStream, err := js.Stream(ctx, herald.JobsStream) // the child created it
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", herald.JobsStream, err)
	}
	sub, closeSub, err := newSubmitter(cfg, ch.url, natsURL, secret, j)
	if err != nil {
		return nil, err
	}
	defer closeSub()
	var base *baseline
	if !cfg.NoBaseline {
		if base, err = startBaseline(ctx, natsURL, cfg.Via, j, cfg.Concurrency); err != nil {
			return nil, err
		}
		defer base.close(ctx)
	}

	r := &Report{Date: time.Now().UTC(), Run: runInfo(cfg), IngestOnly: &IngestOnlyReport{}}
	pid := ch.pid()
	sleepCtx(ctx, idleSettle)
	herald0, err := readProc(pid)
	measured := err == nil
	if !measured {
		notice("not measuring Herald's process: %v", err)
	}
	var smp *sampler
	if measured {
		smp = startSampler(pid)
	}

	var (
		answers, baseAnswers []time.Duration
		cpu, selfCPUUsed     time.Duration
		b                    *BaselineReport
	)
	if base != nil {
		b = &BaselineReport{}
	}
	r.Refused = make(map[string]int)
	// heraldPhase sends n jobs to the child and checks the jobs stream.
	heraldPhase := func(round *IngestRound) error {
		p0, _ := readProc(pid)
		self0 := selfCPU()
		tr := newTracker(time.Now())
		drive(ctx, shape{concurrency: cfg.Concurrency, jobs: round.Jobs}, tr, sub)
		a := tr.tally()
		selfCPUUsed += selfCPU() - self0
		if p1, err := readProc(pid); err == nil && measured {
			cpu += p1.cpu - p0.cpu
		}
		if !ch.alive() {
			return fmt.Errorf("herald ingest exited during the run")
		}
		r.Sent += a.sent
		r.Accepted += a.accepted
		for k, v := range a.refused {
			r.Refused[k] += v
		}
		r.SendSeconds += a.lastAnswer.Seconds()
		answers = append(answers, a.answer...)
		round.Accepted = a.accepted
		if secs := a.lastAnswer.Seconds(); secs > 0 {
			round.AcceptedPerSecond = float64(a.accepted) / secs
		}
		stored, err := countAndPurge(ctx, jobsStream)
		if err != nil {
			return err
		}
		round.Stored = stored
		check := r.IngestOnly
		check.Stored += stored
		check.Missing += max(0, a.accepted-stored)
		check.Extra += max(0, stored-a.accepted)
		return nil
	}
	baselinePhase := func(round *IngestRound) error {
		br := base.run(ctx, round.Jobs)
		if err := base.purge(ctx); err != nil {
			return err
		}
		round.BaselineAccepted, round.BaselineAcceptedPerSecond = br.Accepted, br.AcceptedPerSecond
		b.Sent += br.Sent
		b.Accepted += br.Accepted
		b.Seconds += br.Seconds
		for k, v := range br.Refused {
			if b.Refused == nil {
				b.Refused = make(map[string]int)
			}
			b.Refused[k] += v
		}
		baseAnswers = append(baseAnswers, br.answers...)
		return nil
	}

	var runErr error
	for i := range cfg.Rounds {
		if ctx.Err() != nil {
			break
		}
		round := IngestRound{Jobs: cfg.Jobs / cfg.Rounds, BaselineFirst: base != nil && i%2 == 1}
		if i < cfg.Jobs%cfg.Rounds {
			round.Jobs++
		}
		phases := []func(*IngestRound) error{heraldPhase}
		if base != nil {
			phases = append(phases, baselinePhase)
			if round.BaselineFirst {
				phases[0], phases[1] = phases[1], phases[0]
			}
		}
		for _, phase := range phases {
			if runErr = phase(&round); runErr != nil {
				break
			}
		}
		r.IngestOnly.Rounds = append(r.IngestOnly.Rounds, round)
		if runErr != nil {
			break
		}
		line := fmt.Sprintf("round %d/%d: %s jobs, Herald %s/s, %s in the jobs stream", i+1, cfg.Rounds,
			count(round.Jobs), rate(round.AcceptedPerSecond), count(round.Stored))
		if base != nil {
			line += fmt.Sprintf(", baseline %s/s", rate(round.BaselineAcceptedPerSecond))
		}
		notice("%s", line)
	}
	r.Interrupted = ctx.Err() != nil

	if r.SendSeconds > 0 {
		r.AcceptedPerSecond = float64(r.Accepted) / r.SendSeconds
	}
	r.HTTPLatency = Summarize(answers)
	r.HarnessCPUSeconds = selfCPUUsed.Seconds()
	if measured {
		peak := smp.Stop()
		if herald1, err := readProc(pid); err == nil {
			r.Herald = &ProcessReport{
				PID: pid, IdleRSS: herald0.rss, PeakRSS: max(peak.rss, herald1.rss), HWM: herald1.hwm,
				IdlePrivate: herald0.anon, PeakPrivate: max(peak.anon, herald1.anon),
				CPUSeconds: cpu.Seconds(), LogLines: ch.logs.Lines(), ReadyS: ch.ready.Seconds(),
			}
			if ch.cgroup != nil {
				r.Herald.CgroupPeak, _ = ch.cgroup.peakMemory()
			}
		}
	}
	switch {
	case b != nil && b.Sent > 0:
		if b.Seconds > 0 {
			b.AcceptedPerSecond = float64(b.Accepted) / b.Seconds
		}
		if b.AcceptedPerSecond > 0 {
			b.Ratio = r.AcceptedPerSecond / b.AcceptedPerSecond
		}
		b.HTTPLatency = Summarize(baseAnswers)
		r.Baseline = b
	case cfg.NoBaseline:
		r.BaselineSkipped = "disabled"
	default:
		r.BaselineSkipped = "interrupted"
	}
	if runErr != nil {
		return r, runErr
	}
	err = ch.stop()
	ch = nil
	return r, err
}

// countAndPurge returns the number of messages in s and empties it.
func countAndPurge(ctx context.Context, s jetstream.Stream) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read stream %s: %w", herald.JobsStream, err)
	}
	if err := s.Purge(ctx); err != nil {
		return 0, fmt.Errorf("purge stream %s: %w", herald.JobsStream, err)
	}
	return int(info.State.Msgs), nil
}

// serverLogger is the embedded server's logger: its warnings and errors go
// to w (with the child's log), the rest nowhere.
func serverLogger(w io.Writer) *slog.Logger {
	if w == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
