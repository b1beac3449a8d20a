package vault_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/vault"
)

// wrongCode returns a code that is not code.
func wrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

func TestVerifyWrongCodesThenRight(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	info := f.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{Verify: true})
	if info.Usable || info.Verified || !info.CodeSent || !info.VerificationRequired || info.ExpiresAt.IsZero() {
		t.Fatalf("info = %+v", info)
	}
	code := f.notifier.lastCode(t, discordTarget)
	if got := f.notifier.sent[0]; got.Channel != herald.ChannelDiscord || got.Message.Text == "" {
		t.Fatalf("notification = %+v", got.Message)
	}
	for i := 1; i <= 4; i++ {
		_, err := f.Verify(ctxT(t), info.ID, wrongCode(code), "")
		var wrong *vault.WrongCodeError
		if !errors.As(err, &wrong) || !errors.Is(err, vault.ErrWrongCode) || wrong.Remaining != 5-i {
			t.Fatalf("wrong code %d: err = %v", i, err)
		}
		if _, err := f.Resolve(ctxT(t), info.ID, herald.ChannelDiscord, ""); !errors.Is(err, vault.ErrUnverified) {
			t.Fatalf("Resolve before verification: %v", err)
		}
	}
	got, err := f.Verify(ctxT(t), info.ID, " "+code+"\n", "")
	if err != nil {
		t.Fatalf("right code: %v", err)
	}
	if !got.Verified || !got.Usable || got.CodeSent || got.VerifiedAt.IsZero() || !got.ExpiresAt.IsZero() {
		t.Fatalf("verified info = %+v", got)
	}
	if target, err := f.Resolve(ctxT(t), info.ID, herald.ChannelDiscord, ""); err != nil || target != discordTarget {
		t.Fatalf("Resolve after verification: %v", err)
	}
	// The code was read once: it does not verify again.
	if _, err := f.Verify(ctxT(t), info.ID, code, ""); !errors.Is(err, vault.ErrAlreadyVerified) {
		t.Fatalf("second verification: %v", err)
	}
	if err := f.Resend(ctxT(t), info.ID, ""); !errors.Is(err, vault.ErrAlreadyVerified) {
		t.Fatalf("resend after verification: %v", err)
	}
	// A verified credential does not expire as a pending one would.
	f.clock.Advance(vault.DefaultPendingTTL + time.Hour)
	if _, err := f.Resolve(ctxT(t), info.ID, herald.ChannelDiscord, ""); err != nil {
		t.Fatalf("verified credential expired: %v", err)
	}
	assertNoLeak(t, "record", string(f.raw(t, info.ID)))
}

func TestFiveWrongCodesDeleteTheCredential(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	info := f.mustStore(t, herald.ChannelTelegram, telegramTarget, vault.StoreOptions{Verify: true})
	code := f.notifier.lastCode(t, telegramTarget)
	for i := 1; i <= 4; i++ {
		if _, err := f.Verify(ctxT(t), info.ID, wrongCode(code), ""); !errors.Is(err, vault.ErrWrongCode) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	// A resend does not give the guesser fresh attempts.
	if err := f.Resend(ctxT(t), info.ID, ""); err != nil {
		t.Fatal(err)
	}
	code = f.notifier.lastCode(t, telegramTarget)
	if _, err := f.Verify(ctxT(t), info.ID, wrongCode(code), ""); !errors.Is(err, vault.ErrTooManyAttempts) {
		t.Fatalf("fifth wrong code: %v", err)
	}
	if _, err := f.Verify(ctxT(t), info.ID, code, ""); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("right code after deletion: %v", err)
	}
	if _, err := f.Info(ctxT(t), info.ID, ""); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("Info after deletion: %v", err)
	}
}

// Concurrent wrong guesses, on two replicas, are all counted: no more than
// the allowed number can ever be tried.
func TestConcurrentWrongCodesAreAllCounted(t *testing.T) {
	s := testkit.NewServer(t)
	a, b := newVault(t, s, nil), newVault(t, s, nil)
	info := a.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{Verify: true})
	code := a.notifier.lastCode(t, discordTarget)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = map[string]int{}
	)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := a
			if i%2 == 1 {
				v = b
			}
			_, err := v.Verify(ctxT(t), info.ID, wrongCode(code), "")
			kind := "other: " + fmt.Sprint(err)
			switch {
			case errors.Is(err, vault.ErrWrongCode):
				kind = "wrong"
			case errors.Is(err, vault.ErrTooManyAttempts):
				kind = "deleted"
			case errors.Is(err, vault.ErrNotFound):
				kind = "gone"
			}
			mu.Lock()
			results[kind]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if results["wrong"] != 4 || results["deleted"] != 1 || results["gone"] != 3 {
		t.Fatalf("results = %v, want 4 wrong, 1 deleted, 3 gone", results)
	}
}

