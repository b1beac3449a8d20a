package ingest

import (
	"errors"
	"fmt"
	"time"

	"github.com/heraldrelay/herald/internal/idempotency"
)

// Defaults and bounds of Config.
const (
	// DefaultMaxBodyBytes is the largest request body accepted when
	// Config.MaxBodyBytes is 0: 2 MiB, the limit of axum (which Streaky's Rust
	// proxy runs on), so a body the proxy accepted is accepted here too.
	DefaultMaxBodyBytes = 2 << 20
	// DefaultStreakyWait is the recommended Config.StreakyWait (cmd's default
	// for ingest.streaky.wait): long enough for a typical delivery, and well
	// below the Streaky Worker's 15 s abort timeout.
	DefaultStreakyWait = 10 * time.Second
	// MaxStreakyWait bounds Config.StreakyWait: the Worker gives up after
	// 15 s, and a reply it never reads is worse than an honest "queued".
	MaxStreakyWait = 14 * time.Second
	// DefaultMaxWaiting is the default Config.MaxWaiting.
	DefaultMaxWaiting = 1000
)

// FailureStatus says which HTTP status POST /send-notification answers a
// failure with (Config.StreakyFailureStatus). The body is the same either
// way: {"success":false,"error":"<text>"}.
type FailureStatus string

const (
	// FailureStatusError answers a failure with an error status: 400 for a
	// request that cannot be opened or validated (what the Streaky proxy of
	// the original write-up answered), 502 for a delivery the destination
	// refused, and a job stored but not yet delivered with 202. A Worker that
	// reads only the status (response.ok) then records every failure as
	// one. The default.
	FailureStatusError FailureStatus = "error"
	// FailureStatusOK answers every failure with 200, as Streaky's proxy does
	// today (CONTRACT.md §3): for Workers that read the body's "success" and
	// nothing else of a 2xx.
	FailureStatusOK FailureStatus = "ok"
)

// defaultShare is each API secret's share of maxWaiting when
// Config.MaxWaitingPerSecret is 0 (and of Config.MaxKeys when
// Config.MaxKeysPerSecret is 0): an equal part for each of secrets, all of
// it for one.
func defaultShare(maxWaiting, secrets int) int {
	if secrets < 1 {
		return maxWaiting
	}
	return maxWaiting / secrets
}

// Config configures the ingest. The zero value is not valid: at least one
// API secret is required.
type Config struct {
	// APISecrets are the accepted API secrets, sent as X-API-Secret (the
	// Streaky Worker's VPS_SECRET) or, on Herald's own API, as
	// "Authorization: Bearer <secret>". Several allow rotation. Each is
	// compared in constant time through its SHA-256 digest, so neither its
	// content nor its length leaks through timing.
	APISecrets []string
	// MaxBodyBytes bounds a request body; larger bodies get 413.
	// DefaultMaxBodyBytes when 0.
	MaxBodyBytes int64
	// StreakyWait is how long POST /send-notification waits for the delivery
	// result before answering {"success":true,"queued":true}: the Worker only
	// records the synchronous reply. 0 answers as soon as the job is stored.
	// At most MaxStreakyWait; DefaultStreakyWait is the recommended value.
	StreakyWait time.Duration
	// MaxWaiting caps the Streaky requests waiting for their delivery result
	// at once (ingest.streaky.max_waiting); DefaultMaxWaiting when 0. It is
	// shared out among the API secrets (MaxWaitingPerSecret), so that a burst
	// of waiting requests cannot take the process's memory.
	MaxWaiting int
	// MaxWaitingPerSecret is each API secret's share of MaxWaiting
	// (ingest.streaky.max_waiting_per_secret): the Streaky requests sent with
	// one secret that may wait at once. Past it a request of that secret is
	// answered as soon as its job is stored, as a wait that timed out would be
	// ({"success":true,"queued":true} with the job's id). The shares together
	// must fit in MaxWaiting, so one secret's requests never take another's
	// slots. When 0, MaxWaiting is divided equally among the secrets (all of
	// it for a single secret).
	MaxWaitingPerSecret int
	// IdempotencyWindow is how long the idempotency bucket keeps a key
	// (ingest.idempotency_window; idempotency.DefaultWindow when 0): the
	// keys a secret claimed are counted against its share for as long.
	IdempotencyWindow time.Duration
	// MaxKeys is the most Idempotency-Keys the idempotency bucket holds
	// (ingest.idempotency_max_keys; idempotency.DefaultMaxKeys when 0). The
	// bucket enforces it (see idempotency.EnsureBucket, given the same
	// value): a request whose new key does not fit is answered 503
	// idempotency_keys_full and its job is not stored. It is shared out
	// among the API secrets (MaxKeysPerSecret).
	MaxKeys int
	// MaxKeysPerSecret is each API secret's share of MaxKeys
	// (ingest.idempotency_max_keys_per_secret): the new keys one secret may
	// claim per idempotency window. Past it a request of that secret with a
	// new key is answered 429 idempotency_keys_exhausted, with Retry-After,
	// and its job is not stored; a request whose key the secret already
	// holds (a retry) is answered as ever. The shares together must fit in
	// MaxKeys, so one secret's keys never take another's room. When 0,
	// MaxKeys is divided equally among the secrets (all of it for a single
	// secret). Keys are counted per process: with several ingest processes
	// sharing the bucket, each counts its own.
	MaxKeysPerSecret int
	// StreakyFailureStatus is the status of POST /send-notification's
	// failures (ingest.streaky.failure_status); FailureStatusError when
	// empty.
	StreakyFailureStatus FailureStatus
	// Version is Herald's version, sent in the X-Herald-Version header of
	// /health and /readyz.
	Version string
}

