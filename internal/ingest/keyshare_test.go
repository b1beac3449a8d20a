package ingest

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldrelay/herald/internal/idempotency"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/testkit"
)

const otherSecret = "second-secret-abcdefgh"

// retryAfterSecs returns res's Retry-After in seconds, failing the test
// when it is missing or not a positive number.
func retryAfterSecs(t *testing.T, h http.Header) int {
	t.Helper()
	n, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || n < 1 {
		t.Fatalf("Retry-After %q, want a positive number of seconds", h.Get("Retry-After"))
	}
	return n
}

// One API secret holding its whole share of the kept keys (new keys on
// every request) leaves the other secret its own: the other's keyed
// requests are accepted. Past its share a secret's new key is answered 429
// idempotency_keys_exhausted with Retry-After and nothing is stored, on both
// routes, and never as a 2xx; a retry of a key it holds is still answered
// as a duplicate, and a request without a key is accepted. (Before the
// share, every new key was kept, however many one secret sent.)
func TestIdempotencyKeyShare(t *testing.T) {
	e := newTestEnv(t, withMaxKeys(6, 0), withFailureStatus(FailureStatusOK)) // 3 keys per secret
	body := e.apiBody("discord")
	var held []Accepted
	for i := range 3 {
		code, a := e.keyed(testAPISecret, "a-"+strconv.Itoa(i), body)
		if code != 202 || a.Duplicate {
			t.Fatalf("key %d of the share: %d %+v", i, code, a)
		}
		held = append(held, a)
	}
	jobs := e.streamMsgs()

	// The share is spent: a new key is refused and stores nothing.
	res := e.api("POST", "/v1/notifications", body, "Idempotency-Key", "a-3")
	after := retryAfterSecs(t, res.Header)
	msg := apiErr(t, res, 429, "idempotency_keys_exhausted")
	if !strings.Contains(msg, "Idempotency-Key") {
		t.Errorf("message %q", msg)
	}
	// The share frees as the oldest keys' slot (a 24th of the window) is a
	// window (an hour here) old.
	if after < 3600 || after > 3600+150 {
		t.Errorf("Retry-After %d s, want about the hour's window", after)
	}
	// On Streaky's endpoint too, even where failures are 200s.
	rec := e.do(request{method: "POST", path: "/send-notification", body: e.discordBody(), header: map[string]string{
		"Content-Type": "application/json", "X-API-Secret": testAPISecret, "Idempotency-Key": "a-4",
	}})
	if rec.Code != 429 || !strings.Contains(rec.Body.String(), `"success":false`) {
		t.Fatalf("Streaky request past the share: %d %s, want 429 success:false", rec.Code, rec.Body)
	}
	retryAfterSecs(t, rec.Header())
	if n := e.streamMsgs(); n != jobs {
		t.Fatalf("refused requests stored jobs: %d, want %d", n, jobs)
	}
	for _, k := range []string{"a-3", "a-4"} {
		if _, ok, _ := idempotency.New(e.idemKV).Held(context.Background(), keyName(e, 0, k)); ok {
			t.Fatalf("the refused key %s is kept", k)
		}
	}

	// Retries of held keys are what keys are for: answered as duplicates.
	for i, a := range held {
		code, again := e.keyed(testAPISecret, "a-"+strconv.Itoa(i), body)
		if code != 202 || again.ID != a.ID || !again.Duplicate {
			t.Fatalf("retry of held key %d past the share: %d %+v, want %s duplicate", i, code, again, a.ID)
		}
	}
	// Another request with a held key is still 422, not 429.
	other := strings.Replace(body, "v1.2.3 is live", "v1.2.4 is live", 1)
	apiErr(t, e.api("POST", "/v1/notifications", other, "Idempotency-Key", "a-0"), 422, "idempotency_key_reused")
	// Requests without a key are not counted.
	if res := e.api("POST", "/v1/notifications", body); res.StatusCode != 202 {
		t.Fatalf("a request without a key: %d", res.StatusCode)
	}

	// The other secret keeps its share, on both routes.
	for i := range 2 {
		if code, a := e.keyed(otherSecret, "b-"+strconv.Itoa(i), body); code != 202 || a.Duplicate {
			t.Fatalf("the other secret's key %d: %d %+v", i, code, a)
		}
	}
	sbody := e.discordBody()
	r := e.streakyKeyed(otherSecret, "b-2", sbody)
	if r.Duplicate || r.ID == "" {
		t.Fatalf("the other secret's Streaky key: %+v", r)
	}
	if again := e.streakyKeyed(otherSecret, "b-2", sbody); again.ID != r.ID || !again.Duplicate {
		t.Fatalf("Streaky retry: %+v, want %s duplicate", again, r.ID)
	}
	apiErr(t, e.api("POST", "/v1/notifications", body, "Idempotency-Key", "b-3", "X-API-Secret", otherSecret), 429, "idempotency_keys_exhausted")

	if got := testutil.ToFloat64(e.srv.metrics.KeysRefused.WithLabelValues(metrics.KeysShareSpent)); got != 3 {
		t.Errorf("refused for the share: %v, want 3", got)
	}
	if got := testutil.ToFloat64(e.srv.metrics.JobsRejected.WithLabelValues(routeCreate, "idempotency_keys_exhausted")); got != 2 {
		t.Errorf("jobs rejected idempotency_keys_exhausted on the API: %v, want 2", got)
	}
}

