package consumer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/vault"
)

// vaultKey is the vault key of the tests.
const vaultKey = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// newTestVault builds a real vault on the env's JetStream.
func (e *testEnv) newTestVault() *vault.Vault {
	e.t.Helper()
	creds, secrets, err := vault.EnsureBuckets(testkit.Context(e.t, 5*time.Second), e.js, vault.BucketConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	accept := vault.TargetChecker(checkerFunc(func(herald.Target) error { return nil }))
	v, err := vault.New(vault.Config{Keys: []string{vaultKey}}, vault.Deps{
		Credentials: creds, Secrets: secrets,
		Checkers: map[herald.Channel]vault.TargetChecker{herald.ChannelDiscord: accept, herald.ChannelTelegram: accept},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

type checkerFunc func(herald.Target) error

func (f checkerFunc) CheckTarget(t herald.Target) error { return f(t) }

// A job naming a vault credential is sent to the stored destination; one
// naming a deleted credential, or one of another channel, can never be
// delivered (cause credentials).
func TestCredentialIDJobs(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	v := e.newTestVault()
	webhook := testWebhookHost + webhookID + "/" + webhookToken
	stored, err := v.Store(context.Background(), herald.ChannelDiscord, herald.Target{WebhookURL: webhook}, vault.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := v.Store(context.Background(), herald.ChannelDiscord, herald.Target{WebhookURL: webhook + "x"}, vault.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Delete(context.Background(), gone.ID, ""); err != nil {
		t.Fatal(err)
	}
	tg, err := v.Store(context.Background(), herald.ChannelTelegram, herald.Target{BotToken: botToken, ChatID: chatID}, vault.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}

	rec := newRecorder(nil)
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec, herald.ChannelTelegram: rec})
	deps.Credentials = v
	e.startPool(testConfig(), deps)

	byID := func(id string) *herald.Job {
		return &herald.Job{Channel: herald.ChannelDiscord, CredentialID: id, Message: herald.Message{Text: "by id " + id}}
	}
	ok := e.publish(byID(stored.ID))
	deleted := e.publish(byID(gone.ID))
	mismatch := e.publish(byID(tg.ID))

	if st := e.waitFinal(ok); st.State != herald.StateDelivered {
		t.Fatalf("job by credential id: %+v", st)
	}
	calls := rec.callsFor(ok)
	if len(calls) != 1 || calls[0].n.Target.WebhookURL != webhook {
		t.Fatalf("sent %d times, to the stored webhook: %v", len(calls), len(calls) == 1 && calls[0].n.Target.WebhookURL == webhook)
	}
	for name, id := range map[string]string{"deleted": deleted, "other channel": mismatch} {
		st := e.waitFinal(id)
		if st.State != herald.StateFailed || st.Attempts != 1 {
			t.Fatalf("%s credential: %+v", name, st)
		}
		if len(rec.callsFor(id)) != 0 {
			t.Fatalf("%s credential: something was sent", name)
		}
		assertNoSecrets(t, st.LastError)
	}
	if st, _ := e.status.last(deleted); !strings.Contains(st.LastError, "no such credential") {
		t.Errorf("deleted: last error %q", st.LastError)
	}
	if !strings.Contains(e.logs.String(), `"cause":"credentials"`) {
		t.Error("no dead-letter cause credentials in the log")
	}
}

// A worker without a vault keeps such jobs waiting rather than failing them.
func TestCredentialIDWithoutVaultIsRetried(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rec := newRecorder(nil)
	e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec}))
	id := e.publish(&herald.Job{Channel: herald.ChannelDiscord, CredentialID: "some-credential", Message: herald.Message{Text: "x"}})
	e.waitFor("a retry", func() bool {
		st, ok := e.status.last(id)
		return ok && st.State == herald.StateDelivering && st.Attempts >= 1
	})
	if rec.count() != 0 {
		t.Fatal("something was sent")
	}
}

// When the vault's store cannot be read, the job is retried, not failed.
func TestCredentialIDStoreOutageIsRetried(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	v := e.newTestVault()
	stored, err := v.Store(context.Background(), herald.ChannelDiscord, herald.Target{WebhookURL: testWebhookHost + webhookID + "/" + webhookToken}, vault.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteKeyValue(context.Background(), vault.CredentialsBucket); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(nil)
	deps := e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: rec})
	deps.Credentials = v
	e.startPool(testConfig(), deps)
	id := e.publish(&herald.Job{Channel: herald.ChannelDiscord, CredentialID: stored.ID, Message: herald.Message{Text: "x"}})
	e.waitFor("a retry", func() bool {
		st, ok := e.status.last(id)
		return ok && st.State == herald.StateDelivering && st.Attempts >= 1
	})
	st, _ := e.status.last(id)
	if !strings.Contains(st.LastError, "unavailable") || rec.count() != 0 {
		t.Fatalf("status %+v, %d sends", st, rec.count())
	}
}
