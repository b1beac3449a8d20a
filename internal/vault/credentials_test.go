package vault_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/vault"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStoreResolveRoundTrip(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	for name, tc := range map[string]struct {
		channel herald.Channel
		target  herald.Target
	}{
		"discord":  {herald.ChannelDiscord, discordTarget},
		"telegram": {herald.ChannelTelegram, telegramTarget},
	} {
		t.Run(name, func(t *testing.T) {
			info := f.mustStore(t, tc.channel, tc.target, vault.StoreOptions{})
			if !herald.ValidID(info.ID) || info.Channel != tc.channel || info.KeyID != "v1" || !info.Usable || info.Verified || info.CodeSent {
				t.Fatalf("info = %+v", info)
			}
			got, err := f.Resolve(ctxT(t), info.ID, tc.channel, "")
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if got != tc.target {
				t.Fatal("Resolve returned another target")
			}
			if err := f.Check(ctxT(t), info.ID, tc.channel, ""); err != nil {
				t.Fatalf("Check: %v", err)
			}
			// Sealed at rest: the record and the metadata hold no plaintext.
			assertNoLeak(t, "stored record", string(f.raw(t, info.ID)))
			again, err := f.Info(ctxT(t), info.ID, "")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(again)
			assertNoLeak(t, "info", string(b))
		})
	}
	if n := testutil.ToFloat64(f.metrics.VaultOps.WithLabelValues("store", "ok")); n != 2 {
		t.Errorf("VaultOps{store,ok} = %v, want 2", n)
	}
}

// The record is bound to its id and channel: copied under another id, or
// with its channel changed, it does not open.
func TestSealedRecordIsBoundToItsIDAndChannel(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	a := f.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{})
	b := f.mustStore(t, herald.ChannelDiscord, herald.Target{WebhookURL: "https://discord.com/api/webhooks/1/other"}, vault.StoreOptions{})

	// An attacker with write access to the bucket copies a's record over b.
	if _, err := f.creds.Put(ctxT(t), "c."+b.ID, f.raw(t, a.ID)); err != nil {
		t.Fatal(err)
	}
	_, err := f.Resolve(ctxT(t), b.ID, herald.ChannelDiscord, "")
	if !errors.Is(err, vault.ErrCorrupt) || !errors.Is(err, herald.ErrPermanent) {
		t.Fatalf("copied record: err = %v, want ErrCorrupt (permanent)", err)
	}

	// Or relabels a discord record as telegram.
	var rec map[string]any
	_ = json.Unmarshal(f.raw(t, a.ID), &rec)
	rec["channel"] = "telegram"
	data, _ := json.Marshal(rec)
	if _, err := f.creds.Put(ctxT(t), "c."+a.ID, data); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Resolve(ctxT(t), a.ID, herald.ChannelTelegram, ""); !errors.Is(err, vault.ErrCorrupt) {
		t.Fatalf("relabelled record: err = %v, want ErrCorrupt", err)
	}
}

func TestUnknownKeyIDIsAClearError(t *testing.T) {
	s := testkit.NewServer(t)
	old := newVault(t, s, nil)
	info := old.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{})

	// A process configured without the key the record names.
	f := newVault(t, s, func(c *vault.Config) { c.Keys = []string{keyV2} })
	_, err := f.Resolve(ctxT(t), info.ID, herald.ChannelDiscord, "")
	if !errors.Is(err, vault.ErrUnknownKey) || !errors.Is(err, herald.ErrPermanent) {
		t.Fatalf("Resolve: err = %v, want ErrUnknownKey (permanent)", err)
	}
	if !strings.Contains(err.Error(), `"v1"`) || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("error %q does not name the missing key id", err)
	}
	if err := f.Check(ctxT(t), info.ID, herald.ChannelDiscord, ""); !errors.Is(err, vault.ErrUnknownKey) {
		t.Fatalf("Check: err = %v, want ErrUnknownKey", err)
	}
	// Same key id, other material: it does not open either.
	g := newVault(t, s, func(c *vault.Config) { c.Keys = []string{"v1:" + strings.Repeat("A", 43) + "="} })
	if _, err := g.Resolve(ctxT(t), info.ID, herald.ChannelDiscord, ""); !errors.Is(err, vault.ErrCorrupt) {
		t.Fatalf("wrong material: err = %v, want ErrCorrupt", err)
	}
}