func TestCodeExpiresAndResendSendsANewOne(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	info := f.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{Verify: true})
	old := f.notifier.lastCode(t, discordTarget)
	f.clock.Advance(vault.DefaultCodeTTL + time.Second)
	if _, err := f.Verify(ctxT(t), info.ID, old, ""); !errors.Is(err, vault.ErrCodeExpired) {
		t.Fatalf("expired code: %v", err)
	}
	if err := f.Resend(ctxT(t), info.ID, ""); err != nil {
		t.Fatal(err)
	}
	if f.notifier.count() != 2 {
		t.Fatalf("%d notifications, want 2", f.notifier.count())
	}
	code := f.notifier.lastCode(t, discordTarget)
	if code != old {
		// The old code no longer works (unless the new one happens to be equal).
		if _, err := f.Verify(ctxT(t), info.ID, old, ""); !errors.Is(err, vault.ErrWrongCode) {
			t.Fatalf("old code after resend: %v", err)
		}
	}
	if _, err := f.Verify(ctxT(t), info.ID, code, ""); err != nil {
		t.Fatalf("new code: %v", err)
	}
}

func TestUnverifiedCredentialExpires(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	info := f.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{Verify: true})
	f.clock.Advance(vault.DefaultPendingTTL + time.Second)
	if _, err := f.Info(ctxT(t), info.ID, ""); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("Info of an expired registration: %v", err)
	}
	// It was deleted on the way.
	if _, err := f.creds.Get(ctxT(t), "c."+info.ID); err == nil {
		t.Fatal("the expired registration is still stored")
	}
}

func TestRequireVerification(t *testing.T) {
	s := testkit.NewServer(t)
	f := newVault(t, s, func(c *vault.Config) { c.RequireVerification = true })
	info := f.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{})
	if info.Usable || !info.CodeSent || f.notifier.count() != 1 {
		t.Fatalf("info = %+v, %d notifications", info, f.notifier.count())
	}
	if err := f.Check(ctxT(t), info.ID, herald.ChannelDiscord, ""); !errors.Is(err, vault.ErrUnverified) {
		t.Fatalf("Check: %v", err)
	}
	// A credential stored without verification elsewhere becomes unusable
	// where verification is required, and can be verified after a resend.
	open := newVault(t, s, nil)
	plain := open.mustStore(t, herald.ChannelTelegram, telegramTarget, vault.StoreOptions{})
	if err := open.Check(ctxT(t), plain.ID, herald.ChannelTelegram, ""); err != nil {
		t.Fatalf("Check without verification required: %v", err)
	}
	if err := f.Check(ctxT(t), plain.ID, herald.ChannelTelegram, ""); !errors.Is(err, vault.ErrUnverified) {
		t.Fatalf("Check with verification required: %v", err)
	}
	if _, err := f.Verify(ctxT(t), plain.ID, "123456", ""); !errors.Is(err, vault.ErrNoCode) {
		t.Fatalf("Verify before any code: %v", err)
	}
	if err := f.Resend(ctxT(t), plain.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Verify(ctxT(t), plain.ID, f.notifier.lastCode(t, telegramTarget), ""); err != nil {
		t.Fatal(err)
	}
	if err := f.Check(ctxT(t), plain.ID, herald.ChannelTelegram, ""); err != nil {
		t.Fatalf("Check after verification: %v", err)
	}
}

// A code that cannot be sent leaves no registration behind.
func TestStoreWithoutDeliveredCodeStoresNothing(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	f.notifier.fail.Store(true)
	if _, err := f.Store(ctxT(t), herald.ChannelDiscord, discordTarget, vault.StoreOptions{Verify: true}); !errors.Is(err, vault.ErrUnavailable) {
		t.Fatalf("Store: %v", err)
	}
	if keys, err := f.creds.Keys(ctxT(t)); err == nil {
		t.Fatalf("records left: %v", keys)
	}
}

// TestPendingRegistrationCarriesATTL: a registration nobody verifies is
// removed by the store itself after PendingTTL (the record carries a TTL),
// even if nobody ever reads it again; a verified one carries none.
func TestPendingRegistrationCarriesATTL(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	info := f.mustStore(t, herald.ChannelDiscord, discordTarget, vault.StoreOptions{Verify: true})
	ttl := func() string {
		t.Helper()
		st, err := f.js.Stream(ctxT(t), "KV_"+vault.CredentialsBucket)
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.GetLastMsgForSubject(ctxT(t), "$KV."+vault.CredentialsBucket+".c."+info.ID)
		if err != nil {
			t.Fatal(err)
		}
		return m.Header.Get("Nats-TTL")
	}
	if got := ttl(); got == "" {
		t.Fatal("a pending registration carries no TTL")
	}
	if _, err := f.Verify(ctxT(t), info.ID, f.notifier.lastCode(t, discordTarget), ""); err != nil {
		t.Fatal(err)
	}
	if got := ttl(); got != "" {
		t.Fatalf("a verified credential carries TTL %q", got)
	}
}
