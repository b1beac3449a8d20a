package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go/jetstream"
)

// StoreOptions adjust one Store call.
type StoreOptions struct {
	// Verify sends a verification code to the destination and makes the
	// credential unusable until it is confirmed, whatever
	// Config.RequireVerification says.
	Verify bool
	// Owner is the keyed id of the API secret storing the credential (never
	// the secret itself): only calls made as the same owner may then read,
	// verify, delete or use it, and to any other owner it does not exist.
	// Empty stores a credential that belongs to nobody: whoever holds its
	// id may use it (the registration page's credentials).
	Owner string
}

// Store checks target with the channel's TargetChecker, seals it under the
// newest key and stores it under a fresh id. With verification (opts.Verify
// or Config.RequireVerification) it then sends a code to the destination
// through the Notifier; if that fails the credential is deleted again and
// the error wraps ErrUnavailable.
//
// Errors: ErrInvalidChannel; ErrTargetRejected with the checker's reason;
// ErrNoNotifier; ErrUnavailable when the store or the notifier fails.
func (v *Vault) Store(ctx context.Context, c herald.Channel, target herald.Target, opts StoreOptions) (Info, error) {
	info, err := v.store(ctx, c, target, opts)
	v.count(opStore, err)
	return info, err
}

func (v *Vault) store(ctx context.Context, c herald.Channel, target herald.Target, opts StoreOptions) (Info, error) {
	if !c.Valid() {
		return Info{}, fmt.Errorf("%w %q (want discord or telegram)", ErrInvalidChannel, clip(string(c), 32))
	}
	chk := v.checkers[c]
	if chk == nil {
		return Info{}, fmt.Errorf("%w: channel %s is not configured", ErrTargetRejected, c)
	}
	// Only the fields of the channel are kept.
	switch c {
	case herald.ChannelDiscord:
		target = herald.Target{WebhookURL: target.WebhookURL}
	case herald.ChannelTelegram:
		target = herald.Target{BotToken: target.BotToken, ChatID: target.ChatID}
	}
	if err := chk.CheckTarget(target); err != nil {
		// The checker's text is safe to show (TargetChecker's contract).
		return Info{}, fmt.Errorf("%w: %s", ErrTargetRejected, err.Error())
	}
	verify := opts.Verify || v.cfg.RequireVerification
	if verify && v.notifier == nil {
		return Info{}, ErrNoNotifier
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()

	id := herald.NewID()
	now := v.cfg.Now().UTC()
	plain, err := encodeTarget(target)
	if err != nil {
		return Info{}, fmt.Errorf("vault: encode credential: %w", err)
	}
	rec := record{Version: recordVersion, Channel: c, CreatedAt: now, RequireVerification: verify, Owner: opts.Owner}
	rec.KID, rec.Sealed, err = v.keys.seal(plain, credentialAAD(id, c))
	wipe(plain)
	if err != nil {
		return Info{}, err
	}
	var code string
	if verify {
		rec.PendingUntil = now.Add(v.cfg.PendingTTL)
		if code, rec.Code, err = v.newCode(id, now); err != nil {
			return Info{}, err
		}
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return Info{}, fmt.Errorf("vault: encode record: %w", err)
	}
	var createOpts []jetstream.KVCreateOpt
	if verify {
		// A registration nobody verifies goes away by itself: the record
		// carries a TTL until Verify rewrites it without one. A stranger's
		// bad registrations cannot pile up in the bucket.
		createOpts = append(createOpts, jetstream.KeyTTL(v.cfg.PendingTTL))
	}
	if _, err := v.kv.Create(ctx, credentialKey(id), data, createOpts...); err != nil {
		return Info{}, v.storeFailed("vault", "store credential", err)
	}
	if verify {
		if err := v.sendCode(ctx, id, c, target, code); err != nil {
			// Without its code the registration cannot complete: take it
			// back rather than leave it pending.
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
			if perr := v.kv.Purge(pctx, credentialKey(id), jetstream.PurgeTTL(markerTTL)); perr != nil {
				v.metrics.StoreErrors.WithLabelValues("vault").Inc()
			}
			cancel()
			return Info{}, err
		}
	}
	v.log.LogAttrs(ctx, slog.LevelInfo, "credential stored", slog.String("id", id), slog.String("channel", string(c)),
		slog.String("key_id", rec.KID), slog.Bool("verification", verify))
	return v.info(id, rec), nil
}

// Info returns credential id's metadata, as owner asks for it (see
// StoreOptions.Owner; a credential of another owner is ErrNotFound). Errors:
// ErrNotFound, ErrUnavailable.
func (v *Vault) Info(ctx context.Context, id, owner string) (Info, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	rec, _, err := v.loadAs(ctx, id, owner)
	if err != nil {
		return Info{}, err
	}
	return v.info(id, rec), nil
}

// Delete deletes credential id for owner (a credential of another owner is
// ErrNotFound and stays): jobs naming it are refused from then on, and those
// already queued are dead-lettered. Errors: ErrNotFound, ErrUnavailable.
func (v *Vault) Delete(ctx context.Context, id, owner string) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	err := v.delete(ctx, id, owner)
	v.count(opDelete, err)
	if err == nil {
		v.log.LogAttrs(ctx, slog.LevelInfo, "credential deleted", slog.String("id", id))
	}
	return err
}

