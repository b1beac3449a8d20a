package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// RotateResult sums up a Rotate run.
type RotateResult struct {
	// KeyID is the key every record is now sealed under.
	KeyID string
	// Total is the number of credentials found when the run started.
	Total int
	// Resealed were re-sealed under KeyID by this run.
	Resealed int
	// Current were under KeyID already (an earlier or concurrent run, or
	// stored since the key became the newest).
	Current int
	// Gone were deleted meanwhile.
	Gone int
	// Failed could not be re-sealed (see Problems); they are unchanged.
	Failed int
	// Problems says why each failed one failed.
	Problems []RotateProblem
}

// RotateProblem is one credential Rotate could not re-seal.
type RotateProblem struct {
	ID    string
	Error string
}

// Rotate re-seals every credential (and any pending verification code) that
// is not under the newest key, so that older keys can then be removed from
// the configuration. Each record is re-sealed with a compare-and-set update
// on the revision it was read at: a concurrent change (a verification, a
// delete) is never overwritten; the record is read again and handled anew.
// At every moment each record is readable by one of the configured keys, so
// jobs keep flowing during a rotation, and a run that stops half-way (crash,
// ctx cancelled, store outage) is resumed by running it again: records under
// the newest key already are counted as Current and left alone.
//
// Every process that opens credentials must have the new key configured
// (in front) before Rotate runs, and the old keys must stay configured until
// it has finished with no failures. Read-once secrets are not re-sealed: they
// expire within Config.SecretMaxTTL, so keep an old key at least that long.
//
// progress, when not nil, is called after each record with the number done
// and the total. The error is nil when every record was visited (see
// RotateResult.Failed for records that could not be re-sealed); otherwise the
// result covers the records visited before it.
func (v *Vault) Rotate(ctx context.Context, progress func(done, total int)) (RotateResult, error) {
	res := RotateResult{KeyID: v.keys.newest()}
	ids, err := v.credentialIDs(ctx)
	if err != nil {
		return res, err
	}
	res.Total = len(ids)
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("vault: rotate stopped after %d of %d credentials: %w", i, res.Total, err)
		}
		outcome, err := v.rotateOne(ctx, id)
		switch {
		case errors.Is(err, ErrUnavailable):
			v.count(opRotate, err)
			return res, fmt.Errorf("vault: rotate stopped after %d of %d credentials: %w", i, res.Total, err)
		case err != nil:
			res.Failed++
			res.Problems = append(res.Problems, RotateProblem{ID: id, Error: err.Error()})
		case outcome == rotatedGone:
			res.Gone++
		case outcome == rotatedCurrent:
			res.Current++
		default:
			res.Resealed++
		}
		v.count(opRotate, err)
		if progress != nil {
			progress(i+1, res.Total)
		}
	}
	v.log.LogAttrs(ctx, slog.LevelInfo, "vault rotated", slog.String("key_id", res.KeyID), slog.Int("total", res.Total),
		slog.Int("resealed", res.Resealed), slog.Int("current", res.Current), slog.Int("gone", res.Gone), slog.Int("failed", res.Failed))
	return res, nil
}

// credentialIDs lists the ids of every stored credential.
func (v *Vault) credentialIDs(ctx context.Context) ([]string, error) {
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		lctx, cancel = context.WithTimeout(ctx, listTimeout)
	}
	defer cancel()
	lister, err := v.kv.ListKeysFiltered(lctx, credentialKey("*"))
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, v.storeFailed("vault", "list credentials", err)
	}
	defer lister.Stop()
	var ids []string
	for k := range lister.Keys() {
		if id, ok := strings.CutPrefix(k, credentialKey("")); ok {
			ids = append(ids, id)
		}
	}
	if err := lctx.Err(); err != nil {
		return nil, v.storeFailed("vault", "list credentials", err)
	}
	// A listing may repeat a key that changed while it ran.
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// listTimeout bounds listing the credentials when ctx has no deadline.
const listTimeout = 2 * time.Minute

type rotated int

const (
	rotatedResealed rotated = iota + 1
	rotatedCurrent
	rotatedGone
)

// rotateOne re-seals credential id under the newest key unless it is there
// already.
func (v *Vault) rotateOne(ctx context.Context, id string) (rotated, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	newest := v.keys.newest()
	for range casRetries {
		rec, rev, err := v.load(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return rotatedGone, nil
		}
		if err != nil {
			return 0, err
		}
		if rec.KID == newest && (rec.Code == nil || rec.Code.KID == newest) {
			return rotatedCurrent, nil
		}
		if err := v.reseal(id, &rec); err != nil {
			return 0, err
		}
		err = v.update(ctx, id, rec, rev)
		if isConflict(err) {
			continue // changed since it was read: read it again
		}
		if err != nil {
			return 0, err
		}
		return rotatedResealed, nil
	}
	return 0, fmt.Errorf("vault: credential %s changed %d times while being re-sealed: %w", id, casRetries, ErrUnavailable)
}

// reseal re-seals rec's target and pending code under the newest key.
func (v *Vault) reseal(id string, rec *record) error {
	aad := credentialAAD(id, rec.Channel)
	plain, err := v.keys.open(rec.KID, rec.Sealed, aad)
	if err != nil {
		return fmt.Errorf("vault: credential %s: %w", id, err)
	}
	rec.KID, rec.Sealed, err = v.keys.seal(plain, aad)
	wipe(plain)
	if err != nil {
		return err
	}
	if rec.Code == nil {
		return nil
	}
	code, err := v.keys.open(rec.Code.KID, rec.Code.Sealed, codeAAD(id))
	if err != nil {
		return fmt.Errorf("vault: credential %s: code: %w", id, err)
	}
	rec.Code.KID, rec.Code.Sealed, err = v.keys.seal(code, codeAAD(id))
	wipe(code)
	return err
}
