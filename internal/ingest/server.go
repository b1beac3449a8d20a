// Package ingest is Herald's HTTP front door. It accepts notifications, checks
// them (API secret, shape, credentials that open, a destination Herald may
// send to), stores them in JetStream through the publisher, and answers only
// once they are stored: a 2xx means the job is in the stream; a job that could
// not be stored gets 503 with Retry-After, never a false success.
//
// Routes:
//
//	POST /send-notification        the Streaky proxy contract, unchanged
//	POST /v1/notifications         Herald's own API (JSON errors, idempotency)
//	GET  /v1/notifications/{id}    a job's status record
//	POST /v1/credentials …         the credential vault (credentials.go)
//	POST /v1/secrets …             read-once secrets (secrets.go)
//	GET  /health, /readyz, /metrics, /
//
// Credentials arrive sealed and stay sealed: the ingest opens them only to
// check them, drops the plaintext at once and stores the original sealed
// strings. POST /v1/credentials alone takes a destination in plaintext, and
// hands it straight to the vault, which seals it. No response, log line or
// metric label carries a secret.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/publisher"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Publisher stores jobs; *publisher.Publisher implements it. Publish must
// complete the job (ID, Version, CreatedAt), wrap herald.ErrInvalidJob for an
// invalid job and publisher.ErrNotStored when the job is not known to be
// stored.
type Publisher interface {
	Publish(ctx context.Context, job *herald.Job, opts ...publisher.Option) (publisher.Result, error)
}

// StatusStore reads job status; *status.Store implements it. The ingest
// writes no status itself: Lookup must answer herald.StateQueued for a job
// that is stored but has no record yet (see status.Store.Lookup and
// status.WithJobs), and status.ErrNotFound for an unknown job.
type StatusStore interface {
	Lookup(ctx context.Context, id string) (herald.Status, error)
}

// Outcomes lets a request wait for its job's final record; *status.Outcomes
// implements it. One serves the whole process (see status.Outcomes).
type Outcomes interface {
	Wait(id string) (*status.Wait, error)
}

// FirstSender tries to deliver a job before it is stored; *consumer.Pool
// implements it (see consumer.Pool.SendFirst). delivered true: the job was
// delivered, and nothing is stored. Otherwise the job is stored with
// carry's headers.
type FirstSender interface {
	SendFirst(ctx context.Context, job *herald.Job) (delivered bool, carry nats.Header)
}

// TargetChecker says whether Herald may send to a destination, without
// sending anything; *channels.Discord and *channels.Telegram implement it. The
// error's text is shown to the client, so it must be free of the target's
// secrets.
type TargetChecker interface {
	CheckTarget(herald.Target) error
}

var (
	_ Publisher   = (*publisher.Publisher)(nil)
	_ StatusStore = (*status.Store)(nil)
	_ Outcomes    = (*status.Outcomes)(nil)
)

// Deps are the collaborators of a Server. Publisher, Status, Keys and a
// checker for every channel in herald.Channels are required.
type Deps struct {
	Publisher Publisher
	Status    StatusStore
	// Outcomes is what waiting Streaky requests wait on; required when
	// Config.StreakyWait is not 0.
	Outcomes Outcomes
	// Keys opens credentials to check them; it must hold the Worker's
	// ENCRYPTION_KEY (the same keyring the consumers open with).
	Keys     *crypto.Keyring
	Checkers map[herald.Channel]TargetChecker
	// Ready backs GET /readyz (called with a 2 s timeout); nil means always
	// ready. Its error text is shown in the 503 body, so it must not hold a
	// credential (queue.Ready's never do).
	Ready func(ctx context.Context) error
	// Metrics records requests and jobs; when nil, a private registry is used
	// (and served on /metrics unless Gatherer is set).
	Metrics *metrics.Metrics
	// Gatherer is served on GET /metrics; when nil (and Metrics is set),
	// /metrics is not served.
	Gatherer prometheus.Gatherer
	// Logger receives one Debug line per accepted job and one Info line per
	// refused request; nil discards.
	Logger *slog.Logger
	// Vault, when set, serves /v1/credentials and /v1/secrets and lets jobs
	// name a stored credential (credential_id); nil refuses such jobs.
	Vault Vault
	// Idempotency keeps the requests' Idempotency-Keys (required).
	Idempotency Idempotency
	// First, when set, is tried with the job of every Streaky request that
	// waits for its outcome before that job is stored (see
	// handleStreaky): the workers of the same process.
	First FirstSender
}

