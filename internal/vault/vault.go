package vault

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults and bounds of Config.
const (
	// DefaultSecretMaxTTL bounds a read-once secret's lifetime.
	DefaultSecretMaxTTL = 24 * time.Hour
	// DefaultSecretTTL is a secret's lifetime when none is asked for (at
	// most Config.SecretMaxTTL).
	DefaultSecretTTL = time.Hour
	// MinSecretTTL is the shortest lifetime a secret may ask for: the
	// store's expiry works in whole seconds.
	MinSecretTTL = time.Second
	// MaxSecretBytes bounds a secret's value.
	MaxSecretBytes = 64 << 10
	// DefaultCodeTTL is how long a verification code may be entered.
	DefaultCodeTTL = 15 * time.Minute
	// DefaultPendingTTL is how long a credential that needs verification is
	// kept unverified before it is deleted.
	DefaultPendingTTL = 24 * time.Hour
	// DefaultMaxWrongCodes is how many wrong codes delete a credential. Six
	// digits and five guesses give a guesser one chance in 200,000.
	DefaultMaxWrongCodes = 5
	// storeTimeout bounds one key-value operation when ctx has no deadline.
	storeTimeout = 5 * time.Second
	// casRetries bounds the compare-and-set retries of one update.
	casRetries = 10
)

// Config configures a Vault.
type Config struct {
	// Keys are the vault keys, "kid:base64(32 bytes)", newest first: the
	// first seals, all open. At least one is required.
	Keys []string
	// RequireVerification makes every credential need its destination
	// verified before jobs may use it, and sends a code when one is stored.
	// When false, only credentials stored with StoreOptions.Verify need it.
	RequireVerification bool
	// SecretMaxTTL bounds a read-once secret's lifetime; DefaultSecretMaxTTL
	// when 0.
	SecretMaxTTL time.Duration
	// CodeTTL is how long a verification code may be entered; DefaultCodeTTL
	// when 0.
	CodeTTL time.Duration
	// PendingTTL is how long a credential that needs verification is kept
	// unverified; DefaultPendingTTL when 0.
	PendingTTL time.Duration
	// MaxWrongCodes is how many wrong codes delete a credential;
	// DefaultMaxWrongCodes when 0.
	MaxWrongCodes int
	// Now is the clock; time.Now when nil. Tests set it.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.SecretMaxTTL == 0 {
		c.SecretMaxTTL = DefaultSecretMaxTTL
	}
	if c.CodeTTL == 0 {
		c.CodeTTL = DefaultCodeTTL
	}
	if c.PendingTTL == 0 {
		c.PendingTTL = DefaultPendingTTL
	}
	if c.MaxWrongCodes == 0 {
		c.MaxWrongCodes = DefaultMaxWrongCodes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first problem with c. It never includes key material.
func (c Config) Validate() error {
	if _, err := newKeySet(c.Keys); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	c = c.withDefaults()
	switch {
	case c.SecretMaxTTL < MinSecretTTL:
		return fmt.Errorf("vault: secret max TTL %s is shorter than %s", c.SecretMaxTTL, MinSecretTTL)
	case c.CodeTTL < time.Minute:
		return fmt.Errorf("vault: code TTL %s is shorter than 1m", c.CodeTTL)
	case c.PendingTTL < c.CodeTTL:
		return fmt.Errorf("vault: pending TTL %s is shorter than the code TTL %s", c.PendingTTL, c.CodeTTL)
	case c.MaxWrongCodes < 1:
		return fmt.Errorf("vault: max wrong codes %d must be at least 1", c.MaxWrongCodes)
	}
	return nil
}

// TargetChecker says whether Herald may send to a destination, without
// sending anything; *channels.Discord and *channels.Telegram implement it.
// Its error's text is shown to clients, so it must not hold the target.
type TargetChecker interface {
	CheckTarget(herald.Target) error
}

// Notifier delivers a notification to a destination; it sends verification
// codes. JobNotifier publishes it as a job. It must be safe for concurrent
// use, and its errors must not hold the target.
type Notifier interface {
	Notify(ctx context.Context, n herald.Notification) error
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, n herald.Notification) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n herald.Notification) error { return f(ctx, n) }