func TestResolveRefusals(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	info := f.mustStore(t, herald.ChannelTelegram, telegramTarget, vault.StoreOptions{})
	pending := f.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{Verify: true})

	for name, tc := range map[string]struct {
		id      string
		channel herald.Channel
		want    error
	}{
		"unknown id":     {herald.NewID(), herald.ChannelDiscord, vault.ErrNotFound},
		"invalid id":     {"../etc/passwd", herald.ChannelDiscord, vault.ErrNotFound},
		"other channel":  {info.ID, herald.ChannelDiscord, vault.ErrChannelMismatch},
		"not verified":   {pending.ID, herald.ChannelDiscord, vault.ErrUnverified},
		"wildcard id":    {"*", herald.ChannelDiscord, vault.ErrNotFound},
		"empty id":       {"", herald.ChannelDiscord, vault.ErrNotFound},
		"oversized id":   {strings.Repeat("a", 65), herald.ChannelDiscord, vault.ErrNotFound},
		"subject tokens": {"c.x", herald.ChannelDiscord, vault.ErrNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.Resolve(ctxT(t), tc.id, tc.channel, "")
			if !errors.Is(err, tc.want) || !errors.Is(err, herald.ErrPermanent) {
				t.Fatalf("Resolve: err = %v, want %v (permanent)", err, tc.want)
			}
			if err := f.Check(ctxT(t), tc.id, tc.channel, ""); !errors.Is(err, tc.want) {
				t.Fatalf("Check: err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestStoreRefusesWhatTheChannelRefuses(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	for name, tc := range map[string]struct {
		channel herald.Channel
		target  herald.Target
		want    error
	}{
		"webhook on another host": {herald.ChannelDiscord, herald.Target{WebhookURL: "https://evil.example.com/api/webhooks/1/EvilToken_xyz"}, vault.ErrTargetRejected},
		"plain http":              {herald.ChannelDiscord, herald.Target{WebhookURL: "http://discord.com/api/webhooks/1/EvilToken_xyz"}, vault.ErrTargetRejected},
		"malformed bot token":     {herald.ChannelTelegram, herald.Target{BotToken: "EvilToken_xyz", ChatID: "1"}, vault.ErrTargetRejected},
		"missing chat":            {herald.ChannelTelegram, herald.Target{BotToken: testBot}, vault.ErrTargetRejected},
		"unknown channel":         {"slack", discordTarget, vault.ErrInvalidChannel},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.Store(ctxT(t), tc.channel, tc.target, vault.StoreOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), "EvilToken_xyz") || strings.Contains(err.Error(), "evil.example.com") || strings.Contains(err.Error(), testBot) {
				t.Fatalf("error %q repeats the destination", err)
			}
		})
	}
	// Nothing was stored.
	if _, err := f.creds.Keys(ctxT(t)); err == nil {
		t.Fatal("a refused destination left a record")
	}
}

func TestDelete(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	info := f.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{})
	if err := f.Delete(ctxT(t), info.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Resolve(ctxT(t), info.ID, herald.ChannelDiscord, ""); !errors.Is(err, vault.ErrNotFound) || !errors.Is(err, herald.ErrPermanent) {
		t.Fatalf("Resolve after delete: %v", err)
	}
	if err := f.Delete(ctxT(t), info.ID, ""); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := f.Info(ctxT(t), info.ID, ""); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("Info after delete: %v", err)
	}
}

// When the store cannot be reached, Resolve fails transiently (the job is
// retried), never permanently.
func TestResolveStoreOutageIsTransient(t *testing.T) {
	s := testkit.NewServer(t)
	f := newVault(t, s, nil)
	info := f.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{})
	// Delete the bucket's stream from under the vault: every read fails.
	if err := f.js.DeleteKeyValue(ctxT(t), vault.CredentialsBucket); err != nil {
		t.Fatal(err)
	}
	_, err := f.Resolve(ctxT(t), info.ID, herald.ChannelDiscord, "")
	if err == nil || errors.Is(err, herald.ErrPermanent) || !errors.Is(err, vault.ErrUnavailable) {
		t.Fatalf("Resolve during an outage: err = %v, want transient ErrUnavailable", err)
	}
	if n := testutil.ToFloat64(f.metrics.StoreErrors.WithLabelValues("vault")); n < 1 {
		t.Errorf("StoreErrors{vault} = %v, want at least 1", n)
	}
}
