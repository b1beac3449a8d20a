package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/idempotency"
	"github.com/heraldrelay/herald/internal/testkit"
)

// keyedAs posts body to /v1/notifications with Idempotency-Key key and
// API secret secret; it returns the status, the Retry-After header and the
// decoded reply.
func keyedAs(t *testing.T, app *testApp, secret, key, body string) (int, string, map[string]any) {
	t.Helper()
	req := newRequest(http.MethodPost, app.URL+"/v1/notifications", "X-API-Secret", secret, body)
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("reply: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), out
}

// Through the binary's configuration: ingest.idempotency_max_keys bounds
// the bucket, and each of the two API secrets gets half of it. One secret
// sending a fresh key on every request is refused past its half (429
// idempotency_keys_exhausted, Retry-After, nothing stored), while the other
// secret's keyed requests are accepted and the first secret's retries are
// still answered as duplicates. (Before, every key was kept: the third key
// was a 202 like the others.)
func TestServeIdempotencyKeysShared(t *testing.T) {
	const tenant = "other-tenant-api-secret-0123"
	app := newTestApp(t, map[string]string{
		"HERALD_INGEST_API_SECRETS":          tenant,
		"HERALD_INGEST_IDEMPOTENCY_MAX_KEYS": "4",
	})
	discord := fake.NewDiscord(t)
	body := fmt.Sprintf(`{"channel":"discord","credentials":{"webhook":%q},"message":{"text":"keyed"}}`,
		testkit.Seal(t, app.Keys, discord.WebhookURL("123456789012345678", "keys-token")))

	var first map[string]any
	for i := range 2 {
		code, _, a := keyedAs(t, app, testSecret, "fresh-"+strconv.Itoa(i), body)
		if code != 202 {
			t.Fatalf("key %d of the share: %d %v", i, code, a)
		}
		if i == 0 {
			first = a
		}
	}
	seq := jobsLastSeq(t, app)
	code, retry, refused := keyedAs(t, app, testSecret, "fresh-2", body)
	if code != 429 || retry == "" {
		t.Fatalf("a fresh key past the share: %d Retry-After %q %v, want 429 with Retry-After", code, retry, refused)
	}
	if e, _ := refused["error"].(map[string]any); e["code"] != "idempotency_keys_exhausted" {
		t.Fatalf("error %v, want idempotency_keys_exhausted", refused)
	}
	if s := jobsLastSeq(t, app); s != seq {
		t.Fatalf("the refused request stored a job (sequence %d, was %d)", s, seq)
	}
	if code, _, again := keyedAs(t, app, testSecret, "fresh-0", body); code != 202 || again["id"] != first["id"] || again["duplicate"] != true {
		t.Fatalf("retry past the share: %d %v, want %v duplicate", code, again, first["id"])
	}
	for i := range 2 {
		if code, _, a := keyedAs(t, app, tenant, "tenant-"+strconv.Itoa(i), body); code != 202 || a["duplicate"] != false {
			t.Fatalf("the other tenant's key %d: %d %v", i, code, a)
		}
	}
	if m := get(t, app.MetricsURL+"/metrics"); !strings.Contains(m, `herald_idempotency_keys_refused_total{reason="share_spent"} 1`) {
		t.Errorf("metrics do not count the refusal:\n%s", m)
	}
	// The bucket itself holds no more than the setting.
	st, err := app.js.Stream(context.Background(), "KV_"+idempotency.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.MaxMsgs; got != 4 {
		t.Fatalf("bucket MaxMsgs %d, want 4", got)
	}
}
