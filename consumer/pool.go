// Package consumer delivers jobs: a Pool of workers pulls them from the
// JetStream jobs stream through a durable consumer shared by every worker
// process, opens their credentials in memory, sends them through a channel
// Sender, and decides from the outcome whether JetStream acks, redelivers
// later, or dead-letters each one.
//
// Delivery is at least once. A job is acked only after its send succeeded
// and its status record was written; a background settler does both writes
// while the worker moves on to its next job. The Ack is plain
// (fire-and-forget) for throughput: if it is lost, or the process dies
// between send and ack (kill -9), JetStream redelivers the job after AckWait
// and the destination sees it twice; until the ack the job is kept alive
// with InProgress. Nothing is dropped silently: a job leaves the stream only
// when acked or, when it will never be delivered, once Deps.DeadLetters has
// stored it (then it is terminated).
//
// Retries. A destination's "later" (a *herald.RetryAfterError: 429, Herald's
// own pacing, an open breaker) waits exactly as long as asked, with
// NakWithDelay, and uses no attempt. A transient failure (5xx, timeout,
// network error, panic) is a failed attempt: the job waits an exponential
// backoff with jitter, until Config.MaxAttempts failures or Config.MaxAge
// after its budget start, then it is dead-lettered. Failed attempts are
// counted in the job's status record (Deps.Status), not by JetStream, whose
// delivery count also counts waits and crash redeliveries.
//
// Each message goes through one chain of handlers, built once:
//
//	recover → open credentials → Deps.Middlewares… → send (bounded by SendTimeout)
//
// and one function (decide) maps the chain's error to the message's fate.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// releaseDelay is how long a job that was received but never started at
// shutdown waits before JetStream offers it again. A plain Nak could bounce
// it straight back to this process's pull request, which the server forgets
// only once it has seen the unsubscribe; a second is ample for that, and far
// shorter than waiting out AckWait.
const releaseDelay = time.Second

// settlersPerWorker sizes the goroutines that finish delivered jobs in the
// background (see Pool.settle): a status write's round trip may take longer
// than the send before it, so each worker gets two, and a slow status store
// still holds the workers back.
const settlersPerWorker = 2

// consumerLookupTimeout bounds the check that the durable consumer still
// exists after a consume error.
const consumerLookupTimeout = 5 * time.Second

// Deps are a Pool's collaborators.
type Deps struct {
	// JS reaches the jobs stream (required). The Pool never closes it; the
	// connection must stay open until Run has returned, since in-flight jobs
	// are acked while Run drains.
	JS jetstream.JetStream
	// Keys opens job credentials (required).
	Keys *crypto.Keyring
	// Credentials opens the vault credentials jobs name by CredentialID;
	// nil makes such jobs wait (retried with backoff) until a worker with a
	// vault takes them.
	Credentials CredentialResolver
	// Senders deliver, one per channel (at least one required). A job for a
	// channel without a Sender is retried with backoff, so a worker started
	// without Telegram configured delays Telegram jobs instead of failing them.
	Senders map[herald.Channel]Sender
	// Status records job status and keeps each job's failed attempts (see
	// StatusStore); nil records none, and then every redelivery of a job
	// counts as a failed attempt.
	Status StatusStore
	// Outcomes, when set, is handed every final record (delivered, failed,
	// dead) as soon as the outcome is known, before the record is written:
	// the ingest of the same process answers the requests waiting for it at
	// once (status.Outcomes implements it).
	Outcomes Settler
	// DeadLetters stores the jobs that will never be delivered (permanent
	// errors, undecodable jobs, credentials that do not open, spent retry
	// budgets) before they are terminated; their status record says dead.
	// When nil, such jobs are terminated at once, recorded as failed, and
	// kept nowhere: only for library users who want no dead letters.
	DeadLetters DeadLetterer
	// Logger receives one line per outcome; nil discards.
	Logger *slog.Logger
	// Metrics records delivery metrics; nil uses a private registry.
	Metrics *metrics.Metrics
	// Middlewares wrap the send, outermost first. They run after the
	// credentials are opened (Delivery.Notification is set) and inside the
	// panic recovery.
	Middlewares []Middleware
	// Destination returns a notification's destination key, as pacing and
	// breakers key their state (channels.Discord.Destination and
	// channels.Telegram.Destination); it must never return a credential. It
	// lets the Pool cap the jobs parked per destination
	// (Config.MaxParkedPerDestination); nil caps only the process's total.
	Destination func(herald.Notification) string
}

