package vault_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"testing"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/vault"
)

// Owner ids as the ingest derives them from two API secrets.
const (
	ownerA = "aaaaaaaaaaaaaaaaaaaaaaaaaa"
	ownerB = "bbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// A credential stored for an owner is, to every other owner, a credential
// that does not exist: Info, Check, Resolve, Verify, Resend and Delete all
// answer ErrNotFound, a wrong code does not count and no code is sent. Its
// owner, and a job without an owner (published straight to NATS), still use
// it, also after the keys are rotated.
func TestCredentialOwnedByItsStorer(t *testing.T) {
	s := testkit.NewServer(t)
	f := newVault(t, s, nil)
	info := f.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{Owner: ownerA, Verify: true})
	code := f.notifier.lastCode(t, discordTarget)
	sent := f.notifier.count()

	check := func(when string) {
		t.Helper()
		for _, other := range []string{ownerB, ""} {
			if _, err := f.Info(ctxT(t), info.ID, other); !errors.Is(err, vault.ErrNotFound) {
				t.Errorf("%s: Info as %q: %v, want ErrNotFound", when, other, err)
			}
			if err := f.Check(ctxT(t), info.ID, herald.ChannelTelegram, other); !errors.Is(err, vault.ErrNotFound) {
				t.Errorf("%s: Check (other channel) as %q: %v, want ErrNotFound before the channel", when, other, err)
			}
			if _, err := f.Verify(ctxT(t), info.ID, wrongCode(code), other); !errors.Is(err, vault.ErrNotFound) {
				t.Errorf("%s: Verify as %q: %v, want ErrNotFound", when, other, err)
			}
			if err := f.Resend(ctxT(t), info.ID, other); !errors.Is(err, vault.ErrNotFound) {
				t.Errorf("%s: Resend as %q: %v, want ErrNotFound", when, other, err)
			}
			if err := f.Delete(ctxT(t), info.ID, other); !errors.Is(err, vault.ErrNotFound) {
				t.Errorf("%s: Delete as %q: %v, want ErrNotFound", when, other, err)
			}
		}
		_, err := f.Resolve(ctxT(t), info.ID, herald.ChannelDiscord, ownerB)
		if !errors.Is(err, vault.ErrNotFound) || !errors.Is(err, herald.ErrPermanent) {
			t.Errorf("%s: Resolve for a job of another owner: %v, want permanent ErrNotFound", when, err)
		}
	}
	check("unverified")
	if f.notifier.count() != sent {
		t.Fatal("another owner's Resend sent a code")
	}
	// The other owners' wrong codes did not count: four of the owner's
	// own are still allowed before the right one.
	for range 4 {
		if _, err := f.Verify(ctxT(t), info.ID, wrongCode(code), ownerA); !errors.Is(err, vault.ErrWrongCode) {
			t.Fatalf("the owner's wrong code: %v", err)
		}
	}
	if got, err := f.Verify(ctxT(t), info.ID, code, ownerA); err != nil || !got.Verified {
		t.Fatalf("the owner's Verify: %+v, %v", got, err)
	}
	check("verified")

	// Rotation keeps the owner.
	rotated := newVault(t, s, func(c *vault.Config) { c.Keys = []string{keyV2, keyV1} })
	if res, err := rotated.Rotate(ctxT(t), nil); err != nil || res.Resealed != 1 {
		t.Fatalf("Rotate: %+v, %v", res, err)
	}
	f = rotated
	check("rotated")
	for _, owner := range []string{ownerA, ""} {
		if got, err := f.Resolve(ctxT(t), info.ID, herald.ChannelDiscord, owner); err != nil || got != discordTarget {
			t.Fatalf("Resolve for a job of owner %q: %v", owner, err)
		}
	}
	if err := f.Check(ctxT(t), info.ID, herald.ChannelDiscord, ownerA); err != nil {
		t.Fatalf("the owner's Check: %v", err)
	}
	if got, err := f.Info(ctxT(t), info.ID, ownerA); err != nil || got.KeyID != "v2" {
		t.Fatalf("the owner's Info: %+v, %v", got, err)
	}
	assertNoLeak(t, "record", string(f.raw(t, info.ID)))
	if err := f.Delete(ctxT(t), info.ID, ownerA); err != nil {
		t.Fatalf("the owner's Delete: %v", err)
	}
	if _, err := f.Info(ctxT(t), info.ID, ownerA); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("Info after Delete: %v", err)
	}
}

// A credential stored for nobody (the registration page's) is a bearer
// credential: any owner, and a job of any owner, uses it. Its record has no
// owner member, which is what every record stored before owners were
// recorded looks like.
func TestUnownedCredentialIsABearerCredential(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	info := f.mustStore(t, herald.ChannelTelegram, telegramTarget, vault.StoreOptions{})
	// Its id is all a holder needs: 128 random bits (herald.NewID).
	if !regexp.MustCompile(`^[a-z2-7]{26}$`).MatchString(info.ID) {
		t.Fatalf("credential id %q is not 26 characters of base32", info.ID)
	}
	var rec map[string]any
	if err := json.Unmarshal(f.raw(t, info.ID), &rec); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec["owner"]; ok {
		t.Fatalf("an unowned record has an owner member: %v", rec)
	}
	for _, owner := range []string{ownerA, ownerB, ""} {
		if _, err := f.Info(ctxT(t), info.ID, owner); err != nil {
			t.Errorf("Info as %q: %v", owner, err)
		}
		if err := f.Check(ctxT(t), info.ID, herald.ChannelTelegram, owner); err != nil {
			t.Errorf("Check as %q: %v", owner, err)
		}
		if got, err := f.Resolve(ctxT(t), info.ID, herald.ChannelTelegram, owner); err != nil || got != telegramTarget {
			t.Errorf("Resolve for a job of %q: %v", owner, err)
		}
	}
	if err := f.Delete(ctxT(t), info.ID, ownerB); err != nil {
		t.Fatalf("Delete by another holder: %v", err)
	}
}