// Server serves the ingest routes. It is safe for concurrent use.
type Server struct {
	cfg      Config
	pub      Publisher
	status   StatusStore
	outcomes Outcomes
	first    FirstSender
	keys     *crypto.Keyring
	checkers map[herald.Channel]TargetChecker
	ready    func(ctx context.Context) error
	metrics  *metrics.Metrics
	gatherer prometheus.Gatherer
	log      *slog.Logger
	vault    Vault
	idem     Idempotency
	secrets  []secret
	now      func() time.Time
	mux      *http.ServeMux // the routes
	handler  http.Handler   // mux, instrumented
}

// Route patterns; they are also the route label of the HTTP metrics.
const (
	routeStreaky   = "POST /send-notification"
	routeCreate    = "POST /v1/notifications"
	routeGetStatus = "GET /v1/notifications/{id}"
	routeRoot      = "GET /{$}"
	routeHealth    = "GET /health"
	routeReady     = "GET /readyz"
	routeMetrics   = "GET /metrics"
	// routeUnmatched labels requests no route took (404, 405).
	routeUnmatched = RouteUnmatched
)

// RouteUnmatched is the route label of requests no route took (404, 405).
const RouteUnmatched = "unmatched"

// Timeouts of the work a request triggers.
const (
	// publishTimeout bounds the wait for JetStream's acknowledgement.
	publishTimeout = 5 * time.Second
	// statusTimeout bounds a status lookup.
	statusTimeout = 2 * time.Second
	// readyTimeout bounds Deps.Ready.
	readyTimeout = 2 * time.Second
)