// Pool delivers jobs from the jobs stream. Create it with New and call Run
// once. Its methods are safe for concurrent use.
type Pool struct {
	cfg      Config
	js       jetstream.JetStream
	keys     *crypto.Keyring
	senders  map[herald.Channel]Sender
	status   StatusStore
	outcomes Settler
	acks     *acker // acks delivered jobs in bursts; set by Run
	// deadLetters is nil when jobs are dropped instead (see Deps).
	deadLetters DeadLetterer
	credentials CredentialResolver // nil: no vault (see Deps)
	log         *slog.Logger
	metrics     *metrics.Metrics
	handler     Handler
	// backoff is the delay after a transient failure (Config's bounds, with
	// jitter).
	backoff backoffPolicy
	ran     atomic.Bool
	// dest is Deps.Destination (nil: none).
	dest func(herald.Notification) string
	// parking says held-back jobs are parked in herald.ParkedStream (see
	// park.go) rather than put back with NakWithDelay: Run sets it when the
	// stream exists and Deps.Status can take a parked job's token.
	parking bool
	caps    *parkCaps
	// parkStep, when set (only by tests), is called after each step of
	// park: "recorded" (the token is in the record) and "scheduled" (the
	// schedule is stored, the original not yet acked). The crash tests
	// kill the process there.
	parkStep func(step string)
	// delivered hands delivered jobs to the settlers, which write their
	// status record and ack them (see settle). Run makes it.
	delivered chan settlement
	// stopping says Run is stopping or has stopped: SendFirst tries no
	// more jobs. Before Run, it may: it needs nothing Run makes.
	stopping atomic.Bool
	// sendingFirst counts the jobs SendFirst is sending: at most
	// Config.FirstSends.
	sendingFirst atomic.Int64
}

// New validates cfg and deps and builds a Pool. It does not touch NATS: Run
// creates the consumer.
func New(cfg Config, deps Deps) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if deps.JS == nil {
		return nil, errors.New("consumer: deps: JS is required")
	}
	if deps.Keys == nil {
		return nil, errors.New("consumer: deps: Keys is required")
	}
	if len(deps.Senders) == 0 {
		return nil, errors.New("consumer: deps: at least one Sender is required")
	}
	for ch, s := range deps.Senders {
		if !ch.Valid() {
			return nil, fmt.Errorf("consumer: deps: sender for unknown channel %q", ch)
		}
		if s == nil {
			return nil, fmt.Errorf("consumer: deps: sender for channel %s is nil", ch)
		}
	}
	for i, mw := range deps.Middlewares {
		if mw == nil {
			return nil, fmt.Errorf("consumer: deps: middleware %d is nil", i)
		}
	}
	p := &Pool{
		cfg:         cfg,
		js:          deps.JS,
		keys:        deps.Keys,
		credentials: deps.Credentials,
		senders:     maps.Clone(deps.Senders),
		status:      deps.Status,
		outcomes:    deps.Outcomes,
		deadLetters: deps.DeadLetters,
		log:         deps.Logger,
		metrics:     deps.Metrics,
		backoff:     newBackoff(cfg.MinBackoff, cfg.MaxBackoff, jitterFactor),
		dest:        deps.Destination,
		caps:        newParkCaps(cfg.MaxParkedPerDestination, cfg.MaxParked),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.metrics == nil {
		p.metrics = metrics.New(prometheus.NewRegistry())
	}
	mws := append([]Middleware{recoverer(p.log), p.openCredentials}, deps.Middlewares...)
	p.handler = chain(p.send, mws...)
	return p, nil
}

