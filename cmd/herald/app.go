package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/admin"
	"github.com/heraldrelay/herald/internal/breaker"
	"github.com/heraldrelay/herald/internal/connlimit"
	"github.com/heraldrelay/herald/internal/console"
	"github.com/heraldrelay/herald/internal/dlq"
	"github.com/heraldrelay/herald/internal/hung"
	"github.com/heraldrelay/herald/internal/idempotency"
	"github.com/heraldrelay/herald/internal/ingest"
	"github.com/heraldrelay/herald/internal/memtrim"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/pacing"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/vault"
	"github.com/heraldrelay/herald/publisher"
)

// role says which parts of Herald a process runs.
type role struct {
	ingest bool // the HTTP ingest
	worker bool // the consumer pool
	// embedded starts an in-process NATS server when nats.url is empty. When
	// false and nats.url is empty, the process connects to nats.embedded.listen,
	// where a `herald serve` on this host listens.
	embedded bool
}

var (
	roleServe  = role{ingest: true, worker: true, embedded: true}
	roleIngest = role{ingest: true}
	roleWorker = role{worker: true}
)

// App is one running Herald process: what Main wires from Config.
type App struct {
	cfg    Config
	role   role
	logger *slog.Logger

	ns *server.Server
	// natsToken is the token the embedded server requires ("" when none).
	natsToken string
	nc        *nats.Conn
	js        jetstream.JetStream

	reg     *prometheus.Registry
	metrics *metrics.Metrics
	keys    *crypto.Keyring

	ln      net.Listener // HTTP: ingest, or the worker's ops endpoints
	httpSrv *http.Server
	// opsLn and opsSrv serve the ingest's /metrics (http.metrics_addr),
	// never on its public port; nil when not set or not an ingest.
	opsLn   net.Listener
	opsSrv  *http.Server
	pool    *consumer.Pool
	letters *dlq.Store
	protect *protection // nil when ratelimit.enabled is false or no ingest
	console *console.Console

	closeOnce sync.Once
	// unlockDataDir releases data_dir, taken for the embedded server.
	unlockDataDir func()
	// newSecrets are the keys generated for this start, written into
	// data_dir at the end of Open, once nothing else can fail it.
	newSecrets []newSecret
}

