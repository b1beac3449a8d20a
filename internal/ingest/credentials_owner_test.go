package ingest

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/vault"
)

// secondAPISecret is the env's other API secret: another tenant.
const secondAPISecret = "second-secret-abcdefgh"

// vaultAPIAs is vaultAPI with the given API secret.
func (e *env) vaultAPIAs(apiSecret, method, path, body string) (int, map[string]any) {
	e.t.Helper()
	if apiSecret == testAPISecret {
		return e.vaultAPI(method, path, body)
	}
	h := map[string]string{"X-API-Secret": apiSecret}
	if body != "" {
		h["Content-Type"] = "application/json"
	}
	rec := e.do(request{method: method, path: path, body: body, header: h})
	var out map[string]any
	if rec.Body.Len() > 0 {
		decodeJSON(e.t, rec.Body, &out)
	}
	return rec.Code, out
}

// A credential stored through the API belongs to the API secret that stored
// it: another secret gets the answers of a credential that does not exist
// (404 on the routes, unknown_credential for a job, nothing published), and
// cannot read, verify, resend, delete or send with it. The owner still can.
func TestCredentialBelongsToItsAPISecret(t *testing.T) {
	e, sent := newVaultEnv(t, nil)
	code, out := e.vaultAPI("POST", "/v1/credentials", fmt.Sprintf(`{"channel":"discord","webhook":%q,"verify":true}`, testWebhook))
	if code != http.StatusCreated {
		t.Fatalf("store: %d %v", code, out)
	}
	id, _ := out["id"].(string)
	right := sent.last(t)
	missing := herald.NewID()

	// Each request of the other secret is answered exactly as for an id
	// that was never stored.
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/credentials/%s", ""},
		{"POST", "/v1/credentials/%s/verify", `{"code":"` + otherCode(right) + `"}`},
		{"POST", "/v1/credentials/%s/verify", `{"code":"` + right + `"}`},
		{"POST", "/v1/credentials/%s/verify/resend", ""},
		{"DELETE", "/v1/credentials/%s", ""},
	} {
		gotCode, gotOut := e.vaultAPIAs(secondAPISecret, r.method, fmt.Sprintf(r.path, id), r.body)
		wantCode, wantOut := e.vaultAPIAs(secondAPISecret, r.method, fmt.Sprintf(r.path, missing), r.body)
		if gotCode != http.StatusNotFound || gotCode != wantCode || errCode(gotOut) != errCode(wantOut) {
			t.Errorf("another secret's %s %s: %d %v; for a missing id: %d %v", r.method, r.path, gotCode, gotOut, wantCode, wantOut)
		}
	}
	if n := len(sent.sent); n != 1 {
		t.Errorf("%d codes sent to the destination, want 1: another secret's resend sent one", n)
	}

	// The owner verifies with the code (the other secret's wrong code did
	// not count, its right one did not verify) and sends.
	if code, out := e.vaultAPI("GET", "/v1/credentials/"+id, ""); code != 200 || out["verified"] != false || out["code_sent"] != true {
		t.Fatalf("the owner's read after the other secret's tries: %d %v", code, out)
	}
	if code, out := e.vaultAPI("POST", "/v1/credentials/"+id+"/verify", `{"code":"`+right+`"}`); code != 200 || out["verified"] != true {
		t.Fatalf("the owner's verify: %d %v", code, out)
	}

	// A job of the other secret naming it: refused as for a missing id,
	// before anything is published, whatever its channel.
	before := e.streamMsgs()
	for _, ch := range []string{"discord", "telegram"} {
		gotCode, gotOut := e.vaultAPIAs(secondAPISecret, "POST", "/v1/notifications", jobByID(ch, id))
		wantCode, wantOut := e.vaultAPIAs(secondAPISecret, "POST", "/v1/notifications", jobByID(ch, missing))
		if gotCode != http.StatusUnprocessableEntity || errCode(gotOut) != "unknown_credential" || gotCode != wantCode || errCode(gotOut) != errCode(wantOut) {
			t.Errorf("another secret's %s job: %d %v; for a missing id: %d %v", ch, gotCode, gotOut, wantCode, wantOut)
		}
	}
	if e.streamMsgs() != before {
		t.Fatal("another secret's job naming the credential was stored")
	}

	// The owner still reads, uses and deletes it. Its job carries its
	// owner id, for the worker to check again.
	if code, out := e.vaultAPI("POST", "/v1/notifications", jobByID("discord", id)); code != http.StatusAccepted {
		t.Fatalf("the owner's job: %d %v", code, out)
	}
	if job, _ := e.lastJob(herald.ChannelDiscord); job.Owner == "" || job.Owner != e.srv.secrets[0].credentialOwner || job.Owner == e.srv.secrets[1].credentialOwner {
		t.Fatalf("the job's owner %q is not its API secret's", job.Owner)
	}
	if code, _ := e.vaultAPI("DELETE", "/v1/credentials/"+id, ""); code != http.StatusNoContent {
		t.Fatalf("the owner's delete: %d", code)
	}
}

// A credential that belongs to nobody (stored through the registration
// page, or before credentials recorded their owner) is a bearer credential:
// any API secret holding its id reads, uses and deletes it.
func TestUnownedCredentialWorksForAnyHolder(t *testing.T) {
	e, _ := newVaultEnv(t, nil)
	ctx := testkit.Context(t, 10*time.Second)
	info, err := e.srv.vault.Store(ctx, herald.ChannelDiscord, herald.Target{WebhookURL: testWebhook}, vault.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{testAPISecret, secondAPISecret} {
		if code, out := e.vaultAPIAs(sec, "GET", "/v1/credentials/"+info.ID, ""); code != 200 || out["id"] != info.ID {
			t.Fatalf("read: %d %v", code, out)
		}
		if code, out := e.vaultAPIAs(sec, "POST", "/v1/notifications", jobByID("discord", info.ID)); code != http.StatusAccepted {
			t.Fatalf("job: %d %v", code, out)
		}
		if job, _ := e.lastJob(herald.ChannelDiscord); job.CredentialID != info.ID {
			t.Fatalf("stored job names %q", job.CredentialID)
		}
	}
	if code, _ := e.vaultAPIAs(secondAPISecret, "DELETE", "/v1/credentials/"+info.ID, ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := e.vaultAPI("GET", "/v1/credentials/"+info.ID, ""); code != http.StatusNotFound {
		t.Fatalf("read after delete: %d", code)
	}
}

func otherCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}