// ConsumerConfig returns the JetStream configuration Run applies to the
// durable consumer: a pull consumer on herald.JobSubjects with explicit acks,
// AckWait and MaxAckPending from the Config, and unlimited deliveries (the
// retry policy is the Pool's, not the server's).
func (p *Pool) ConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       p.cfg.Durable,
		Description:   "Herald delivery workers",
		FilterSubject: herald.JobSubjects,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.cfg.AckWait,
		MaxAckPending: p.cfg.MaxAckPending,
		MaxDeliver:    -1,
	}
}

// ParkedConsumerConfig returns the JetStream configuration Run applies to
// the durable consumer of parked jobs whose time has come: ConsumerConfig's,
// named Durable+"-parked", on herald.ParkedDueSubjects of
// herald.ParkedStream.
func (p *Pool) ParkedConsumerConfig() jetstream.ConsumerConfig {
	c := p.ConsumerConfig()
	c.Durable = p.cfg.Durable + "-parked"
	c.Description = "Herald delivery workers: parked jobs whose time has come"
	c.FilterSubject = herald.ParkedDueSubjects
	return c
}

// ConsumerInfo returns the durable consumer's current state from the server
// (pending, ack pending, redelivered counts): one request, for health and
// admin pages. It fails with jetstream.ErrConsumerNotFound before Run has
// created the consumer.
func (p *Pool) ConsumerInfo(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	c, err := p.js.Consumer(ctx, herald.JobsStream, p.cfg.Durable)
	if err != nil {
		return nil, fmt.Errorf("consumer: consumer %s on %s: %w", p.cfg.Durable, herald.JobsStream, err)
	}
	return c.CachedInfo(), nil
}