// Open starts everything the role needs except the long-running loops: the
// embedded server, the NATS connection, the streams, the HTTP listener. Errors
// here (bad key, port in use, NATS unreachable) surface before Run.
func (a *App) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.role.ingest || a.role.worker {
		if a.newSecrets, err = ensureSecrets(&a.cfg, a.role, a.generatesSecrets()); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	a.keys, err = crypto.NewKeyring(a.cfg.Encryption.Keys...)
	if err != nil {
		return fmt.Errorf("config: encryption.keys (or ENCRYPTION_KEY): %w", err)
	}
	// The HTTP port is bound before anything is written into data_dir, so
	// that a port in use leaves nothing behind.
	addr, addrKey := a.cfg.HTTP.Addr, "http.addr"
	if !a.role.ingest {
		addr, addrKey = a.cfg.Worker.HTTPAddr, "worker.http_addr"
	}
	if addr != "" {
		if a.ln, err = net.Listen("tcp", addr); err != nil {
			if taken := dataDirTaken(a.cfg.DataDir); taken != nil && a.cfg.NATS.URL == "" && a.role.embedded {
				return taken
			}
			return fmt.Errorf("listen on %s (%s): %w", addr, addrKey, err)
		}
	}
	if a.role.ingest && a.cfg.HTTP.MetricsAddr != "" {
		if a.opsLn, err = net.Listen("tcp", a.cfg.HTTP.MetricsAddr); err != nil {
			return fmt.Errorf("listen on %s (http.metrics_addr): %w", a.cfg.HTTP.MetricsAddr, err)
		}
	}
	if t := runtimeTuned; t.GOMAXPROCS > 0 || t.MemLimit > 0 {
		a.logger.Info("runtime fitted to the cgroup's limits",
			"cpu_quota", t.Limits.CPUs, "gomaxprocs", runtime.GOMAXPROCS(0),
			"memory_limit", t.Limits.Memory, "soft_memory_limit", t.MemLimit)
	}
	a.reg = prometheus.NewRegistry()
	a.metrics = metrics.New(a.reg)
	a.metrics.BuildInfo.WithLabelValues(version, runtime.Version()).Set(1)

	var embedded queue.EmbeddedConfig
	if a.cfg.NATS.URL == "" && a.role.embedded {
		if a.unlockDataDir, err = lockDataDir(a.cfg.DataDir); err != nil {
			return err
		}
		if embedded, err = a.embeddedAuth(); err != nil {
			return err
		}
		embedded.Listen = a.cfg.NATS.Embedded.Listen
		embedded.StoreDir = filepath.Join(a.cfg.DataDir, "jetstream")
		embedded.SyncInterval = a.cfg.NATS.Embedded.SyncInterval
		embedded.SyncAlways = a.cfg.NATS.Embedded.SyncAlways
		a.ns, err = queue.StartEmbedded(embedded, a.logger)
		if err != nil {
			return fmt.Errorf("start embedded NATS on %s (nats.embedded.listen): %w", a.cfg.NATS.Embedded.Listen, err)
		}
		a.natsToken = embedded.Token
		a.logger.Info("embedded NATS JetStream started", "url", a.ns.ClientURL(), "store", embedded.StoreDir,
			"auth", embeddedAuthSummary(embedded))
	}
	target, err := a.cfg.natsTarget()
	if err != nil {
		return err
	}
	var inProcess []nats.Option
	if a.ns != nil {
		// The embedded server is reached in process, without a socket.
		target.url = a.ns.ClientURL()
		inProcess = append(inProcess, nats.InProcessServer(a.ns))
		// A token generated at this start is not in data_dir yet (it is
		// written once start-up got through).
		if a.natsToken != "" && target.auth.Kind() == "" {
			target.auth.Token = a.natsToken
		}
	}
	dialCtx, cancelDial := context.WithTimeout(ctx, a.cfg.NATS.ConnectTimeout)
	a.nc, err = connectNATS(dialCtx, target, a.cfg.NATS.Name, a.logger, func(addr string) error {
		setting := "nats.url"
		if a.cfg.NATS.URL == "" {
			setting = "nats.embedded.listen: where a herald serve on this host listens; or set nats.url"
		}
		return fmt.Errorf("no NATS server answered at %s within %s (nats.connect_timeout); check %s", addr, a.cfg.NATS.ConnectTimeout, setting)
	}, inProcess...)
	cancelDial()
	if err != nil {
		return err
	}
	nc := a.nc
	a.metrics.NATSConnected.Set(func() float64 {
		if nc.IsConnected() {
			return 1
		}
		return 0
	})
	connectCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a.js, err = jetstream.New(a.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	jobs, err := queue.EnsureJobsStream(connectCtx, a.js, queue.StreamConfig{
		Replicas:        a.cfg.NATS.Stream.Replicas,
		DuplicateWindow: a.cfg.NATS.Stream.DuplicateWindow,
		MaxAge:          a.cfg.NATS.Stream.MaxAge,
		MaxBytes:        a.cfg.NATS.Stream.MaxBytes,
	})
	if err != nil {
		return fmt.Errorf("jobs stream: %w", err)
	}
	kv, err := queue.EnsureStatusBucket(connectCtx, a.js, a.cfg.NATS.StatusTTL, a.cfg.NATS.Stream.Replicas)
	if err != nil {
		return fmt.Errorf("status bucket: %w", err)
	}
	// WithJobs: a job still in the stream reads "queued" without a record.
	statuses := status.New(kv, a.nc, status.WithJobs(jobs), status.WithDeliveredTTL(a.js, a.cfg.NATS.DeliveredStatusTTL))
	// One listener for the outcomes every waiting Streaky request waits
	// for; the workers of a serve process hand theirs over directly.
	var outcomes *status.Outcomes
	if a.role.ingest && a.cfg.Ingest.Streaky.Wait > 0 {
		if outcomes, err = statuses.Outcomes(); err != nil {
			return fmt.Errorf("status bucket: %w", err)
		}
	}
	if _, err := dlq.EnsureStream(connectCtx, a.js, dlq.StreamConfig{
		MaxAge:   a.cfg.DLQ.MaxAge,
		Replicas: a.cfg.NATS.Stream.Replicas,
	}); err != nil {
		return fmt.Errorf("dead-letter stream: %w", err)
	}
	a.letters = dlq.NewStore(a.js, dlq.WithStatus(statuses))

	pacer, err := pacing.New(pacing.Config{
		Discord: pacing.DiscordConfig{
			GlobalRate:        a.cfg.Channels.Discord.GlobalRate,
			InvalidBudget:     a.cfg.Channels.Discord.InvalidBudget,
			InvalidWindow:     a.cfg.Channels.Discord.InvalidWindow,
			UnverifiedShare:   a.cfg.Channels.Discord.UnverifiedShare,
			BadDestinationTTL: a.cfg.Channels.Discord.BadDestinationTTL,
		},
		Telegram: pacing.TelegramConfig{
			PerChat:  a.cfg.Channels.Telegram.PerChatRate,
			PerGroup: a.cfg.Channels.Telegram.PerGroupRate,
			PerBot:   a.cfg.Channels.Telegram.PerBotRate,
		},
		MaxHold:         a.cfg.Pacing.MaxHold,
		MaxInFlight:     a.cfg.Pacing.MaxInFlight,
		MaxDestinations: a.cfg.Pacing.MaxDestinations,
		MaxMemory:       a.cfg.Pacing.MaxMemory,
	}, a.logger, a.metrics)
	if err != nil {
		return fmt.Errorf("config: pacing: %w", err)
	}
	client := channels.NewHTTPClient(a.cfg.Channels.Timeout)
	discord, err := channels.NewDiscord(channels.DiscordConfig{
		AllowedHosts:  a.cfg.Channels.Discord.AllowedHosts,
		AllowHTTP:     a.cfg.Channels.Discord.AllowHTTP,
		MaxRetryAfter: a.cfg.Consumer.MaxRetryAfter,
		Observe:       pacer.ObserveDiscord,
	}, client)
	if err != nil {
		return fmt.Errorf("config: channels.discord: %w", err)
	}
	telegram, err := channels.NewTelegram(channels.TelegramConfig{
		APIBase:       a.cfg.Channels.Telegram.APIBase,
		MaxRetryAfter: a.cfg.Consumer.MaxRetryAfter,
	}, client)
	if err != nil {
		return fmt.Errorf("config: channels.telegram: %w", err)
	}

	// dest names a notification's destination for breakers and pacing: a
	// non-secret key naming the whole destination ("discord:<host>/<webhook
	// id>:<token hash>", "telegram:<bot id>.<token hash>:<chat hash>").
	dest := func(n herald.Notification) string {
		switch n.Channel {
		case herald.ChannelDiscord:
			return discord.Destination(n.Target)
		case herald.ChannelTelegram:
			return telegram.Destination(n.Target)
		}
		return string(n.Channel)
	}
	// Sends to destinations not known to answer hold at most a share of
	// the workers, so many destinations that never answer cannot take them
	// all.
	gate, err := hung.New(hung.Config{
		Share:           a.cfg.Pacing.HungShare,
		Workers:         a.cfg.Consumer.Workers,
		SendTimeout:     a.cfg.Consumer.SendTimeout,
		After:           a.cfg.Pacing.HungAfter,
		For:             a.cfg.Pacing.HungFor,
		MaxDestinations: a.cfg.Pacing.MaxDestinations,
	}, a.metrics)
	if err != nil {
		return fmt.Errorf("config: pacing: %w", err)
	}
	breakers, err := breaker.New(breaker.Config{
		Failures:        a.cfg.Breaker.Failures,
		OpenTimeout:     a.cfg.Breaker.OpenTimeout,
		HalfOpenProbes:  a.cfg.Breaker.HalfOpenProbes,
		MaxDestinations: a.cfg.Breaker.MaxDestinations,
		MaxMemory:       a.cfg.Breaker.MaxMemory,
	}, a.logger, a.metrics)
	if err != nil {
		return fmt.Errorf("config: breaker: %w", err)
	}

	// The credential vault: jobs may name a stored credential.
	vlt, err := a.openVault(connectCtx, map[herald.Channel]vault.TargetChecker{
		herald.ChannelDiscord:  discord,
		herald.ChannelTelegram: telegram,
	})
	if err != nil {
		return err
	}

	ready := func(ctx context.Context) error { return queue.Ready(ctx, a.nc, a.js) }
	var handler http.Handler
	if a.role.ingest {
		keys, err := idempotency.EnsureBucket(connectCtx, a.js, a.cfg.Ingest.IdempotencyWindow, a.cfg.Ingest.IdempotencyMaxKeys, a.cfg.NATS.Stream.Replicas)
		if err != nil {
			return fmt.Errorf("idempotency bucket: %w", err)
		}
		srv, err := ingest.New(ingest.Config{
			APISecrets:           a.cfg.Ingest.APISecrets,
			MaxBodyBytes:         a.cfg.Ingest.MaxBodyBytes,
			StreakyWait:          a.cfg.Ingest.Streaky.Wait,
			MaxWaiting:           a.cfg.Ingest.Streaky.MaxWaiting,
			MaxWaitingPerSecret:  a.cfg.Ingest.Streaky.MaxWaitingPerSecret,
			IdempotencyWindow:    a.cfg.Ingest.IdempotencyWindow,
			MaxKeys:              a.cfg.Ingest.IdempotencyMaxKeys,
			MaxKeysPerSecret:     a.cfg.Ingest.IdempotencyMaxKeysPerSecret,
			StreakyFailureStatus: ingest.FailureStatus(a.cfg.Ingest.Streaky.FailureStatus),
			Version:              version,
		}, ingest.Deps{
			Publisher: publisher.New(a.js),
			Status:    statuses,
			Outcomes:  ingestOutcomes(outcomes),
			Keys:      a.keys,
			Checkers: map[herald.Channel]ingest.TargetChecker{
				herald.ChannelDiscord:  discord,
				herald.ChannelTelegram: telegram,
			},
			Ready:   ready,
			Metrics: a.metrics,
			// No Gatherer: /metrics is not served on the public port, only
			// on http.metrics_addr.
			Logger:      a.logger,
			Vault:       vlt,
			Idempotency: idempotency.New(keys),
			First:       a.firstSender(),
		})
		if err != nil {
			return fmt.Errorf("config: ingest: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/", srv.Routes())
		adm, err := admin.New(admin.Config{Secrets: compact([]string{a.cfg.Admin.Secret})}, a.letters, a.logger)
		if err != nil {
			return fmt.Errorf("config: admin.secret: %w", err)
		}
		mux.Handle(admin.Prefix, adm.Handler())
		if err := a.mountConsole(mux, statuses, breakers, pacer); err != nil {
			return err
		}
		// The pacer that sends verification messages lives with the
		// workers: an ingest-only process cannot see its share.
		var verificationWait func() time.Duration
		if a.role.worker {
			verificationWait = pacer.UnverifiedWait
		}
		if err := mountRegister(mux, vlt, a.logger, verificationWait); err != nil {
			return err
		}
		handler = mux
		// Token buckets in front of every public route (not /health,
		// /readyz, /metrics); a limited client is offered a challenge.
		a.protect, err = a.openProtection(connectCtx, a.js, srv.ClientID, vlt.DeriveKeys)
		if err != nil {
			return err
		}
		if a.protect != nil {
			mux.Handle("/challenge/", a.protect.challenge.Handler())
			handler = a.protect.wrap(mux)
		}
		// Outermost, so that every request is counted: /register's, the
		// admin API's and the token buckets' 429s as much as the ingest's.
		handler = ingest.Instrument(a.metrics, a.logger, httpRoute(mux, srv.Route), handler)
		if a.opsLn != nil {
			ops := opsHandler(a.reg, ready)
			a.opsSrv = &http.Server{
				Handler:           ingest.Instrument(a.metrics, a.logger, httpRoute(ops, nil), ops),
				ReadHeaderTimeout: 5 * time.Second,
				ReadTimeout:       a.cfg.HTTP.ReadTimeout,
				WriteTimeout:      30 * time.Second,
				IdleTimeout:       a.cfg.HTTP.IdleTimeout,
				ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
			}
			a.logger.Info("metrics listening", "addr", a.opsLn.Addr().String())
		}
	} else if a.cfg.Worker.HTTPAddr != "" {
		ops := opsHandler(a.reg, ready)
		handler = ingest.Instrument(a.metrics, a.logger, httpRoute(ops, nil), ops)
	}

	if a.role.worker {
		a.pool, err = consumer.New(consumer.Config{
			Workers: a.cfg.Consumer.Workers,
			// A first send is a Streaky request waiting for its outcome:
			// the waiting requests' cap (and each secret's share of it)
			// bounds them, as it bounds the bare relay's sends.
			FirstSends:    a.cfg.Ingest.Streaky.MaxWaiting,
			AckWait:       a.cfg.Consumer.AckWait,
			MaxAckPending: a.cfg.Consumer.MaxAckPending,
			SendTimeout:   a.cfg.Consumer.SendTimeout,
			MinBackoff:    a.cfg.Consumer.MinBackoff,
			MaxBackoff:    a.cfg.Consumer.MaxBackoff,
			MaxRetryAfter: a.cfg.Consumer.MaxRetryAfter,
			DrainTimeout:  a.cfg.Consumer.DrainTimeout,
			MaxAttempts:   a.cfg.Retry.MaxAttempts,
			MaxAge:        a.cfg.Retry.MaxAge,
			AckDelay:      ackDelay(a.cfg.Consumer.AckDelay),

			MaxParked:               a.cfg.Consumer.MaxParked,
			MaxParkedPerDestination: a.cfg.Consumer.MaxParkedPerDestination,
		}, consumer.Deps{
			JS:   a.js,
			Keys: a.keys,
			Senders: map[herald.Channel]consumer.Sender{
				herald.ChannelDiscord:  discord,
				herald.ChannelTelegram: telegram,
			},
			Status:      statuses,
			Outcomes:    settler(outcomes),
			DeadLetters: dlq.NewWriter(a.js),
			Credentials: vlt,
			Logger:      a.logger,
			Metrics:     a.metrics,
			// Breakers outermost: a job waiting on an open breaker takes no
			// place or pacing slot. The hung gate before pacing: a job it
			// gives back spends none of pacing's rates.
			Middlewares: []consumer.Middleware{breakers.Middleware(breaker.Keys(dest)), gate.Middleware(dest), pacer.Middleware(dest)},
			Destination: dest,
		})
		if err != nil {
			return fmt.Errorf("config: consumer: %w", err)
		}
	}

	if handler != nil {
		// Caps, so that one client's connections cannot take the file
		// descriptors and memory everyone else (and the health checks) need.
		// (Listening before serving, at the start, made a port in use fail
		// Open, not Run.)
		capped, err := connlimit.New(a.ln, connlimit.Config{
			Max: a.cfg.HTTP.MaxConnections, PerClient: a.cfg.HTTP.MaxConnectionsPerClient,
			IPv6Prefix: a.cfg.HTTP.IPv6ClientPrefix,
		}, connlimit.Counters{
			Refused:   func(reason string) { a.metrics.ConnectionsRefused.WithLabelValues(reason).Inc() },
			Reclaimed: func(state string) { a.metrics.ConnectionsReclaimed.WithLabelValues(state).Inc() },
		})
		if err != nil {
			return fmt.Errorf("config: http: %w", err)
		}
		a.ln = capped
		a.httpSrv = &http.Server{
			Handler: handler,
			// Tells the caps which connections are idle, to close one for
			// a new connection rather than refuse it.
			ConnState: capped.ConnState,
			// Also bounds a connection that sends no request, or sends it
			// slowly (at a cap it may be closed after connlimit's grace).
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       a.cfg.HTTP.ReadTimeout,
			// Above the Streaky wait, so a waiting reply is never cut off.
			WriteTimeout: a.cfg.Ingest.Streaky.Wait + 10*time.Second,
			IdleTimeout:  a.cfg.HTTP.IdleTimeout,
			ErrorLog:     slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
		}
		a.logger.Info("HTTP listening", "addr", a.ln.Addr().String(), "ingest", a.role.ingest)
	}
	// Only now, with the configuration accepted and the ports bound, are
	// the keys generated for this start written: a start that failed
	// leaves none behind.
	if err := writeSecrets(a.newSecrets, a.logger); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if a.role.ingest {
		a.logAPISecrets()
	}
	return nil
}

// httpRoute returns the route label of the HTTP metrics for a request to
// mux: the pattern that serves it there, or, for what mux hands to the
// ingest at "/", inner's (the ingest's own pattern; nil: none).
func httpRoute(mux *http.ServeMux, inner func(*http.Request) string) func(*http.Request) string {
	return func(r *http.Request) string {
		_, p := mux.Handler(r)
		switch {
		case p == "/" && inner != nil:
			return inner(r)
		case p == "":
			return ingest.RouteUnmatched
		}
		return p
	}
}

// opsHandler serves a worker's /metrics, /health and /readyz.
func opsHandler(g prometheus.Gatherer, ready func(context.Context) error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"healthy"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"unavailable"}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	return mux
}

// MetricsAddr is the address the ingest's /metrics is served on
// (http.metrics_addr; "" when none).
func (a *App) MetricsAddr() string {
	if a.opsLn == nil {
		return ""
	}
	return a.opsLn.Addr().String()
}

// HTTPAddr is the address the HTTP server listens on ("" when none).
func (a *App) HTTPAddr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// NATSURL is the embedded server's client URL ("" when none), with the
// token it requires as the URL's user info: a secret, for tests and tools
// of this process only.
func (a *App) NATSURL() string {
	if a.ns == nil {
		return ""
	}
	u := a.ns.ClientURL()
	if a.natsToken != "" {
		u = strings.Replace(u, "://", "://"+a.natsToken+"@", 1)
	}
	return u
}

// Run serves until ctx is cancelled, then shuts down in order: the HTTP server
// stops accepting and finishes its requests, the consumer drains its in-flight
// jobs, and the NATS connection and embedded server close last.
func (a *App) Run(ctx context.Context) error {
	defer a.Close()
	// The pool outlives the HTTP server: requests still waiting for a delivery
	// outcome need workers until the server has finished them.
	poolCtx, stopPool := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPool()
	g, gctx := errgroup.WithContext(ctx)
	if a.httpSrv != nil {
		g.Go(func() error {
			if err := a.httpSrv.Serve(a.ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http: %w", err)
			}
			return nil
		})
	}
	if a.opsSrv != nil {
		g.Go(func() error {
			if err := a.opsSrv.Serve(a.opsLn); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http (http.metrics_addr): %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		a.logger.Info("shutting down")
		if a.opsSrv != nil {
			// Nothing waits on a scrape: close at once.
			a.opsSrv.Close()
		}
		if a.httpSrv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTP.ShutdownTimeout)
			defer cancel()
			if err := a.httpSrv.Shutdown(sctx); err != nil {
				a.logger.Warn("http shutdown", "error", err)
			}
		}
		stopPool()
		return nil
	})
	if a.protect != nil {
		g.Go(func() error { return a.protect.limiter.Run(gctx) })
	}
	if a.console != nil {
		g.Go(func() error { return a.console.Run(gctx) })
	}
	// A burst's memory goes back to the system once the process is quiet
	// again (see internal/memtrim).
	g.Go(func() error {
		memtrim.Run(gctx, memtrim.Config{}, a.logger)
		return nil
	})
	if a.pool != nil {
		g.Go(func() error {
			consumer.SampleDepth(gctx, a.js, a.metrics, consumer.DefaultDepthInterval)
			return nil
		})
		g.Go(func() error {
			// A pool stopped while it was still starting (creating its
			// consumer) is a shutdown, not a failure.
			if err := a.pool.Run(poolCtx); err != nil && poolCtx.Err() == nil {
				return fmt.Errorf("consumer: %w", err)
			}
			return nil
		})
	}
	err := g.Wait()
	a.logger.Info("stopped")
	return err
}

