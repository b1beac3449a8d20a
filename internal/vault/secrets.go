package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go/jetstream"
)

// SecretRef names a stored read-once secret.
type SecretRef struct {
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PutSecret seals value and stores it for ttl (DefaultSecretTTL, at most
// Config.SecretMaxTTL, when 0), after which it is gone. It can be read once,
// with TakeSecret. ttl is rounded up to whole seconds.
//
// Errors: ErrInvalidSecret (empty or too long a value, not UTF-8, a TTL out
// of bounds) with the reason; ErrNoSecrets; ErrUnavailable.
func (v *Vault) PutSecret(ctx context.Context, value string, ttl time.Duration) (SecretRef, error) {
	ref, err := v.putSecret(ctx, value, ttl)
	v.count(opSecretPut, err)
	return ref, err
}

func (v *Vault) putSecret(ctx context.Context, value string, ttl time.Duration) (SecretRef, error) {
	if v.secrets == nil {
		return SecretRef{}, ErrNoSecrets
	}
	switch {
	case value == "":
		return SecretRef{}, fmt.Errorf("%w: the value is empty", ErrInvalidSecret)
	case len(value) > MaxSecretBytes:
		return SecretRef{}, fmt.Errorf("%w: the value is longer than %d bytes", ErrInvalidSecret, MaxSecretBytes)
	case !utf8.ValidString(value):
		return SecretRef{}, fmt.Errorf("%w: the value is not UTF-8", ErrInvalidSecret)
	}
	if ttl == 0 {
		ttl = min(DefaultSecretTTL, v.cfg.SecretMaxTTL)
	}
	if ttl < MinSecretTTL || ttl > v.cfg.SecretMaxTTL {
		return SecretRef{}, fmt.Errorf("%w: ttl must be between %s and %s", ErrInvalidSecret, MinSecretTTL, v.cfg.SecretMaxTTL)
	}
	if r := ttl % time.Second; r != 0 {
		ttl += time.Second - r // the store's TTLs are whole seconds
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()

	id := herald.NewID()
	rec := secretRecord{ExpiresAt: v.cfg.Now().UTC().Add(ttl)}
	var err error
	if rec.KID, rec.Sealed, err = v.keys.seal([]byte(value), secretAAD(id)); err != nil {
		return SecretRef{}, err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return SecretRef{}, fmt.Errorf("vault: encode secret: %w", err)
	}
	if _, err := v.secrets.Create(ctx, secretKey(id), data, jetstream.KeyTTL(ttl)); err != nil {
		return SecretRef{}, v.storeFailed("secrets", "store secret", err)
	}
	return SecretRef{ID: id, ExpiresAt: rec.ExpiresAt}, nil
}

// TakeSecret returns secret id's value and deletes it, atomically: the delete
// is a compare-and-set on the revision read, so of concurrent reads (on any
// replicas) only the one whose delete lands gets the value; the others, and
// every later read, get ErrSecretNotFound, as does a read after the secret
// expired.
//
// Errors: ErrSecretNotFound; ErrNoSecrets; ErrUnknownKey, ErrCorrupt (the
// secret is kept); ErrUnavailable (the value is not returned; if the delete
// did land, the secret is gone).
func (v *Vault) TakeSecret(ctx context.Context, id string) (string, error) {
	value, err := v.takeSecret(ctx, id)
	v.count(opSecretTake, err)
	return value, err
}

func (v *Vault) takeSecret(ctx context.Context, id string) (string, error) {
	if v.secrets == nil {
		return "", ErrNoSecrets
	}
	if !herald.ValidID(id) {
		return "", ErrSecretNotFound
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	e, err := v.secrets.Get(ctx, secretKey(id))
	if err != nil {
		if isMissing(err) {
			return "", ErrSecretNotFound
		}
		return "", v.storeFailed("secrets", "read secret", err)
	}
	var rec secretRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return "", fmt.Errorf("vault: secret %s: %w", id, ErrCorrupt)
	}
	purge := func() error {
		return v.secrets.Purge(ctx, secretKey(id), jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(markerTTL))
	}
	if v.cfg.Now().After(rec.ExpiresAt) {
		// The store's own expiry may lag by a moment; the record's time
		// decides. Deleting it is a courtesy.
		_ = purge()
		return "", ErrSecretNotFound
	}
	plain, err := v.keys.open(rec.KID, rec.Sealed, secretAAD(id))
	if err != nil {
		return "", fmt.Errorf("vault: secret %s: %w", id, err)
	}
	defer wipe(plain)
	if err := purge(); err != nil {
		if isConflict(err) || isMissing(err) {
			return "", ErrSecretNotFound // another read took it
		}
		return "", v.storeFailed("secrets", "delete secret", err)
	}
	return string(plain), nil
}