// Run creates or updates the durable pull consumer on herald.JobsStream and
// delivers jobs, up to Config.Workers at once, until ctx is cancelled. Several
// processes may run Pools on the same durable; each job goes to one of them.
//
// When ctx is cancelled Run stops fetching, puts back the jobs it received but
// had not started (they come back after about a second, to any process), and
// waits up to Config.DrainTimeout for in-flight jobs to finish and be acked.
// Jobs still running then have their ctx cancelled and are left unacked, so
// JetStream redelivers them after AckWait. Run then returns nil.
//
// A setup error (no stream, a consumer that cannot be created) is returned at
// once, unless ctx was cancelled meanwhile: stopped before it started, Run
// returns nil. If consuming stops on its own (the consumer was deleted, the
// connection closed), Run drains the same way and returns an error. Run may
// be called only once per Pool.
func (p *Pool) Run(ctx context.Context) error {
	if !p.ran.CompareAndSwap(false, true) {
		return errors.New("consumer: Run called twice")
	}
	cons, err := p.js.CreateOrUpdateConsumer(ctx, herald.JobsStream, p.ConsumerConfig())
	if err != nil {
		if ctx.Err() != nil {
			// Stopped before it started: nothing was taken, nothing to drain.
			p.stopping.Store(true)
			return nil
		}
		return fmt.Errorf("consumer: create consumer %s on %s: %w", p.cfg.Durable, herald.JobsStream, err)
	}

	// work is the context jobs run under: it keeps ctx's values but not its
	// cancellation, so in-flight sends survive the shutdown signal until the
	// drain deadline, when abandon cancels them.
	work, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()

	var (
		jobs     = make(chan jetstream.Msg) // unbuffered: a job is handed over only to an idle worker
		stopping = make(chan struct{})
		workers  sync.WaitGroup
		errMu    sync.Mutex
		lastErr  error
	)
	onMessage := func(m jetstream.Msg) {
		// Consume calls this from one goroutine; blocking here until a worker
		// is free is what limits the jobs in flight to Workers.
		select {
		case <-stopping:
			p.release(m)
			return
		default:
		}
		select {
		case jobs <- m:
		case <-stopping:
			p.release(m)
		}
	}
	gone := make(chan struct{})
	var goneOnce sync.Once
	onError := func(_ jetstream.ConsumeContext, err error) {
		errMu.Lock()
		lastErr = err
		errMu.Unlock()
		p.log.LogAttrs(ctx, slog.LevelWarn, "consume", slog.String("error", err.Error()))
		// A deleted consumer shows as a 409 to a waiting pull, or as no
		// responders to the next one; the client keeps pulling in vain after
		// the latter. Make sure, then stop: a worker that consumes nothing
		// must not look healthy.
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, nats.ErrNoResponders) {
			if p.consumerGone() {
				goneOnce.Do(func() { close(gone) })
			}
		}
	}
	cc, err := cons.Consume(onMessage,
		// Fetch twice as many jobs as there are workers: the client pulls
		// again once half of a batch is handed out, so workers do not wait
		// for the next batch's round trip; few enough that prefetched jobs do
		// not sit out their AckWait (keep MaxAckPending above it).
		jetstream.PullMaxMessages(2*p.cfg.Workers),
		jetstream.ConsumeErrHandler(onError),
	)
	if err != nil {
		return fmt.Errorf("consumer: consume %s: %w", p.cfg.Durable, err)
	}
	// The parked jobs whose time has come, into the same workers.
	parkedClosed, err := p.consumeParked(ctx, onMessage, onError)
	if err != nil {
		cc.Stop()
		close(stopping) // a job fetched meanwhile is put back, not held
		p.stopping.Store(true)
		if ctx.Err() != nil {
			return nil // stopped before it started
		}
		return err
	}

	// The settlers: long-lived, so their stacks are grown once, not per job.
	// They hand the acks of delivered jobs to the acker.
	if p.cfg.AckDelay > 0 {
		p.acks = newAcker(p.cfg.AckDelay, ackHold(p.cfg), p.log)
	}
	p.delivered = make(chan settlement)
	var settlers sync.WaitGroup
	for range settlersPerWorker * p.cfg.Workers {
		settlers.Add(1)
		go func() {
			defer settlers.Done()
			for s := range p.delivered {
				p.record(s)
			}
		}()
	}
	for range p.cfg.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				select {
				case m := <-jobs:
					p.process(work, m)
				case <-stopping:
					return
				}
			}
		}()
	}
	p.log.LogAttrs(ctx, slog.LevelInfo, "consumer started",
		slog.String("durable", p.cfg.Durable), slog.Int("workers", p.cfg.Workers))

	// stopped is Run's error when consuming durable stopped on its own.
	stopped := func(durable string) error {
		errMu.Lock()
		cause := lastErr
		errMu.Unlock()
		if cause == nil {
			cause = errors.New("stopped unexpectedly")
		}
		return fmt.Errorf("consumer: consuming %s stopped: %w", durable, cause)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case <-gone:
		runErr = fmt.Errorf("consumer: consumer %s on %s: %w", p.cfg.Durable, herald.JobsStream, jetstream.ErrConsumerNotFound)
	case <-cc.Closed():
		runErr = stopped(p.cfg.Durable)
	case <-parkedClosed.Closed():
		runErr = stopped(p.ParkedConsumerConfig().Durable)
	}

	p.stopping.Store(true)
	// Unsubscribe first, then put back whatever is still buffered: a job
	// released after the unsubscribe cannot come back to this process.
	drain, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DrainTimeout)
	defer cancelDrain()
	cc.Drain()
	parkedClosed.Drain()
	close(stopping)
	select {
	case <-cc.Closed():
	case <-drain.Done():
		cc.Stop()
	}
	select {
	case <-parkedClosed.Closed():
	case <-drain.Done():
		parkedClosed.Stop()
	}
	done := make(chan struct{})
	go func() {
		workers.Wait()
		// Then the delivered jobs still being recorded and acked.
		close(p.delivered)
		settlers.Wait()
		if p.acks != nil {
			close(p.acks.in)
			<-p.acks.done
		}
		close(done)
	}()
	select {
	case <-done:
		p.log.LogAttrs(ctx, slog.LevelInfo, "consumer stopped", slog.String("durable", p.cfg.Durable))
	case <-drain.Done():
		// Cancel the sends still running; their jobs stay unacked and come
		// back after AckWait. The workers exit as soon as their Sender honours
		// the cancellation; Run does not wait for a Sender that ignores it.
		abandon()
		p.log.LogAttrs(ctx, slog.LevelWarn, "consumer stopped with jobs in flight; they will be redelivered",
			slog.String("durable", p.cfg.Durable), slog.Duration("drain_timeout", p.cfg.DrainTimeout))
	}
	return runErr
}