// keyName is the bucket key of secret i's Idempotency-Key key.
func keyName(e *env, i int, key string) string {
	k, _ := idempotencyKey(&http.Request{Header: http.Header{"Idempotency-Key": {key}}}, &e.srv.secrets[i])
	return k.name
}

// A full bucket (here another ingest process, with its own counts, took the
// room) refuses new keys with 503 idempotency_keys_full and Retry-After on
// both routes, storing nothing, while retries of held keys are answered as
// duplicates. (Before the bound, the bucket kept every key.)
func TestIdempotencyBucketFull(t *testing.T) {
	e := newTestEnv(t, withMaxKeys(4, 0))
	other, err := New(e.srv.cfg, Deps{
		Publisher: e.srv.pub, Status: e.status, Outcomes: e.waits, Keys: e.keys, Checkers: e.srv.checkers,
		Ready: e.srv.ready, Metrics: e.srv.metrics, Logger: e.srv.log, Idempotency: e.srv.idem,
	})
	if err != nil {
		t.Fatal(err)
	}
	body := e.apiBody("discord")
	_, first := e.keyed(testAPISecret, "mine-0", body)
	e.keyed(testAPISecret, "mine-1", body)
	// The other process's requests with the same secret fill the bucket.
	e.h, e.srv = other.Handler(), other
	for i := range 2 {
		if code, _ := e.keyed(testAPISecret, "there-"+strconv.Itoa(i), body); code != 202 {
			t.Fatalf("the other process's key %d: %d", i, code)
		}
	}
	jobs := e.streamMsgs()

	res := e.api("POST", "/v1/notifications", body, "Idempotency-Key", "b-0", "X-API-Secret", otherSecret)
	after := retryAfterSecs(t, res.Header)
	apiErr(t, res, 503, "idempotency_keys_full")
	if after < 3000 || after > 3600 {
		t.Errorf("Retry-After %d s, want about the hour's window (the oldest key was just written)", after)
	}
	rec := e.do(request{method: "POST", path: "/send-notification", body: e.discordBody(), header: map[string]string{
		"Content-Type": "application/json", "X-API-Secret": otherSecret, "Idempotency-Key": "b-1",
	}})
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"success":false`) {
		t.Fatalf("Streaky request to a full bucket: %d %s, want 503 success:false", rec.Code, rec.Body)
	}
	retryAfterSecs(t, rec.Header())
	if n := e.streamMsgs(); n != jobs {
		t.Fatalf("refused requests stored jobs: %d, want %d", n, jobs)
	}
	if code, again := e.keyed(testAPISecret, "mine-0", body); code != 202 || again.ID != first.ID || !again.Duplicate {
		t.Fatalf("retry of a held key in a full bucket: %d %+v, want %s duplicate", code, again, first.ID)
	}
	if got := testutil.ToFloat64(e.srv.metrics.KeysRefused.WithLabelValues(metrics.KeysFull)); got != 2 {
		t.Errorf("refused as full: %v, want 2", got)
	}
	// A refused claim does not count against the secret's share: once
	// there is room, its keys are kept again.
	if _, err := idempotency.EnsureBucket(testkit.Context(t, 10*time.Second), e.js, time.Hour, 5, 1); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.keyed(otherSecret, "b-0", body); code != 202 {
		t.Fatalf("after room was made: %d", code)
	}
}

// A secret's count frees slot by slot as its keys are a window old, and a
// key given back is not counted.
func TestKeyCount(t *testing.T) {
	var c keyCount
	const window = 24 * time.Hour
	t0 := time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC) // half way into a slot
	if _, ok, _ := c.take(t0, window, 2); !ok {
		t.Fatal("first key refused")
	}
	slot, ok, _ := c.take(t0.Add(2*time.Hour), window, 2)
	if !ok {
		t.Fatal("second key refused")
	}
	_, ok, wait := c.take(t0.Add(3*time.Hour), window, 2)
	if ok {
		t.Fatal("a key past the share was counted")
	}
	// The first key's slot (00:00-01:00) is a window old at 01:00 the next day.
	if want := window + 30*time.Minute - 3*time.Hour; wait != want {
		t.Fatalf("retry after %s, want %s", wait, want)
	}
	c.giveBack(slot)
	if _, ok, _ := c.take(t0.Add(3*time.Hour), window, 2); !ok {
		t.Fatal("a key given back is still counted")
	}
	if _, ok, _ := c.take(t0.Add(window+29*time.Minute), window, 2); ok {
		t.Fatal("the first key's slot freed before it was a window old")
	}
	if _, ok, _ := c.take(t0.Add(window+30*time.Minute), window, 2); !ok {
		t.Fatal("the first key's slot did not free after a window")
	}
	// Long after, everything is free again.
	for i := range 2 {
		if _, ok, _ := c.take(t0.Add(3*window), window, 2); !ok {
			t.Fatalf("key %d after three windows refused", i)
		}
	}
}