// Close releases what Open acquired. Safe to call more than once.
func (a *App) Close() {
	a.closeOnce.Do(func() {
		if a.console != nil {
			a.console.Close() // a replay still running stops; its letters stay
		}
		if a.ln != nil && a.httpSrv == nil {
			a.ln.Close()
		}
		if a.opsLn != nil {
			a.opsLn.Close() // closed already if Run served it: harmless
		}
		if a.nc != nil {
			if err := a.nc.Drain(); err != nil {
				a.nc.Close()
			}
			for i := 0; i < 100 && !a.nc.IsClosed(); i++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if a.ns != nil {
			a.ns.Shutdown()
			a.ns.WaitForShutdown()
		}
		if a.unlockDataDir != nil {
			a.unlockDataDir()
		}
	})
}

// ingestOutcomes and settler keep a nil *status.Outcomes a nil interface.
func ingestOutcomes(o *status.Outcomes) ingest.Outcomes {
	if o == nil {
		return nil
	}
	return o
}

func settler(o *status.Outcomes) consumer.Settler {
	if o == nil {
		return nil
	}
	return o
}

// ackDelay maps consumer.ack_delay to consumer.Config.AckDelay, where 0 means
// the default and a negative value no delay.
func ackDelay(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// generatesSecrets reports whether this process may generate the keys its
// configuration lacks: only a herald serve on its own embedded NATS, which no
// other Herald process shares keys with.
func (a *App) generatesSecrets() bool { return a.cfg.NATS.URL == "" && a.role.embedded }

// firstSender is what the ingest tries a waiting Streaky request's job with
// before storing it (ingest.streaky.send_first): this process's workers,
// when it runs them and the wait covers a whole send; nil otherwise (an
// ingest-only process stores every job). The pool is made after the
// ingest, before either serves.
func (a *App) firstSender() ingest.FirstSender {
	if !a.role.worker || !a.cfg.Ingest.Streaky.SendFirst {
		return nil
	}
	if a.cfg.Ingest.Streaky.Wait < a.cfg.Consumer.SendTimeout {
		// A first send runs until consumer.send_timeout: it would hold a
		// request past a shorter wait.
		a.logger.Info("ingest.streaky.send_first is off: ingest.streaky.wait is shorter than consumer.send_timeout",
			"wait", a.cfg.Ingest.Streaky.Wait.String(), "send_timeout", a.cfg.Consumer.SendTimeout.String())
		return nil
	}
	return firstSenderFunc(func(ctx context.Context, job *herald.Job) (bool, nats.Header) {
		if a.pool == nil {
			return false, nil
		}
		return a.pool.SendFirst(ctx, job)
	})
}

// firstSenderFunc adapts a function to ingest.FirstSender.
type firstSenderFunc func(context.Context, *herald.Job) (bool, nats.Header)

func (f firstSenderFunc) SendFirst(ctx context.Context, job *herald.Job) (bool, nats.Header) {
	return f(ctx, job)
}