// consumeParked creates the durable consumer of parked jobs whose time has
// come (ParkedConsumerConfig) and consumes it into onMessage, and turns
// parking on when Deps.Status can take a parked job's token. Without
// herald.ParkedStream (a stream set up by hand, without
// queue.EnsureJobsStream) it logs a warning and parks nothing: held-back
// jobs wait in the jobs stream's consumer, as they did before parking. The
// returned handle is never nil.
func (p *Pool) consumeParked(ctx context.Context, onMessage jetstream.MessageHandler, onError jetstream.ConsumeErrHandler) (stoppable, error) {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, herald.ParkedStream, p.ParkedConsumerConfig())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		p.log.LogAttrs(ctx, slog.LevelWarn, "no parked stream: held-back jobs wait in the jobs consumer's window",
			slog.String("stream", herald.ParkedStream))
		return newIdleConsume(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("consumer: create consumer %s on %s: %w", p.ParkedConsumerConfig().Durable, herald.ParkedStream, err)
	}
	_, p.parking = p.status.(parkStore)
	cc, err := cons.Consume(onMessage,
		// Parked jobs come back a few at a time; a small batch keeps the
		// idle pull as cheap as the jobs consumer's.
		jetstream.PullMaxMessages(p.cfg.Workers),
		jetstream.ConsumeErrHandler(onError),
	)
	if err != nil {
		p.parking = false
		return nil, fmt.Errorf("consumer: consume %s: %w", p.ParkedConsumerConfig().Durable, err)
	}
	return cc, nil
}

// stoppable is what Run needs of a ConsumeContext.
type stoppable interface {
	Drain()
	Stop()
	Closed() <-chan struct{}
}

// idleConsume stands in for the parked consumer when there is none: it
// closes only when drained or stopped.
type idleConsume struct {
	once   sync.Once
	closed chan struct{}
}

func newIdleConsume() *idleConsume { return &idleConsume{closed: make(chan struct{})} }

func (c *idleConsume) Drain()                  { c.once.Do(func() { close(c.closed) }) }
func (c *idleConsume) Stop()                   { c.Drain() }
func (c *idleConsume) Closed() <-chan struct{} { return c.closed }

// consumerGone reports whether the durable consumer (or its stream) is known
// not to exist; a failed lookup is not proof.
func (p *Pool) consumerGone() bool {
	ctx, cancel := context.WithTimeout(context.Background(), consumerLookupTimeout)
	defer cancel()
	_, err := p.js.Consumer(ctx, herald.JobsStream, p.cfg.Durable)
	return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
}

// release puts back a job that was received but never started, at shutdown.
func (p *Pool) release(m jetstream.Msg) {
	attrs := []slog.Attr{slog.String("subject", m.Subject())}
	if meta, err := m.Metadata(); err == nil {
		attrs = append(attrs, slog.Uint64("seq", meta.Sequence.Stream))
	}
	if err := m.NakWithDelay(releaseDelay); err != nil {
		// Not lost: JetStream redelivers it after AckWait.
		p.log.LogAttrs(context.Background(), slog.LevelWarn, "release at shutdown", append(attrs, slog.String("error", err.Error()))...)
		return
	}
	p.log.LogAttrs(context.Background(), slog.LevelDebug, "release at shutdown", attrs...)
}
