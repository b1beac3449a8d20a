package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/publisher"
)

// Drain timings.
const (
	drainPoll = 20 * time.Millisecond
	// duplicateGrace is how long the harness keeps counting after the last
	// job was delivered, so that a duplicate sent right behind it is seen.
	duplicateGrace = 250 * time.Millisecond
)

// Run runs one benchmark: it starts the fake Discord and Herald (a child, or
// the running one at cfg.URL), sends the load, waits for the deliveries,
// runs the baseline and stops the child. It returns an error without a
// report when the run could not be set up; a report and an error when
// something failed afterwards (Herald exited, the baseline failed). Jobs
// lost are not an error: see Report.Lost.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	out := cfg.Output
	notice := func(format string, args ...any) {
		if out.Progress != nil {
			fmt.Fprintf(out.Progress, format+"\n", args...)
		}
	}

	if cfg.IngestOnly {
		return runIngestOnly(ctx, cfg, notice)
	}
	key, secret := cfg.Key, cfg.Secret
	if cfg.URL == "" {
		key, secret = randomSecret(), randomSecret()
	}
	keys, err := crypto.NewKeyring(key)
	if err != nil {
		return nil, err
	}
	tr := newTracker(time.Now())
	dest, j, err := newDestination(cfg, keys, func(seq int) { tr.deliver(seq) })
	if err != nil {
		return nil, err
	}
	defer dest.Close()

	url, natsURL, pid := cfg.URL, cfg.NATSURL, cfg.PID
	var ch *child
	if cfg.URL == "" {
		role := "serve"
		if cfg.BareRelay {
			role = "bench relay"
		}
		notice("starting %s %s", cfg.Executable, role)
		if ch, err = startChild(ctx, cfg, key, secret, ""); err != nil {
			return nil, err
		}
		defer func() {
			if ch != nil {
				_ = ch.stop()
			}
		}()
		url, natsURL, pid = ch.url, ch.natsURL, ch.pid()
	} else {
		notice("fake Discord at %s (webhook URLs like %s); Herald must allow its host over http", dest.URL(), dest.WebhookURL(0))
		if err := waitReady(ctx, url, nil); err != nil {
			return nil, fmt.Errorf("herald at %s: %w", url, err)
		}
	}

	sub, closeSub, err := newSubmitter(cfg, url, natsURL, secret, j)
	if err != nil {
		return nil, err
	}
	defer closeSub()

	r := &Report{Date: time.Now().UTC(), Run: runInfo(cfg)}
	var herald0 procSample
	measured := pid > 0
	if measured {
		if ch != nil {
			sleepCtx(ctx, idleSettle)
		}
		if herald0, err = readProc(pid); err != nil {
			notice("not measuring Herald's process: %v", err)
			measured = false
		}
	}
	var idleCPU float64
	if measured && cfg.Idle > 0 {
		// Before any load: what the process costs doing nothing.
		notice("measuring %s idle for %s", url, cfg.Idle)
		start := time.Now()
		threads0, preciseErr := threadsStat(pid)
		sleepCtx(ctx, cfg.Idle)
		threads1, err := threadsStat(pid)
		preciseErr = errors.Join(preciseErr, err)
		if idle1, err := readProc(pid); err == nil {
			used := idle1.cpu - herald0.cpu // in ticks of 10 ms
			if preciseErr == nil {
				used = threads1.cpu - threads0.cpu
			}
			idleCPU = 100 * used.Seconds() / time.Since(start).Seconds()
			herald0 = idle1
		}
	}

	var smp *sampler
	var runs0 threadFigures
	runsErr := errNotMeasured
	if measured {
		smp = startSampler(pid)
		runs0, runsErr = threadsStat(pid)
	}
	stopProgress, progressDone := make(chan struct{}), make(chan struct{})
	if out.Progress != nil {
		go showProgress(out.Progress, out.ProgressTTY, tr, stopProgress, progressDone)
	} else {
		close(progressDone)
	}
	self0 := selfCPU()
	loadStart := tr.since()
	lag := drive(ctx, shape{rate: cfg.Rate, concurrency: cfg.Concurrency, jobs: cfg.Jobs, duration: cfg.Duration}, tr, sub)
	childErr := drain(ctx, tr, cfg.DrainTimeout, ch)
	self1 := selfCPU()
	close(stopProgress)
	<-progressDone
	r.Interrupted = ctx.Err() != nil

	if measured {
		peak := smp.Stop()
		runs1, err := threadsStat(pid)
		runsErr = errors.Join(runsErr, err)
		if herald1, err := readProc(pid); err == nil {
			r.Herald = &ProcessReport{
				PID: pid, IdleRSS: herald0.rss, PeakRSS: max(peak.rss, herald1.rss), HWM: herald1.hwm,
				IdlePrivate: herald0.anon, PeakPrivate: max(peak.anon, herald1.anon),
				CPUSeconds: (herald1.cpu - herald0.cpu).Seconds(), IdleCPUPercent: idleCPU,
			}
			if runsErr == nil {
				r.Herald.ThreadRuns = runs1.runs - runs0.runs
			}
			if ch != nil {
				r.Herald.LogLines = ch.logs.Lines()
				r.Herald.ReadyS = ch.ready.Seconds()
				if ch.cgroup != nil {
					r.Herald.CgroupPeak, _ = ch.cgroup.peakMemory()
				}
			}
		}
	}
	r.HarnessCPUSeconds = (self1 - self0).Seconds()
	r.MaxScheduleLagMS = ms(lag)
	r.fill(tr.tally(), loadStart, j)
	r.Destination = dest.Stats()
	if childErr != nil {
		return r, childErr
	}

	switch {
	case cfg.NoBaseline:
		r.BaselineSkipped = "disabled"
	case natsURL == "":
		r.BaselineSkipped = "no NATS URL"
	case r.Interrupted:
		r.BaselineSkipped = "interrupted"
	default:
		notice("baseline: %d jobs, %d clients, as fast as possible", max(r.Sent, 1), cfg.Concurrency)
		b, err := runBaseline(ctx, natsURL, cfg.Via, j, max(r.Sent, 1), cfg.Concurrency)
		if err != nil {
			return r, err
		}
		if b.AcceptedPerSecond > 0 && cfg.Rate == 0 {
			b.Ratio = r.AcceptedPerSecond / b.AcceptedPerSecond
		}
		r.Baseline = b
	}
	if ch != nil {
		err := ch.stop()
		ch = nil
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// errNotMeasured stands for a figure that was not read.
var errNotMeasured = errors.New("not measured")

// newDestination starts cfg's fake Discord, which reports each delivery's
// job to deliver, and the run's jobs: one webhook of the fake per
// cfg.Webhooks, sealed with keys.
func newDestination(cfg Config, keys *crypto.Keyring, deliver func(seq int)) (*Destination, jobs, error) {
	dest, err := NewDestination(DestinationConfig{
		Listen:      cfg.FakeListen,
		Marker:      "hb-" + randomHex(4) + "-",
		Deliver:     deliver,
		Latency:     cfg.Latency,
		RateLimit:   cfg.RateLimit,
		GlobalLimit: cfg.GlobalLimit,
	})
	if err != nil {
		return nil, jobs{}, err
	}
	j := jobs{marker: dest.cfg.Marker, sealed: make([]string, cfg.Webhooks)}
	for i := range j.sealed {
		if j.sealed[i], err = keys.Seal(dest.WebhookURL(i)); err != nil {
			dest.Close()
			return nil, jobs{}, err
		}
	}
	return dest, j, nil
}

// drain waits until every accepted job was delivered (then a short grace for
// duplicates), timeout passes, ctx ends, or the child exits (an error).
func drain(ctx context.Context, tr *tracker, timeout time.Duration, ch *child) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for !tr.settled() {
		if ch != nil && !ch.alive() {
			err := ch.stop()
			if err == nil {
				err = fmt.Errorf("herald %s exited during the run", ch.role)
			}
			return err
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
	sleepCtx(ctx, duplicateGrace)
	return nil
}

// newSubmitter returns the submitter for cfg.Via and a function releasing it.
func newSubmitter(cfg Config, url, natsURL, secret string, j jobs) (submitter, func(), error) {
	if cfg.Via == ViaNATS {
		nc, err := nats.Connect(natsURL, nats.Name("herald-bench"))
		if err != nil {
			return nil, nil, fmt.Errorf("connect to NATS: %w", err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return &natsSubmitter{pub: publisher.New(js), jobs: j}, nc.Close, nil
	}
	path := "/v1/notifications"
	if cfg.Via == ViaStreaky {
		path = "/send-notification"
	}
	client := newHTTPClient(cfg.Concurrency)
	s := &httpSubmitter{
		client: client, endpoint: strings.TrimRight(url, "/") + path, secret: secret,
		via: cfg.Via, jobs: j, streakyAnswers: cfg.Via == ViaStreaky,
	}
	return s, client.CloseIdleConnections, nil
}

// fill sets the job counts, rates and latencies from a tally. Times in a are
// offsets from the tracker's start; loadStart is the load's.
func (r *Report) fill(a accounting, loadStart time.Duration, j jobs) {
	r.Sent, r.Accepted, r.Delivered = a.sent, a.accepted, a.delivered
	r.Refused = a.refused
	r.Lost, r.Duplicates = a.lost, a.duplicates
	r.DeliveredUnaccepted, r.Unexpected = a.deliveredUnaccepted, a.unexpected
	for _, seq := range a.lostSample {
		r.LostSample = append(r.LostSample, j.text(seq))
	}
	if a.lastAnswer > loadStart {
		r.SendSeconds = (a.lastAnswer - loadStart).Seconds()
		r.AcceptedPerSecond = float64(a.accepted) / r.SendSeconds
	}
	if a.lastDelivery > loadStart {
		r.DeliverSeconds = (a.lastDelivery - loadStart).Seconds()
		r.DeliveredPerSecond = float64(a.delivered) / r.DeliverSeconds
	}
	r.DeliveryLatency = Summarize(a.delivery)
	r.HTTPLatency = Summarize(a.answer)
}

func runInfo(cfg Config) RunInfo {
	target := "child"
	switch {
	case cfg.URL != "":
		target = cfg.URL
	case cfg.BareRelay:
		target = "bare relay"
	}
	rounds := 0
	if cfg.IngestOnly {
		rounds = cfg.Rounds
	}
	return RunInfo{
		Target: target, IngestOnly: cfg.IngestOnly, Rounds: rounds, Via: cfg.Via, Rate: cfg.Rate, Concurrency: cfg.Concurrency,
		Jobs: cfg.Jobs, DurationS: cfg.Duration.Seconds(), Webhooks: cfg.Webhooks,
		LatencyMS: ms(cfg.Latency), RateLimit: cfg.RateLimit.String(), GlobalLimit: cfg.GlobalLimit,
		StreakyWaitS: cfg.StreakyWait.Seconds(), DrainTimeoutS: cfg.DrainTimeout.Seconds(),
		CPUs: runtime.NumCPU(), Limits: cfg.Limits.String(),
	}
}

// randomSecret is a fresh key or secret: 32 random bytes as unpadded
// base64url, 43 ASCII characters.
func randomSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// errLost is wrapped by the error LostError returns.
var errLost = errors.New("jobs lost")

// LostError returns an error when r counts lost jobs, nil otherwise: the
// harness's verdict for scripts.
func (r *Report) LostError() error {
	if c := r.IngestOnly; c != nil && c.Missing > 0 {
		return fmt.Errorf("%w: %d of %d accepted jobs are not in the jobs stream", errLost, c.Missing, r.Accepted)
	}
	if r.Lost == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d of %d accepted jobs were not delivered within the drain timeout (e.g. %s)",
		errLost, r.Lost, r.Accepted, strings.Join(r.LostSample, ", "))
}