// Deps are a Vault's collaborators.
type Deps struct {
	// Credentials is the CredentialsBucket (see EnsureBuckets); required.
	Credentials jetstream.KeyValue
	// Secrets is the SecretsBucket; nil disables read-once secrets.
	Secrets jetstream.KeyValue
	// Checkers check a destination before it is stored, one per channel;
	// Store refuses a channel without one.
	Checkers map[herald.Channel]TargetChecker
	// Notifier sends verification codes; nil makes verification
	// unavailable (Store with verification fails with ErrNoNotifier).
	Notifier Notifier
	// Metrics counts operations (VaultOps) and store failures (StoreErrors);
	// nil uses a private registry.
	Metrics *metrics.Metrics
	// Logger gets one line per change (stored, verified, deleted) with the
	// credential's id and channel, never its destination; nil discards.
	Logger *slog.Logger
}

// Vault stores credentials and secrets. It is safe for concurrent use, and
// any number of Vaults (replicas) may share the buckets.
type Vault struct {
	cfg      Config
	keys     *keySet
	kv       jetstream.KeyValue
	secrets  jetstream.KeyValue
	checkers map[herald.Channel]TargetChecker
	notifier Notifier
	metrics  *metrics.Metrics
	log      *slog.Logger
}

// New checks cfg and deps and returns a Vault.
func New(cfg Config, deps Deps) (*Vault, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Credentials == nil {
		return nil, errors.New("vault: deps: the credentials bucket is required")
	}
	keys, _ := newKeySet(cfg.Keys) // Validate parsed them
	v := &Vault{
		cfg:      cfg.withDefaults(),
		keys:     keys,
		kv:       deps.Credentials,
		secrets:  deps.Secrets,
		checkers: make(map[herald.Channel]TargetChecker, len(deps.Checkers)),
		notifier: deps.Notifier,
		metrics:  deps.Metrics,
		log:      deps.Logger,
	}
	for c, chk := range deps.Checkers {
		v.checkers[c] = chk
	}
	if v.metrics == nil {
		v.metrics = metrics.New(prometheus.NewRegistry())
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	return v, nil
}

// KeyID returns the id of the key that seals: the first configured.
func (v *Vault) KeyID() string { return v.keys.newest() }

// DeriveKeys returns one 32-byte key per configured vault key, newest first,
// derived for purpose (HMAC-SHA256 of the purpose under the key): keys that
// every replica shares and that rotate with the vault keys, for signing form
// tokens and the like. Sign with the first, accept any.
func (v *Vault) DeriveKeys(purpose string) [][]byte { return v.keys.derive(purpose) }

// Operation and result labels of the VaultOps metric.
const (
	opStore      = "store"
	opOpen       = "open"
	opDelete     = "delete"
	opRotate     = "rotate"
	opVerify     = "verify"
	opSecretPut  = "secret_put"
	opSecretTake = "secret_take"

	resOK         = "ok"
	resNotFound   = "not_found"
	resUnverified = "unverified"
	resRefused    = "refused"
	resError      = "error"
)

// count records one operation's outcome, its result derived from err.
func (v *Vault) count(op string, err error) {
	v.metrics.VaultOps.WithLabelValues(op, resultOf(err)).Inc()
}

func resultOf(err error) string {
	switch {
	case err == nil:
		return resOK
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrSecretNotFound):
		return resNotFound
	case errors.Is(err, ErrUnverified):
		return resUnverified
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrCorrupt), errors.Is(err, ErrUnknownKey),
		errors.Is(err, ErrNoNotifier), errors.Is(err, ErrNoSecrets):
		return resError
	default:
		return resRefused
	}
}

