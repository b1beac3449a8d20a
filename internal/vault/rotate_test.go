package vault_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/vault"
)

// storeMany stores n Discord credentials under f's newest key and returns
// their ids and targets.
func storeMany(t *testing.T, f *fixture, n int) ([]string, map[string]herald.Target) {
	t.Helper()
	ids := make([]string, n)
	targets := make(map[string]herald.Target, n)
	for i := range n {
		target := herald.Target{WebhookURL: fmt.Sprintf("https://discord.com/api/webhooks/%d/token-%d", 1000+i, i)}
		ids[i] = f.mustStore(t, herald.ChannelDiscord, target, vault.StoreOptions{}).ID
		targets[ids[i]] = target
	}
	return ids, targets
}

// Rotation while the credentials are being used: no use ever fails, every
// record ends up under the new key, and a second run has nothing to do.
func TestRotateWhileInUse(t *testing.T) {
	s := testkit.NewServer(t)
	old := newVault(t, s, nil) // keys v1
	ids, targets := storeMany(t, old, 40)

	// Every process now has v2 in front.
	rotating := newVault(t, s, func(c *vault.Config) { c.Keys = []string{keyV2, keyV1} })
	user := newVault(t, s, func(c *vault.Config) { c.Keys = []string{keyV2, keyV1} })

	stop := make(chan struct{})
	var (
		wg       sync.WaitGroup
		resolved atomic.Int64
	)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[i%len(ids)]
				got, err := user.Resolve(context.Background(), id, herald.ChannelDiscord, "")
				if err != nil {
					t.Errorf("Resolve %s during rotation: %v", id, err)
					return
				}
				if got != targets[id] {
					t.Errorf("Resolve %s returned another target", id)
					return
				}
				resolved.Add(1)
			}
		}()
	}
	var calls atomic.Int32
	res, err := rotating.Rotate(ctxT(t), func(done, total int) {
		calls.Add(1)
		if total != len(ids) || done < 1 || done > total {
			t.Errorf("progress(%d, %d)", done, total)
		}
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.KeyID != "v2" || res.Total != 40 || res.Resealed != 40 || res.Current != 0 || res.Failed != 0 || int(calls.Load()) != 40 {
		t.Fatalf("result = %+v, progress calls %d", res, calls.Load())
	}
	if resolved.Load() == 0 {
		t.Fatal("no credential was used during the rotation")
	}
	// Only v2 is needed now.
	only := newVault(t, s, func(c *vault.Config) { c.Keys = []string{keyV2} })
	for _, id := range ids {
		if got, err := only.Resolve(ctxT(t), id, herald.ChannelDiscord, ""); err != nil || got != targets[id] {
			t.Fatalf("Resolve %s with v2 only: %v", id, err)
		}
		if info, _ := only.Info(ctxT(t), id, ""); info.KeyID != "v2" {
			t.Fatalf("credential %s under %q", id, info.KeyID)
		}
	}
	again, err := rotating.Rotate(ctxT(t), nil)
	if err != nil || again.Resealed != 0 || again.Current != 40 {
		t.Fatalf("second run: %+v, %v", again, err)
	}
}

// A run stopped half-way leaves every record readable, and the next run
// finishes the job, skipping what is done.
func TestRotateIsResumable(t *testing.T) {
	s := testkit.NewServer(t)
	old := newVault(t, s, nil)
	ids, targets := storeMany(t, old, 12)
	f := newVault(t, s, func(c *vault.Config) { c.Keys = []string{keyV2, keyV1} })

	ctx, cancel := context.WithCancel(ctxT(t))
	res, err := f.Rotate(ctx, func(done, _ int) {
		if done == 5 {
			cancel() // the operator's Ctrl-C, or a crash
		}
	})
	if !errors.Is(err, context.Canceled) || res.Resealed != 5 {
		t.Fatalf("interrupted run: %+v, %v", res, err)
	}
	for _, id := range ids {
		if got, err := f.Resolve(ctxT(t), id, herald.ChannelDiscord, ""); err != nil || got != targets[id] {
			t.Fatalf("Resolve %s after the interrupted run: %v", id, err)
		}
	}
	res, err = f.Rotate(ctxT(t), nil)
	if err != nil || res.Resealed != 7 || res.Current != 5 {
		t.Fatalf("resumed run: %+v, %v", res, err)
	}
}

// Records changed or deleted meanwhile are not overwritten; a record no key
// opens is reported and left alone; pending codes move to the new key too.
func TestRotateEdgeCases(t *testing.T) {
	s := testkit.NewServer(t)
	v1 := newVault(t, s, nil)
	pending := v1.mustStore(t, herald.ChannelTelegram, telegramTarget, vault.StoreOptions{Verify: true})
	code := v1.notifier.lastCode(t, telegramTarget)
	gone := v1.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{})
	stray := newVault(t, s, func(c *vault.Config) { c.Keys = []string{keyV3} })
	lost := stray.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{})

	f := newVault(t, s, func(c *vault.Config) { c.Keys = []string{keyV2, keyV1} })
	res, err := f.Rotate(ctxT(t), func(done, _ int) {
		if done == 1 {
			_ = v1.Delete(context.Background(), gone.ID, "")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 3 || res.Failed != 1 || len(res.Problems) != 1 || res.Problems[0].ID != lost.ID || res.Resealed+res.Gone != 2 {
		t.Fatalf("result = %+v", res)
	}
	if p := res.Problems[0].Error; !strings.Contains(p, `"v3"`) || !strings.Contains(p, "not configured") {
		t.Fatalf("problem %q does not name the missing key", p)
	}
	// The pending registration completes with a vault that only has v2.
	only := newVault(t, s, func(c *vault.Config) { c.Keys = []string{keyV2} })
	if _, err := only.Verify(ctxT(t), pending.ID, code, ""); err != nil {
		t.Fatalf("verify after rotation: %v", err)
	}
	if got, err := only.Resolve(ctxT(t), pending.ID, herald.ChannelTelegram, ""); err != nil || got != telegramTarget {
		t.Fatalf("Resolve after rotation: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	for _, good := range []string{keyV1, "k-_9:" + "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8", "x:" + "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="} {
		if _, err := vault.ParseKey(good); err != nil {
			t.Errorf("ParseKey(%q): %v", good, err)
		}
	}
	for _, bad := range []string{
		"", "v1", ":AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "v1:", "v1:c2hvcnQ=",
		"has space:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "toolongkeyid12345:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"v1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==", "v1:!!!notbase64!!!",
	} {
		_, err := vault.ParseKey(bad)
		if !errors.Is(err, vault.ErrBadKey) {
			t.Errorf("ParseKey(%q) = %v, want ErrBadKey", bad, err)
			continue
		}
		if _, material, ok := strings.Cut(bad, ":"); ok && len(material) > 4 && strings.Contains(err.Error(), material) {
			t.Errorf("error %q repeats the key material", err)
		}
	}
	k, err := vault.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if parsed, err := vault.ParseKey(k); err != nil || len(parsed.ID) != 8 {
		t.Fatalf("generated key %v: %v", parsed.ID, err)
	}
	if _, err := vault.New(vault.Config{Keys: []string{keyV1, keyV1}}, vault.Deps{}); !errors.Is(err, vault.ErrBadKey) {
		t.Fatalf("duplicate key ids: %v", err)
	}
}
