package vault_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/vault"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const secretValue = "the launch code is 0000-not-really"

func TestSecretIsReadOnce(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	ref, err := f.PutSecret(ctxT(t), secretValue, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.clock.Now().Add(10 * time.Minute); ref.ExpiresAt.Before(want.Add(-time.Minute)) || ref.ExpiresAt.After(want.Add(time.Minute)) {
		t.Errorf("expires at %s, want about %s", ref.ExpiresAt, want)
	}
	// Sealed at rest.
	e, err := f.secrets.Get(ctxT(t), "s."+ref.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Value()), "launch code") {
		t.Fatal("the secret is stored in plaintext")
	}
	got, err := f.TakeSecret(ctxT(t), ref.ID)
	if err != nil || got != secretValue {
		t.Fatalf("first read: %q, %v", got, err)
	}
	if _, err := f.TakeSecret(ctxT(t), ref.ID); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Fatalf("second read: %v, want ErrSecretNotFound", err)
	}
	if n := testutil.ToFloat64(f.metrics.VaultOps.WithLabelValues("secret_take", "not_found")); n != 1 {
		t.Errorf("VaultOps{secret_take,not_found} = %v", n)
	}
	if strings.Contains(f.logs.String(), "launch code") {
		t.Fatal("the secret was logged")
	}
}

func TestExpiredSecretIsNotFound(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), nil)
	ref, err := f.PutSecret(ctxT(t), secretValue, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute + time.Second)
	if _, err := f.TakeSecret(ctxT(t), ref.ID); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Fatalf("read after expiry: %v", err)
	}
	// And the store drops a secret by itself once its TTL is over.
	short, err := f.PutSecret(ctxT(t), secretValue, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 15*time.Second, "the store to drop a secret past its TTL", func() bool {
		_, err := f.secrets.Get(ctxT(t), "s."+short.ID)
		return err != nil
	})
	if _, err := f.TakeSecret(ctxT(t), short.ID); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Fatalf("read after the store expired it: %v", err)
	}
}

// Concurrent reads on two replicas: exactly one gets the value, every time.
func TestConcurrentReadsOneWins(t *testing.T) {
	s := testkit.NewServer(t)
	a, b := newVault(t, s, nil), newVault(t, s, nil)
	for round := range 10 {
		ref, err := a.PutSecret(ctxT(t), secretValue, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg       sync.WaitGroup
			wins     atomic.Int32
			notFound atomic.Int32
			start    = make(chan struct{})
		)
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := a
				if i%2 == 1 {
					v = b
				}
				<-start
				got, err := v.TakeSecret(ctxT(t), ref.ID)
				switch {
				case err == nil && got == secretValue:
					wins.Add(1)
				case errors.Is(err, vault.ErrSecretNotFound):
					notFound.Add(1)
				default:
					t.Errorf("read: %q, %v", got, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || notFound.Load() != 5 {
			t.Fatalf("round %d: %d reads got the value, %d got not found; want 1 and 5", round, wins.Load(), notFound.Load())
		}
	}
}

func TestPutSecretBounds(t *testing.T) {
	f := newVault(t, testkit.NewServer(t), func(c *vault.Config) { c.SecretMaxTTL = 2 * time.Hour })
	for name, tc := range map[string]struct {
		value string
		ttl   time.Duration
	}{
		"empty":          {"", time.Minute},
		"too long":       {strings.Repeat("x", vault.MaxSecretBytes+1), time.Minute},
		"not utf-8":      {"\xff\xfe", time.Minute},
		"ttl too short":  {"v", 500 * time.Millisecond},
		"ttl negative":   {"v", -time.Minute},
		"ttl above max":  {"v", 3 * time.Hour},
		"ttl just above": {"v", 2*time.Hour + time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := f.PutSecret(ctxT(t), tc.value, tc.ttl); !errors.Is(err, vault.ErrInvalidSecret) {
				t.Fatalf("err = %v, want ErrInvalidSecret", err)
			}
		})
	}
	// No TTL: the default, within the maximum.
	ref, err := f.PutSecret(ctxT(t), "v", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(ref.ExpiresAt); d < 50*time.Minute || d > 70*time.Minute {
		t.Fatalf("default TTL gave %s", d)
	}
	if _, err := f.TakeSecret(ctxT(t), "not a valid id"); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Fatalf("invalid id: %v", err)
	}
}