// Validate reports the first problem with c, naming the setting. Error texts
// never include a secret.
func (c Config) Validate() error {
	if len(c.APISecrets) == 0 {
		return errors.New("ingest: at least one API secret is required")
	}
	for i, s := range c.APISecrets {
		if s == "" {
			return fmt.Errorf("ingest: API secret %d is empty", i+1)
		}
		// HTTP strips surrounding whitespace from header values and refuses
		// control characters, so such a secret could never match.
		for j := 0; j < len(s); j++ {
			if b := s[j]; b < 0x20 || b == 0x7f {
				return fmt.Errorf("ingest: API secret %d contains a control character", i+1)
			}
		}
		if s[0] == ' ' || s[len(s)-1] == ' ' {
			return fmt.Errorf("ingest: API secret %d begins or ends with a space", i+1)
		}
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("ingest: max body bytes %d is negative", c.MaxBodyBytes)
	}
	if c.MaxWaiting < 0 {
		return fmt.Errorf("ingest: max waiting %d is negative", c.MaxWaiting)
	}
	if c.MaxWaitingPerSecret < 0 {
		return fmt.Errorf("ingest: max waiting per secret %d is negative", c.MaxWaitingPerSecret)
	}
	d := c.withDefaults()
	if d.MaxWaitingPerSecret < 1 {
		return fmt.Errorf("ingest: max waiting %d is less than one per API secret (%d secrets)", d.MaxWaiting, len(c.APISecrets))
	}
	if d.MaxWaitingPerSecret > d.MaxWaiting/len(c.APISecrets) {
		return fmt.Errorf("ingest: max waiting per secret %d for %d API secrets is more than max waiting %d holds: one secret's requests could take another's slots",
			d.MaxWaitingPerSecret, len(c.APISecrets), d.MaxWaiting)
	}
	if c.IdempotencyWindow != 0 && c.IdempotencyWindow < idempotency.MinWindow {
		return fmt.Errorf("ingest: idempotency window %s is shorter than %s", c.IdempotencyWindow, idempotency.MinWindow)
	}
	if c.MaxKeys < 0 {
		return fmt.Errorf("ingest: idempotency max keys %d is negative", c.MaxKeys)
	}
	if c.MaxKeysPerSecret < 0 {
		return fmt.Errorf("ingest: idempotency max keys per secret %d is negative", c.MaxKeysPerSecret)
	}
	if d.MaxKeysPerSecret < 1 {
		return fmt.Errorf("ingest: idempotency max keys %d is less than one per API secret (%d secrets)", d.MaxKeys, len(c.APISecrets))
	}
	if d.MaxKeysPerSecret > d.MaxKeys/len(c.APISecrets) {
		return fmt.Errorf("ingest: idempotency max keys per secret %d for %d API secrets is more than idempotency max keys %d holds: one secret's keys could take another's room",
			d.MaxKeysPerSecret, len(c.APISecrets), d.MaxKeys)
	}
	switch c.StreakyFailureStatus {
	case "", FailureStatusError, FailureStatusOK:
	default:
		return fmt.Errorf("ingest: streaky failure status %q must be %q or %q", c.StreakyFailureStatus, FailureStatusError, FailureStatusOK)
	}
	if c.StreakyWait < 0 || c.StreakyWait > MaxStreakyWait {
		return fmt.Errorf("ingest: streaky wait %s must be between 0s and %s (the Worker gives up after 15s)", c.StreakyWait, MaxStreakyWait)
	}
	return nil
}

// withDefaults fills the zero values that have defaults.
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxWaiting == 0 {
		c.MaxWaiting = DefaultMaxWaiting
	}
	if c.MaxWaitingPerSecret == 0 {
		c.MaxWaitingPerSecret = defaultShare(c.MaxWaiting, len(c.APISecrets))
	}
	if c.IdempotencyWindow == 0 {
		c.IdempotencyWindow = idempotency.DefaultWindow
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = idempotency.DefaultMaxKeys
	}
	if c.MaxKeysPerSecret == 0 {
		c.MaxKeysPerSecret = defaultShare(c.MaxKeys, len(c.APISecrets))
	}
	if c.StreakyFailureStatus == "" {
		c.StreakyFailureStatus = FailureStatusError
	}
	return c
}
