// Package metrics defines Herald's Prometheus collectors in one place, so every
// package records into the same names and no label can carry a secret: labels
// are limited to channel names, routes, status classes, outcomes and reasons,
// all from fixed sets.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector. A nil *Metrics is not valid; tests use
// New(prometheus.NewRegistry()).
type Metrics struct {
	// Ingest.
	HTTPRequests *prometheus.CounterVec   // route, code
	HTTPDuration *prometheus.HistogramVec // route
	// ConnectionsRefused counts connections closed at accept for a cap
	// (reason: total, per_client).
	ConnectionsRefused *prometheus.CounterVec
	// ConnectionsReclaimed counts idle connections closed at a connection
	// cap to make room for a new one (state: idle, new).
	ConnectionsReclaimed *prometheus.CounterVec
	JobsAccepted         *prometheus.CounterVec // channel, source
	JobsRejected         *prometheus.CounterVec // route, reason
	PublishFails         prometheus.Counter     // publishes that were not acknowledged
	// StreakyWaiting is the Streaky requests waiting for their outcome;
	// StreakyUnwaited counts those answered without it ("queued"), by reason
	// (UnwaitedShareSpent, UnwaitedTimeout).
	StreakyWaiting  prometheus.Gauge
	StreakyUnwaited *prometheus.CounterVec
	// KeysRefused counts requests whose new Idempotency-Key was not kept,
	// and whose job was not stored, by reason (KeysShareSpent, KeysFull).
	KeysRefused *prometheus.CounterVec

	// Delivery.
	Deliveries      *prometheus.CounterVec   // channel, outcome (delivered, retry, failed, dead)
	Retries         *prometheus.CounterVec   // channel, reason (retry_after, transient, paced, breaker_open)
	RateLimited     *prometheus.CounterVec   // channel (429s received)
	SendDuration    *prometheus.HistogramVec // channel: one HTTP call to the destination
	DeliveryLatency *prometheus.HistogramVec // channel: job accepted → delivered
	InFlight        prometheus.Gauge         // jobs being handled by this process
	// SentFirst counts the waited Streaky requests whose job was tried
	// before it was stored, by channel and result (SentFirst*).
	SentFirst        *prometheus.CounterVec
	StatusWriteFails prometheus.Counter
	// Parked is the jobs held back in the parked stream (sampled, the same
	// in every process); ParkRefused counts jobs that could not be parked
	// because their destination, or the process, has its cap of parked
	// jobs (they are dead-lettered); StaleCopies counts copies of a job
	// dropped because another copy of it had already taken or settled it
	// (after a crash between parking and acking).
	Parked      prometheus.Gauge
	ParkRefused *prometheus.CounterVec // channel, scope (destination, process)
	StaleCopies prometheus.Counter

	// Dead letters.
	DeadLettered   *prometheus.CounterVec // channel, reason (permanent, budget_exhausted, max_age, undecodable, credentials, invalid)
	DeadLetterFail prometheus.Counter     // dead-letter publishes that failed (the job is redelivered)
	Replayed       *prometheus.CounterVec // channel

	// Pacing and breakers.
	PacingWaits      *prometheus.CounterVec   // channel, scope (destination, global, invalid_budget, bot, group, unverified)
	PacingWait       *prometheus.HistogramVec // channel: time a job was held in-process before sending
	InvalidResponses *prometheus.CounterVec   // channel: Discord 401/403/429-non-shared
	Suspended        *prometheus.GaugeVec     // channel: 1 while sending is suspended (invalid-request budget spent)
	BreakerState     *prometheus.GaugeVec     // channel, state (closed, half_open, open): breakers in each state
	BreakerChanges   *prometheus.CounterVec   // channel, to
	// InvalidBudget is the invalid responses a channel may receive in its
	// window before sends are suspended (channels.discord.invalid_budget);
	// InvalidSpent the ones counted in the current window, with the sends
	// on their way that may come back invalid (read when scraped).
	InvalidBudget *prometheus.GaugeVec // channel
	InvalidSpent  *Sampled             // channel
	// GlobalPause is the time left of a pause of every send to a channel
	// after a global 429 (0 when none), read when scraped.
	GlobalPause *Sampled // channel
	// SuspectSends is the sends on their way to suspect destinations (new,
	// or unanswered lately), each holding a worker: at most
	// pacing.hung_share of them. SuspectRefused counts the jobs given back
	// because that share was full; UnansweredSends the sends that went
	// unanswered (timed out, or slower than pacing.hung_after), making their
	// destination suspect.
	SuspectSends    prometheus.Gauge
	SuspectRefused  *prometheus.CounterVec // channel
	UnansweredSends *prometheus.CounterVec // channel

	// BuildInfo is 1, labelled with the running version and Go version.
	BuildInfo *prometheus.GaugeVec

	// Queue depth, sampled.
	QueueDepth *prometheus.GaugeVec // stream (jobs, parked, dead_letters)
	// QueueOldest is the age of each stream's oldest message (0 when the
	// stream is empty), sampled with QueueDepth: for the jobs stream, how
	// long the oldest job not yet settled has waited.
	QueueOldest *prometheus.GaugeVec // stream (jobs, parked, dead_letters)
	// NATSConnected is 1 while this process's NATS connection is connected,
	// read from the connection when scraped.
	NATSConnected *Sampled

	// Abuse protection: token buckets and the proof-of-work challenge.
	Limited           *prometheus.CounterVec // group (streaky, api, register, challenge): requests refused with 429
	LimiterFallbacks  *prometheus.CounterVec // decision (allow, deny): requests decided without the shared store
	StoreErrors       *prometheus.CounterVec // store (ratelimit, challenge, vault, secrets): KV operations that failed
	ChallengesIssued  *prometheus.CounterVec // format (json, html)
	ChallengesSolved  prometheus.Counter
	ChallengesFailed  *prometheus.CounterVec // reason (wrong_nonce, unknown, expired, used, malformed)
	ClearancesIssued  prometheus.Counter
	ClearancesRefused *prometheus.CounterVec // reason (malformed, bad_signature, expired, wrong_ip)

	// Credential vault and read-once secrets.
	VaultOps *prometheus.CounterVec // op (store, open, delete, rotate, verify, secret_put, secret_take), result (ok, not_found, unverified, refused, error)
}