// New checks cfg and deps and returns a Server.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Publisher == nil:
		return nil, errors.New("ingest: a publisher is required")
	case deps.Status == nil:
		return nil, errors.New("ingest: a status store is required")
	case deps.Keys == nil:
		return nil, errors.New("ingest: a keyring is required")
	case deps.Idempotency == nil:
		return nil, errors.New("ingest: an idempotency key store is required")
	case deps.Outcomes == nil && cfg.StreakyWait > 0:
		return nil, errors.New("ingest: outcomes are required to wait for delivery results (streaky wait)")
	}
	for _, c := range herald.Channels {
		if deps.Checkers[c] == nil {
			return nil, fmt.Errorf("ingest: a target checker for channel %s is required", c)
		}
	}
	s := &Server{
		cfg:      cfg.withDefaults(),
		pub:      deps.Publisher,
		status:   deps.Status,
		outcomes: deps.Outcomes,
		first:    deps.First,
		keys:     deps.Keys,
		checkers: make(map[herald.Channel]TargetChecker, len(deps.Checkers)),
		ready:    deps.Ready,
		metrics:  deps.Metrics,
		gatherer: deps.Gatherer,
		log:      deps.Logger,
		vault:    deps.Vault,
		idem:     deps.Idempotency,
		secrets:  newSecrets(cfg.APISecrets),
		now:      time.Now,
	}
	for c, chk := range deps.Checkers {
		s.checkers[c] = chk
	}
	if s.metrics == nil {
		reg := prometheus.NewRegistry()
		s.metrics = metrics.New(reg)
		if s.gatherer == nil {
			s.gatherer = reg
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.mux = s.routes()
	s.handler = Instrument(s.metrics, s.log, s.Route, s.mux)
	return s, nil
}

// Handler returns the ingest's router. Unknown paths get 404 and known paths
// with another method 405 (before any authentication). Every request is
// counted in herald_http_requests_total and timed by its route pattern, never
// its raw path, and a panicking handler answers 500 instead of dropping the
// connection.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes is Handler without the metrics and the panic recovery, for a caller
// that mounts it beside other handlers and wraps them all with Instrument
// (naming the ingest's routes with Route), so that every request it serves,
// the ingest's or not, is counted once.
func (s *Server) Routes() http.Handler { return s.mux }

// Route returns the pattern of the ingest route that serves r (its route
// label), or RouteUnmatched when none does.
func (s *Server) Route(r *http.Request) string {
	if _, p := s.mux.Handler(r); p != "" {
		return p
	}
	return routeUnmatched
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc(routeStreaky, s.handleStreaky)
	mux.HandleFunc(routeCreate, s.handleCreate)
	mux.HandleFunc(routeGetStatus, s.handleGetStatus)
	s.vaultRoutes(mux)
	mux.HandleFunc(routeRoot, s.handleRoot)
	mux.HandleFunc(routeHealth, s.handleHealth)
	mux.HandleFunc(routeReady, s.handleReady)
	if s.gatherer != nil {
		mux.Handle(routeMetrics, promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

// Instrument counts every request next serves in herald_http_requests_total
// and times it in herald_http_request_duration_seconds, labelled with
// route(r) (a route pattern from a fixed set, never the raw path) and the
// status code, whoever answered it (a 429 from a rate limiter inside next
// included); and answers 500 when next panics, instead of dropping the
// connection. route is called after next returns.
func Instrument(m *metrics.Metrics, log *slog.Logger, route func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &recordingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			label := route(r)
			if v != nil && v != http.ErrAbortHandler {
				// The stack holds code locations, not values; v comes from
				// our code, never from credentials.
				log.Error("panic serving request", "route", label, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rw.wrote {
					writePlain(rw, http.StatusInternalServerError, "internal error")
				}
			}
			code := rw.code
			if code == 0 {
				code = http.StatusOK
			}
			m.HTTPRequests.WithLabelValues(label, strconv.Itoa(code)).Inc()
			m.HTTPDuration.WithLabelValues(label).Observe(time.Since(start).Seconds())
			if v == http.ErrAbortHandler {
				panic(v)
			}
		}()
		next.ServeHTTP(rw, r)
	})
}

// recordingWriter remembers the status code written.
type recordingWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *recordingWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.code, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush implements http.Flusher when the underlying writer does.
func (w *recordingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if !w.wrote {
			w.code, w.wrote = http.StatusOK, true
		}
		f.Flush()
	}
}

// rejected counts and logs a refused request answered with status. Internal
// failures are logged with their error, whose text comes from Herald and
// NATS, never from the request.
func (s *Server) rejected(ctx context.Context, route string, row errorRow, status int, err error) {
	s.metrics.JobsRejected.WithLabelValues(route, row.code).Inc()
	if row.status >= 500 {
		if errors.Is(err, publisher.ErrNotStored) {
			s.metrics.PublishFails.Inc()
		}
		s.log.WarnContext(ctx, "request failed", "route", route, "code", row.code, "status", status, "err", err.Error())
		return
	}
	s.log.InfoContext(ctx, "request rejected", "route", route, "code", row.code, "status", status)
}

// accepted counts and logs a stored job.
func (s *Server) accepted(ctx context.Context, job *herald.Job, duplicate bool) {
	s.metrics.JobsAccepted.WithLabelValues(string(job.Channel), job.Source).Inc()
	if s.log.Enabled(ctx, slog.LevelDebug) { // spare building the line
		s.log.LogAttrs(ctx, slog.LevelDebug, "job accepted", slog.String("id", job.ID), slog.String("channel", string(job.Channel)),
			slog.String("source", job.Source), slog.Bool("duplicate", duplicate))
	}
}

// publish stores job. It does not end when the client goes away: once the
// request got this far, the outcome must be settled either way.
func (s *Server) publish(ctx context.Context, job *herald.Job, opts ...publisher.Option) (publisher.Result, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	return s.pub.Publish(ctx, job, opts...)
}

// checkTarget asks the channel's checker whether Herald may send to t. The
// error is a rejection whose text is the checker's (safe to show).
func (s *Server) checkTarget(c herald.Channel, t herald.Target) error {
	chk := s.checkers[c]
	if chk == nil {
		return reject(errTargetRejected, "channel %s is not configured", c)
	}
	if err := chk.CheckTarget(t); err != nil {
		return &rejection{kind: errTargetRejected, msg: err.Error()}
	}
	return nil
}