// storeFailed counts a failed key-value operation of store ("vault" or
// "secrets") and wraps err in ErrUnavailable.
func (v *Vault) storeFailed(store, op string, err error) error {
	v.metrics.StoreErrors.WithLabelValues(store).Inc()
	return unavailable(op, err)
}

// withTimeout bounds ctx with storeTimeout unless it has a deadline.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, storeTimeout)
}

func isMissing(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// load reads credential id's record and its revision. An invalid id, a
// missing record and an unverified one past its PendingUntil (deleted on
// the way) are ErrNotFound.
func (v *Vault) load(ctx context.Context, id string) (record, uint64, error) {
	if !herald.ValidID(id) {
		return record{}, 0, ErrNotFound
	}
	e, err := v.kv.Get(ctx, credentialKey(id))
	if err != nil {
		if isMissing(err) {
			return record{}, 0, ErrNotFound
		}
		return record{}, 0, v.storeFailed("vault", "read credential "+id, err)
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.Version != recordVersion {
		return record{}, 0, fmt.Errorf("vault: credential %s: %w", id, ErrCorrupt)
	}
	if !rec.Verified && !rec.PendingUntil.IsZero() && v.cfg.Now().After(rec.PendingUntil) {
		// Never verified in time: gone. Deleting it here keeps the bucket
		// from filling with abandoned registrations; a failure is harmless.
		if err := v.kv.Purge(ctx, credentialKey(id), jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(markerTTL)); err == nil {
			v.log.LogAttrs(ctx, slog.LevelInfo, "credential expired unverified", slog.String("id", id), slog.String("channel", string(rec.Channel)))
		}
		return record{}, 0, ErrNotFound
	}
	return rec, e.Revision(), nil
}

// loadAs is load for owner: a credential of another owner is ErrNotFound,
// exactly as a missing one, so that its existence does not leak either.
func (v *Vault) loadAs(ctx context.Context, id, owner string) (record, uint64, error) {
	rec, rev, err := v.load(ctx, id)
	if err == nil && !owns(rec, owner) {
		return record{}, 0, ErrNotFound
	}
	return rec, rev, err
}

// owns reports whether owner may act on rec: rec belongs to owner, or to
// nobody (a bearer credential, whose id is enough).
func owns(rec record, owner string) bool {
	return rec.Owner == "" || subtle.ConstantTimeCompare([]byte(rec.Owner), []byte(owner)) == 1
}

// usable reports whether jobs may use rec.
func (v *Vault) usable(rec record) bool {
	return rec.Verified || !(rec.RequireVerification || v.cfg.RequireVerification)
}

// Info is a credential's metadata: what any endpoint may show. It never
// holds the destination.
type Info struct {
	ID      string         `json:"id"`
	Channel herald.Channel `json:"channel"`
	// Verified says the destination confirmed a code.
	Verified bool `json:"verified"`
	// VerificationRequired says jobs may use it only once verified.
	VerificationRequired bool `json:"verification_required"`
	// Usable says jobs may name it now.
	Usable bool `json:"usable"`
	// CodeSent says a code was sent and awaits confirmation.
	CodeSent bool `json:"code_sent"`
	// KeyID names the vault key the credential is sealed under.
	KeyID      string    `json:"key_id"`
	CreatedAt  time.Time `json:"created_at"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	// ExpiresAt is when it is deleted unless verified (zero when never).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

func (v *Vault) info(id string, rec record) Info {
	return Info{
		ID:                   id,
		Channel:              rec.Channel,
		Verified:             rec.Verified,
		VerificationRequired: rec.RequireVerification || v.cfg.RequireVerification,
		Usable:               v.usable(rec),
		CodeSent:             rec.Code != nil,
		KeyID:                rec.KID,
		CreatedAt:            rec.CreatedAt,
		VerifiedAt:           rec.VerifiedAt,
		ExpiresAt:            rec.PendingUntil,
	}
}