func (v *Vault) delete(ctx context.Context, id, owner string) error {
	if _, _, err := v.loadAs(ctx, id, owner); err != nil {
		return err
	}
	if err := v.kv.Purge(ctx, credentialKey(id), jetstream.PurgeTTL(markerTTL)); err != nil {
		return v.storeFailed("vault", "delete credential "+id, err)
	}
	return nil
}

// Check reports whether a job of owner for channel c may name credential
// id, without opening it: it exists and owner may use it (ErrNotFound
// otherwise, checked before anything else, so that nothing tells another
// owner's credential from a missing one), it is for c, it is usable
// (verified when that is required) and the key it is sealed under is
// configured. Errors: ErrNotFound, ErrChannelMismatch, ErrUnverified,
// ErrUnknownKey, ErrCorrupt, ErrUnavailable.
func (v *Vault) Check(ctx context.Context, id string, c herald.Channel, owner string) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	rec, _, err := v.loadAs(ctx, id, owner)
	if err == nil {
		err = v.checkUse(rec, c)
	}
	if err == nil && !v.keys.has(rec.KID) {
		err = fmt.Errorf("vault: credential %s: %w: key id %q", id, ErrUnknownKey, clip(rec.KID, maxKeyIDLen))
	}
	return err
}

func (v *Vault) checkUse(rec record, c herald.Channel) error {
	if rec.Channel != c {
		return fmt.Errorf("%w: it is for %s, not %s", ErrChannelMismatch, rec.Channel, clip(string(c), 32))
	}
	if !v.usable(rec) {
		return ErrUnverified
	}
	return nil
}

// Resolve opens credential id for one send of a job for channel c whose
// Owner is owner (herald.Job.Owner): the returned target must live no longer
// than that send. A job with an owner may use only that owner's credentials
// and those of nobody (another owner's is ErrNotFound); a job without one
// (published straight to NATS, or queued before jobs carried owners) is not
// checked. Errors that can never change (ErrNotFound, ErrChannelMismatch,
// ErrUnverified, ErrUnknownKey, ErrCorrupt) also wrap herald.ErrPermanent; a
// store failure (ErrUnavailable) does not, and is worth retrying.
func (v *Vault) Resolve(ctx context.Context, id string, c herald.Channel, owner string) (herald.Target, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	t, err := v.resolve(ctx, id, c, owner)
	v.count(opOpen, err)
	if err != nil && !errors.Is(err, ErrUnavailable) {
		err = herald.Permanent(err)
	}
	return t, err
}

func (v *Vault) resolve(ctx context.Context, id string, c herald.Channel, owner string) (herald.Target, error) {
	rec, _, err := v.load(ctx, id)
	if err != nil {
		return herald.Target{}, err
	}
	if owner != "" && !owns(rec, owner) {
		return herald.Target{}, ErrNotFound
	}
	if err := v.checkUse(rec, c); err != nil {
		return herald.Target{}, err
	}
	plain, err := v.keys.open(rec.KID, rec.Sealed, credentialAAD(id, rec.Channel))
	if err != nil {
		return herald.Target{}, fmt.Errorf("vault: credential %s: %w", id, err)
	}
	defer wipe(plain)
	return decodeTarget(plain)
}
