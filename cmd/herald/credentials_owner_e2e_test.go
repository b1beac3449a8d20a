package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
	"github.com/nats-io/nats.go"
)

// otherTenantSecret is a second accepted API secret: another tenant.
const otherTenantSecret = "other-tenant-secret-0123456789"

// otherCall is apiCall with the other tenant's secret.
func otherCall(t testing.TB, app *testApp, method, path, body string, secrets ...string) (int, map[string]any) {
	t.Helper()
	return jsonCall(t, method, app.URL+path, "X-API-Secret", otherTenantSecret, body, append(secrets, otherTenantSecret)...)
}

// Through the real wiring: a credential stored by one API secret is, to
// another, a credential that does not exist (404 to read or delete it,
// unknown_credential for a job, nothing delivered); a job that carries the
// other tenant's owner id and names it, published straight to NATS, is
// dead-lettered by the worker; the owner's jobs, and a NATS job without an
// owner, are delivered.
func TestServeCredentialBelongsToItsAPISecret(t *testing.T) {
	discord := fake.NewDiscord(t)
	app := newTestApp(t, map[string]string{"HERALD_INGEST_API_SECRETS": otherTenantSecret, "HERALD_ADMIN_SECRET": testAdminSecret})
	mine := discord.WebhookURL("5001", "owner-token_5001")
	theirs := discord.WebhookURL("5002", "other-token_5002")
	secrets := []string{mine, theirs, "owner-token_5001", "other-token_5002", testkit.Key, testSecret, otherTenantSecret}
	t.Cleanup(func() { testkit.AssertNoSecrets(t, "log", app.Logs.String(), secrets...) })

	code, out := apiCall(t, app, "POST", "/v1/credentials", fmt.Sprintf(`{"channel":"discord","webhook":%q}`, mine), secrets...)
	if code != http.StatusCreated {
		t.Fatalf("store: %d %v", code, out)
	}
	id, _ := out["id"].(string)

	// The other tenant: as if it did not exist.
	if code, out := otherCall(t, app, "GET", "/v1/credentials/"+id, "", secrets...); code != http.StatusNotFound || apiErrCode(out) != "not_found" {
		t.Fatalf("the other tenant's read: %d %v", code, out)
	}
	if code, out := otherCall(t, app, "DELETE", "/v1/credentials/"+id, "", secrets...); code != http.StatusNotFound {
		t.Fatalf("the other tenant's delete: %d %v", code, out)
	}
	if code, out := otherCall(t, app, "POST", "/v1/notifications", notificationByID("discord", id, "stolen"), secrets...); code != http.StatusUnprocessableEntity || apiErrCode(out) != "unknown_credential" {
		t.Fatalf("the other tenant's job: %d %v", code, out)
	}

	// The other tenant's own job, seen on NATS as it travels: it carries
	// the tenant's owner id, never its secret.
	nc, js := testkit.Connect(t, app.NATSURL())
	seen := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(herald.JobSubject(herald.ChannelDiscord)+".>", seen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	_, out = otherCall(t, app, "POST", "/v1/credentials", fmt.Sprintf(`{"channel":"discord","webhook":%q}`, theirs), secrets...)
	theirID, _ := out["id"].(string)
	if code, out := otherCall(t, app, "POST", "/v1/notifications", notificationByID("discord", theirID, "their own"), secrets...); code != http.StatusAccepted {
		t.Fatalf("the other tenant's job with its own credential: %d %v", code, out)
	}
	var theirJob herald.Job
	select {
	case m := <-seen:
		if theirJob, err = herald.DecodeJob(m.Data); err != nil {
			t.Fatal(err)
		}
		testkit.AssertNoSecrets(t, "job on NATS", string(m.Data), secrets...)
	case <-time.After(10 * time.Second):
		t.Fatal("the other tenant's job was not seen on NATS")
	}
	if theirJob.Owner == "" || theirJob.CredentialID != theirID {
		t.Fatalf("the other tenant's job: owner %q, credential %q", theirJob.Owner, theirJob.CredentialID)
	}

	// The same job naming the owner's credential, published straight to
	// NATS: the worker refuses it.
	forged := theirJob
	forged.ID, forged.CredentialID, forged.Message.Text = "", id, "forged"
	res, err := publisher.New(js).Publish(context.Background(), &forged)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	testkit.WaitFor(t, 15*time.Second, "the forged job dead", func() bool {
		st = getStatus(t, app.URL, res.ID)
		return st["state"] == "dead"
	})
	if reason, _ := st["last_error"].(string); !strings.Contains(reason, "no such credential") {
		t.Errorf("last_error %q", reason)
	}

	// The owner's job, and a NATS job without an owner, are delivered.
	if code, out := apiCall(t, app, "POST", "/v1/notifications", notificationByID("discord", id, "mine"), secrets...); code != http.StatusAccepted {
		t.Fatalf("the owner's job: %d %v", code, out)
	}
	if _, err := publisher.New(js).Publish(context.Background(), &herald.Job{
		Channel: herald.ChannelDiscord, CredentialID: id, Message: herald.Message{Text: "from NATS"},
	}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 15*time.Second, "three deliveries", func() bool { return discord.Count() >= 3 })
	texts := map[string]string{}
	for _, r := range discord.Requests() {
		embeds, _ := r.Body["embeds"].([]any)
		if len(embeds) > 0 {
			text, _ := embeds[0].(map[string]any)["description"].(string)
			texts[text] = r.WebhookID
		}
	}
	if texts["mine"] != "5001" || texts["from NATS"] != "5001" || texts["their own"] != "5002" || len(texts) != 3 {
		t.Fatalf("delivered %v", texts)
	}
	if code, _ := apiCall(t, app, "DELETE", "/v1/credentials/"+id, "", secrets...); code != http.StatusNoContent {
		t.Fatalf("the owner's delete: %d", code)
	}
}
