package vault

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go/jetstream"
)

// codeDigits is the length of a verification code.
const codeDigits = 6

// CodeTitle starts the message a verification code is sent in; the code
// follows it.
const CodeTitle = "Herald verification code: "

// newCode makes a fresh code for credential id and returns it with its
// sealed form.
func (v *Vault) newCode(id string, now time.Time) (string, *sealedCode, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", nil, fmt.Errorf("vault: code: %w", err)
	}
	code := fmt.Sprintf("%0*d", codeDigits, n.Int64())
	kid, sealed, err := v.keys.seal([]byte(code), codeAAD(id))
	if err != nil {
		return "", nil, err
	}
	return code, &sealedCode{KID: kid, Sealed: sealed, ExpiresAt: now.Add(v.cfg.CodeTTL)}, nil
}

// sendCode hands the code to the Notifier, addressed to the destination.
func (v *Vault) sendCode(ctx context.Context, id string, c herald.Channel, target herald.Target, code string) error {
	n := herald.Notification{
		Channel: c,
		Target:  target,
		Message: herald.Message{
			Title: CodeTitle + code,
			Text: fmt.Sprintf("Enter this code within %s to confirm this destination for Herald. "+
				"If you did not ask for it, ignore this message: nothing will be sent here.", v.cfg.CodeTTL),
		},
	}
	if err := v.notifier.Notify(ctx, n); err != nil {
		return fmt.Errorf("vault: send verification code: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// Verify confirms credential id with the code sent to its destination. On
// success the credential is verified (usable by jobs) and the code is
// forgotten. A wrong code counts against Config.MaxWrongCodes, across
// resends; the last allowed one deletes the credential.
//
// It acts for owner (see StoreOptions.Owner): a credential of another owner
// is ErrNotFound, and the code is not even compared, so that another owner
// can neither verify it nor spend its attempts.
//
// Errors: ErrNotFound; *WrongCodeError (ErrWrongCode); ErrTooManyAttempts
// (the credential is gone); ErrCodeExpired; ErrNoCode; ErrAlreadyVerified;
// ErrUnknownKey, ErrCorrupt, ErrUnavailable.
func (v *Vault) Verify(ctx context.Context, id, code, owner string) (Info, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := v.verify(ctx, id, strings.TrimSpace(code), owner)
	v.count(opVerify, err)
	return info, err
}

func (v *Vault) verify(ctx context.Context, id, code, owner string) (Info, error) {
	for range casRetries {
		rec, rev, err := v.loadAs(ctx, id, owner)
		if err != nil {
			return Info{}, err
		}
		now := v.cfg.Now().UTC()
		switch {
		case rec.Verified:
			return Info{}, ErrAlreadyVerified
		case rec.Code == nil:
			return Info{}, ErrNoCode
		case now.After(rec.Code.ExpiresAt):
			return Info{}, ErrCodeExpired
		}
		want, err := v.keys.open(rec.Code.KID, rec.Code.Sealed, codeAAD(id))
		if err != nil {
			return Info{}, fmt.Errorf("vault: credential %s: code: %w", id, err)
		}
		// Compare fixed-length digests: the time taken says nothing about
		// the code.
		ok := subtle.ConstantTimeCompare(digest(want), digest([]byte(code))) == 1
		wipe(want)
		if ok {
			rec.Verified, rec.VerifiedAt = true, now
			rec.Code, rec.PendingUntil, rec.WrongCodes = nil, time.Time{}, 0
			err := v.update(ctx, id, rec, rev)
			if isConflict(err) {
				continue // changed meanwhile: decide again on the new record
			}
			if err != nil {
				return Info{}, err
			}
			v.log.LogAttrs(ctx, slog.LevelInfo, "credential verified", slog.String("id", id), slog.String("channel", string(rec.Channel)))
			return v.info(id, rec), nil
		}
		rec.WrongCodes++
		if rec.WrongCodes >= v.cfg.MaxWrongCodes {
			err := v.kv.Purge(ctx, credentialKey(id), jetstream.LastRevision(rev), jetstream.PurgeTTL(markerTTL))
			if isConflict(err) {
				continue
			}
			if err != nil {
				return Info{}, v.storeFailed("vault", "delete credential "+id, err)
			}
			v.log.LogAttrs(ctx, slog.LevelWarn, "credential deleted after too many wrong codes", slog.String("id", id),
				slog.String("channel", string(rec.Channel)), slog.Int("wrong_codes", rec.WrongCodes))
			return Info{}, ErrTooManyAttempts
		}
		err = v.update(ctx, id, rec, rev)
		if isConflict(err) {
			continue
		}
		if err != nil {
			return Info{}, err
		}
		return Info{}, &WrongCodeError{Remaining: v.cfg.MaxWrongCodes - rec.WrongCodes}
	}
	return Info{}, fmt.Errorf("vault: credential %s changed %d times while being verified: %w", id, casRetries, ErrUnavailable)
}

// Resend sends a new verification code to credential id's destination,
// replacing the previous one (wrong codes so far still count). A credential
// stored without verification may be verified this way too. It acts for
// owner: a credential of another owner is ErrNotFound and gets no code.
// Errors: ErrNotFound, ErrAlreadyVerified, ErrNoNotifier, ErrUnknownKey,
// ErrCorrupt, ErrUnavailable.
func (v *Vault) Resend(ctx context.Context, id, owner string) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	err := v.resend(ctx, id, owner)
	v.count(opVerify, err)
	return err
}

func (v *Vault) resend(ctx context.Context, id, owner string) error {
	if v.notifier == nil {
		return ErrNoNotifier
	}
	for range casRetries {
		rec, rev, err := v.loadAs(ctx, id, owner)
		if err != nil {
			return err
		}
		if rec.Verified {
			return ErrAlreadyVerified
		}
		plain, err := v.keys.open(rec.KID, rec.Sealed, credentialAAD(id, rec.Channel))
		if err != nil {
			return fmt.Errorf("vault: credential %s: %w", id, err)
		}
		target, err := decodeTarget(plain)
		wipe(plain)
		if err != nil {
			return fmt.Errorf("vault: credential %s: %w", id, err)
		}
		code, sealed, err := v.newCode(id, v.cfg.Now().UTC())
		if err != nil {
			return err
		}
		rec.Code = sealed
		err = v.update(ctx, id, rec, rev)
		if isConflict(err) {
			continue
		}
		if err != nil {
			return err
		}
		return v.sendCode(ctx, id, rec.Channel, target, code)
	}
	return fmt.Errorf("vault: credential %s changed %d times while a code was being sent: %w", id, casRetries, ErrUnavailable)
}

// update writes rec over revision rev of credential id. A conflict (the
// record changed meanwhile) is returned as is, for isConflict; any other
// failure wraps ErrUnavailable.
func (v *Vault) update(ctx context.Context, id string, rec record, rev uint64) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("vault: encode record: %w", err)
	}
	if _, err := v.kv.Update(ctx, credentialKey(id), data, rev); err != nil {
		if isConflict(err) {
			return err
		}
		return v.storeFailed("vault", "update credential "+id, err)
	}
	return nil
}