// New creates the collectors and registers them, plus the Go and process
// collectors, with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_http_requests_total", Help: "HTTP requests served, by route and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_http_request_duration_seconds", Help: "HTTP request handling time, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15},
		}, []string{"route"}),
		JobsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_jobs_accepted_total", Help: "Jobs stored in JetStream by the ingest, by channel and source.",
		}, []string{"channel", "source"}),
		JobsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_jobs_rejected_total", Help: "Requests the ingest refused, by route and reason.",
		}, []string{"route", "reason"}),
		PublishFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_publish_failures_total", Help: "Job publishes JetStream did not acknowledge (answered 503).",
		}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_deliveries_total", Help: "Delivery attempts by channel and outcome.",
		}, []string{"channel", "outcome"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_retries_total", Help: "Jobs put back to wait, by channel and reason.",
		}, []string{"channel", "reason"}),
		SentFirst: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_sent_first_total",
			Help: "Waited requests whose job the same process tried before storing it, by channel and result: delivered (nothing stored), stored (it failed or had to wait, and was stored with what the attempt learned), skipped (the process was stopping, or max_waiting first sends were in flight: stored untried).",
		}, []string{"channel", "result"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_rate_limited_total", Help: "429 answers received from destinations, by channel.",
		}, []string{"channel"}),
		SendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_send_duration_seconds", Help: "Time of one call to a destination, by channel.",
			Buckets: prometheus.DefBuckets,
		}, []string{"channel"}),
		DeliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_delivery_latency_seconds", Help: "Time from job accepted to delivered, by channel.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}, []string{"channel"}),
		StreakyWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_streaky_waiting", Help: "Streaky requests waiting for their delivery outcome.",
		}),
		StreakyUnwaited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_streaky_unwaited_total", Help: "Streaky requests answered without their delivery outcome (queued), by reason: share_spent (their API secret's share of ingest.streaky.max_waiting was in use), timeout (no outcome within ingest.streaky.wait).",
		}, []string{"reason"}),
		KeysRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_idempotency_keys_refused_total", Help: "Requests refused because their new Idempotency-Key could not be kept (nothing stored), by reason: share_spent (their API secret holds its share of ingest.idempotency_max_keys, 429), full (the bucket holds ingest.idempotency_max_keys, 503).",
		}, []string{"reason"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_jobs_in_flight", Help: "Jobs being handled by this process.",
		}),
		StatusWriteFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_status_write_failures_total", Help: "Job status records that could not be written.",
		}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dead_lettered_total", Help: "Jobs moved to the dead letters, by channel and reason.",
		}, []string{"channel", "reason"}),
		DeadLetterFail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_dead_letter_publish_failures_total", Help: "Dead-letter publishes that failed; the job stays queued.",
		}),
		Replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_replayed_total", Help: "Jobs replayed from the dead letters, counted by the worker that took each first, by channel.",
		}, []string{"channel"}),
		PacingWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_pacing_waits_total", Help: "Sends held back by pacing, by channel and limit scope.",
		}, []string{"channel", "scope"}),
		PacingWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_pacing_wait_seconds", Help: "Time a send was held in-process by pacing, by channel.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2, 5},
		}, []string{"channel"}),
		InvalidResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_invalid_responses_total", Help: "Discord invalid responses (401, 403, 429 other than scope shared) counted toward the ban threshold.",
		}, []string{"channel"}),
		Suspended: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_channel_suspended", Help: "1 while sending to a channel is suspended because its invalid-request budget is spent.",
		}, []string{"channel"}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_breakers", Help: "Circuit breakers per channel in each state.",
		}, []string{"channel", "state"}),
		BreakerChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_breaker_transitions_total", Help: "Circuit breaker state changes, by channel and new state.",
		}, []string{"channel", "to"}),
		SuspectSends: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_suspect_sends", Help: "Sends on their way to destinations not known to answer (new, or unanswered lately), each holding a worker; at most pacing.hung_share of the workers.",
		}),
		SuspectRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_suspect_refused_total", Help: "Jobs for destinations not known to answer given back without a send because such sends held their share of the workers, by channel.",
		}, []string{"channel"}),
		UnansweredSends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_unanswered_sends_total", Help: "Sends that got no answer in time (a timeout, or slower than pacing.hung_after), making their destination suspect, by channel.",
		}, []string{"channel"}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_build_info", Help: "Always 1; the labels say which Herald runs.",
		}, []string{"version", "go_version"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_queue_depth", Help: "Messages waiting, by stream (jobs, parked, dead_letters).",
		}, []string{"stream"}),
		QueueOldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_queue_oldest_age_seconds", Help: "Age of the oldest message in each stream (jobs, parked, dead_letters), 0 when it is empty (sampled).",
		}, []string{"stream"}),
		NATSConnected: NewSampled("herald_nats_connected", "1 while this process's NATS connection is connected, 0 while it is disconnected or reconnecting."),
		InvalidBudget: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_invalid_budget", Help: "Invalid responses a channel may receive within its window before its sends are suspended (channels.discord.invalid_budget).",
		}, []string{"channel"}),
		InvalidSpent: NewSampled("herald_invalid_budget_spent", "Invalid responses counted in the current window, with the sends on their way that may come back invalid; sends are suspended at herald_invalid_budget.", "channel"),
		GlobalPause:  NewSampled("herald_global_pause_seconds", "Time left of the pause of every send to a channel after a global 429 (0 when none).", "channel"),
		Parked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_parked_jobs", Help: "Jobs held back until their next attempt, in the parked stream (sampled).",
		}),
		ParkRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_park_refused_total", Help: "Jobs dead-lettered because their destination, or this process, already had its cap of parked jobs, by channel and scope.",
		}, []string{"channel", "scope"}),
		StaleCopies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_stale_copies_total", Help: "Copies of a job dropped because another copy had already taken or settled it.",
		}),
		Limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_requests_limited_total", Help: "Requests refused with 429 by the token buckets, by route group.",
		}, []string{"group"}),
		LimiterFallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_ratelimit_fallbacks_total", Help: "Requests decided without the shared counter store (unreachable), by decision.",
		}, []string{"decision"}),
		StoreErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_kv_store_errors_total", Help: "Key-value store operations that failed, by store.",
		}, []string{"store"}),
		ChallengesIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_challenges_issued_total", Help: "Proof-of-work challenges issued, by response format.",
		}, []string{"format"}),
		ChallengesSolved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_challenges_solved_total", Help: "Challenges solved and verified.",
		}),
		ChallengesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_challenges_failed_total", Help: "Challenge verifications refused, by reason.",
		}, []string{"reason"}),
		ClearancesIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_clearances_issued_total", Help: "Clearance tokens issued after a solved challenge.",
		}),
		ClearancesRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_clearances_refused_total", Help: "Clearance tokens presented and refused, by reason.",
		}, []string{"reason"}),
		ConnectionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_connections_refused_total", Help: "HTTP connections answered 503 and closed at accept for a connection cap, by reason (total, per_client).",
		}, []string{"reason"}),
		ConnectionsReclaimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_connections_reclaimed_total", Help: "Idle HTTP connections closed at a connection cap to make room for a new one, by state (idle: between requests, new: no request yet).",
		}, []string{"state"}),
		VaultOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_vault_operations_total", Help: "Credential vault and read-once secret operations, by operation and result.",
		}, []string{"op", "result"}),
	}
	reg.MustRegister(
		m.HTTPRequests, m.HTTPDuration, m.JobsAccepted, m.JobsRejected, m.PublishFails, m.StreakyWaiting, m.StreakyUnwaited, m.KeysRefused,
		m.Deliveries, m.Retries, m.SentFirst, m.RateLimited, m.SendDuration, m.DeliveryLatency, m.InFlight,
		m.StatusWriteFails, m.Parked, m.ParkRefused, m.StaleCopies,
		m.DeadLettered, m.DeadLetterFail, m.Replayed,
		m.PacingWaits, m.PacingWait, m.InvalidResponses, m.Suspended, m.BreakerState, m.BreakerChanges,
		m.SuspectSends, m.SuspectRefused, m.UnansweredSends,
		m.QueueDepth, m.QueueOldest, m.NATSConnected, m.BuildInfo,
		m.InvalidBudget, m.InvalidSpent, m.GlobalPause,
		m.Limited, m.LimiterFallbacks, m.StoreErrors,
		m.ChallengesIssued, m.ChallengesSolved, m.ChallengesFailed, m.ClearancesIssued, m.ClearancesRefused,
		m.VaultOps, m.ConnectionsRefused, m.ConnectionsReclaimed,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Both reasons show from the start, at 0, for alerts on their rate.
	m.StreakyUnwaited.WithLabelValues(UnwaitedShareSpent)
	m.StreakyUnwaited.WithLabelValues(UnwaitedTimeout)
	m.KeysRefused.WithLabelValues(KeysShareSpent)
	m.KeysRefused.WithLabelValues(KeysFull)
	return m
}

// Reasons of KeysRefused.
const (
	// KeysShareSpent: the request's API secret already holds its share of
	// the kept Idempotency-Keys.
	KeysShareSpent = "share_spent"
	// KeysFull: the idempotency bucket holds all the keys it may.
	KeysFull = "full"
)

// Reasons of StreakyUnwaited.
const (
	// UnwaitedShareSpent: the request's API secret already had its share of
	// the waiting slots waiting, so it was answered as soon as stored.
	UnwaitedShareSpent = "share_spent"
	// UnwaitedTimeout: the request waited, and the outcome was not known
	// within the wait.
	UnwaitedTimeout = "timeout"
)

// Results of SentFirst.
const (
	// SentFirstDelivered: delivered before it was stored; nothing was
	// stored.
	SentFirstDelivered = "delivered"
	// SentFirstStored: the attempt failed, or had to wait (pacing, an open
	// breaker, a 429), and the job was stored with what it learned.
	SentFirstStored = "stored"
	// SentFirstSkipped: the process was stopping, or as many first sends
	// as it allows (ingest.streaky.max_waiting) were in flight: the job
	// was stored untried, as without sending first.
	SentFirstSkipped = "skipped"
)
