package ingest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/idempotency"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
	"github.com/nats-io/nats.go/jetstream"
)

// keyed posts body to /v1/notifications with Idempotency-Key key and the
// given API secret; it returns the status and the 202 answer.
func (e *env) keyed(secret, key, body string) (int, Accepted) {
	e.t.Helper()
	res := e.api("POST", "/v1/notifications", body, "Idempotency-Key", key, "X-API-Secret", secret)
	var a Accepted
	if res.StatusCode == http.StatusAccepted {
		decodeJSON(e.t, res.Body, &a)
	}
	return res.StatusCode, a
}

// shortDuplicateWindow makes the jobs stream forget Nats-Msg-Ids after d.
func (e *env) shortDuplicateWindow(d time.Duration) {
	e.t.Helper()
	if _, err := queue.EnsureJobsStream(testkit.Context(e.t, 10*time.Second), e.js, queue.StreamConfig{DuplicateWindow: d}); err != nil {
		e.t.Fatal(err)
	}
}

// lastSeq is the jobs stream's last sequence: it moves with every job stored.
func (e *env) lastSeq() uint64 {
	e.t.Helper()
	ctx := testkit.Context(e.t, 5*time.Second)
	st, err := e.js.Stream(ctx, herald.JobsStream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.LastSeq
}

// A key reused after the stream's duplicate window, inside the idempotency
// window, stores nothing and answers the first job's id, duplicate. (It
// used to store the job again under the same id.)
func TestIdempotencyOutlivesDuplicateWindow(t *testing.T) {
	e := newTestEnv(t)
	e.shortDuplicateWindow(200 * time.Millisecond)
	body := e.apiBody("discord")
	code, first := e.keyed(testAPISecret, "order-1", body)
	if code != 202 || first.Duplicate {
		t.Fatalf("first: %d %+v", code, first)
	}
	seq := e.lastSeq()
	time.Sleep(time.Second) // well past the duplicate window
	code, again := e.keyed(testAPISecret, "order-1", body)
	if code != 202 || again.ID != first.ID || !again.Duplicate {
		t.Fatalf("reuse after the duplicate window: %d %+v, want the first id %s, duplicate", code, again, first.ID)
	}
	if s := e.lastSeq(); s != seq {
		t.Fatalf("the reuse stored a job (stream sequence %d, was %d)", s, seq)
	}
	// Streaky's endpoint keeps keys the same way.
	sbody := e.discordBody()
	sfirst := e.streakyKeyed(testAPISecret, "streak-1", sbody)
	seq = e.lastSeq()
	time.Sleep(time.Second)
	sagain := e.streakyKeyed(testAPISecret, "streak-1", sbody)
	if sagain.ID != sfirst.ID || !sagain.Duplicate || sfirst.Duplicate {
		t.Fatalf("Streaky reuse: first %+v, again %+v, want the first id, duplicate", sfirst, sagain)
	}
	if s := e.lastSeq(); s != seq {
		t.Fatalf("the Streaky reuse stored a job (stream sequence %d, was %d)", s, seq)
	}
}

// streakyKeyed posts a Streaky request with an Idempotency-Key; with no
// wait it is answered queued (202, or 200 with FailureStatusOK).
func (e *env) streakyKeyed(secret, key, body string) streakyReply {
	e.t.Helper()
	rec := e.do(request{method: "POST", path: "/send-notification", body: body, header: map[string]string{
		"Content-Type": "application/json", "X-API-Secret": secret, "Idempotency-Key": key,
	}})
	var r streakyReply
	decodeJSON(e.t, rec.Body, &r)
	if rec.Code != e.srv.streakyStatus(streakyQueued) || !r.Success || !r.Queued {
		e.t.Fatalf("Streaky with a key: %d %+v, want %d queued", rec.Code, r, e.srv.streakyStatus(streakyQueued))
	}
	return r
}

// Past the idempotency window the key is forgotten: a request with it is
// a new job with a new id, even inside the stream's duplicate window.
func TestIdempotencyWindowEnds(t *testing.T) {
	e := newTestEnv(t, withIdempotencyWindow(time.Second))
	body := e.apiBody("discord")
	_, first := e.keyed(testAPISecret, "order-2", body)
	sec := &e.srv.secrets[0]
	testkit.WaitFor(t, 10*time.Second, "the key to expire", func() bool {
		_, err := e.idemKV.Get(context.Background(), herald.IDFromKey(sec.scope, "order-2"))
		return errors.Is(err, jetstream.ErrKeyNotFound)
	})
	code, second := e.keyed(testAPISecret, "order-2", body)
	if code != 202 || second.Duplicate || second.ID == first.ID {
		t.Fatalf("after the window: %d %+v, want a new job with a new id (first %s)", code, second, first.ID)
	}
	if n := e.streamMsgs(); n != 2 {
		t.Fatalf("stream holds %d jobs, want 2", n)
	}
	// The new job's key holds again.
	if _, third := e.keyed(testAPISecret, "order-2", body); third.ID != second.ID || !third.Duplicate {
		t.Fatalf("reuse of the new key: %+v, want %s duplicate", third, second.ID)
	}
}

// Concurrent requests with one key: one job, one id, exactly one of them
// not a duplicate.
func TestIdempotencyConcurrentReuse(t *testing.T) {
	e := newTestEnv(t)
	ts := httptest.NewServer(e.h)
	defer ts.Close()
	body := e.apiBody("discord")
	const n = 16
	answers := make(chan Accepted, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", ts.URL+"/v1/notifications", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-API-Secret", testAPISecret)
			req.Header.Set("Idempotency-Key", "same-key")
			<-start
			res, err := ts.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			var a Accepted
			decodeJSON(t, res.Body, &a)
			if res.StatusCode != 202 {
				t.Errorf("status %d", res.StatusCode)
			}
			answers <- a
		})
	}
	close(start)
	wg.Wait()
	close(answers)
	ids, fresh := map[string]bool{}, 0
	for a := range answers {
		ids[a.ID] = true
		if !a.Duplicate {
			fresh++
		}
	}
	if len(ids) != 1 || fresh != 1 {
		t.Fatalf("%d ids, %d answers not duplicate; want 1 and 1", len(ids), fresh)
	}
	if m := e.streamMsgs(); m != 1 {
		t.Fatalf("stream holds %d jobs, want 1", m)
	}
}

// Two API secrets' equal keys are two jobs, each readable by its own
// secret only; each key holds for its own secret.
func TestIdempotencyPerSecret(t *testing.T) {
	e := newTestEnv(t)
	body := e.apiBody("discord")
	_, a := e.keyed(testAPISecret, "shared-name", body)
	_, b := e.keyed("second-secret-abcdefgh", "shared-name", body)
	if a.ID == b.ID || a.Duplicate || b.Duplicate {
		t.Fatalf("two secrets' equal keys: %+v and %+v, want two jobs", a, b)
	}
	if res := e.api("GET", "/v1/notifications/"+b.ID, "", "X-API-Secret", testAPISecret); res.StatusCode != 404 {
		t.Fatalf("the other secret's job reads %d, want 404", res.StatusCode)
	}
	_, a2 := e.keyed(testAPISecret, "shared-name", body)
	_, b2 := e.keyed("second-secret-abcdefgh", "shared-name", body)
	if a2.ID != a.ID || b2.ID != b.ID || !a2.Duplicate || !b2.Duplicate {
		t.Fatalf("reuses: %+v %+v", a2, b2)
	}
	if n := e.streamMsgs(); n != 2 {
		t.Fatalf("stream holds %d jobs, want 2", n)
	}
}

// A key reused with another request is refused, and stores nothing; the
// same request written differently (spacing, field order) is a retry. A
// request refused before it was stored does not take its key.
func TestIdempotencyKeyWithAnotherRequest(t *testing.T) {
	e := newTestEnv(t)
	body := e.apiBody("discord")
	if res := e.api("POST", "/v1/notifications", strings.Replace(body, e.sealedIn(body), "bm90IHNlYWxlZA==", 1), "Idempotency-Key", "k-3"); res.StatusCode != 422 {
		t.Fatalf("a request whose credential does not open: %d, want 422", res.StatusCode)
	}
	_, first := e.keyed(testAPISecret, "k-3", body)
	if first.Duplicate || first.ID == "" {
		t.Fatalf("the corrected request: %+v, want a new job", first)
	}
	spaced := strings.ReplaceAll(body, ",", " ,\n ")
	if _, again := e.keyed(testAPISecret, "k-3", spaced); again.ID != first.ID || !again.Duplicate {
		t.Fatalf("the same request respaced: %+v, want a duplicate of %s", again, first.ID)
	}
	other := strings.Replace(body, "v1.2.3 is live", "v1.2.4 is live", 1)
	msg := apiErr(t, e.api("POST", "/v1/notifications", other, "Idempotency-Key", "k-3"), 422, "idempotency_key_reused")
	if !strings.Contains(msg, "Idempotency-Key") {
		t.Errorf("message %q", msg)
	}
	if n := e.streamMsgs(); n != 1 {
		t.Fatalf("stream holds %d jobs, want 1", n)
	}
	// On Streaky's endpoint too, and not with the API's request.
	rec := e.do(request{method: "POST", path: "/send-notification", body: e.discordBody(), header: map[string]string{
		"Content-Type": "application/json", "X-API-Secret": testAPISecret, "Idempotency-Key": "k-3",
	}})
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"success":false`) {
		t.Fatalf("Streaky request with the API request's key: %d %s, want 400 success:false", rec.Code, rec.Body)
	}
}

// sealedIn returns the sealed webhook of an apiBody.
func (e *env) sealedIn(body string) string {
	_, rest, _ := strings.Cut(body, `"webhook":"`)
	sealed, _, _ := strings.Cut(rest, `"`)
	return sealed
}

// flakyPublisher fails its first publish, as a NATS outage would.
type flakyPublisher struct {
	Publisher
	mu     sync.Mutex
	failed bool
}

func (p *flakyPublisher) Publish(ctx context.Context, job *herald.Job, opts ...publisher.Option) (publisher.Result, error) {
	p.mu.Lock()
	fail := !p.failed
	p.failed = true
	p.mu.Unlock()
	if fail {
		return publisher.Result{}, publisher.ErrNotStored
	}
	return p.Publisher.Publish(ctx, job, opts...)
}

// A request whose job could not be stored releases its key: the retry
// stores the job. A key left pending (its request died, or lost NATS,
// before it marked the key) is resolved by the next request: the job is
// looked up, and published under the same id if it is nowhere.
func TestIdempotencyAfterFailures(t *testing.T) {
	t.Run("not stored, then retried", func(t *testing.T) {
		flaky := &flakyPublisher{}
		e := newTestEnv(t, func(_ *Config, d *Deps) { flaky.Publisher = d.Publisher; d.Publisher = flaky })
		body := e.apiBody("discord")
		if code, _ := e.keyed(testAPISecret, "k-4", body); code != 503 {
			t.Fatalf("first: %d, want 503", code)
		}
		code, a := e.keyed(testAPISecret, "k-4", body)
		if code != 202 || a.Duplicate || e.streamMsgs() != 1 {
			t.Fatalf("retry: %d %+v, %d jobs; want stored", code, a, e.streamMsgs())
		}
	})
	for _, stored := range []bool{false, true} {
		name := "left pending, job nowhere"
		if stored {
			name = "left pending, job stored"
		}
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			e.shortDuplicateWindow(200 * time.Millisecond)
			body := e.apiBody("discord")
			req, err := decodeStrict([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			sec := &e.srv.secrets[0]
			id := sec.own(herald.NewID())
			ctx := testkit.Context(t, 10*time.Second)
			// A request that claimed the key and died.
			if _, claimed, err := idempotency.New(e.idemKV).Claim(ctx, herald.IDFromKey(sec.scope, "k-5"), id, fingerprint(routeCreate, req)); err != nil || !claimed {
				t.Fatalf("claim: %v %v", claimed, err)
			}
			if stored {
				job := &herald.Job{ID: id, Channel: req.Channel, Credentials: req.Credentials, Message: req.Message}
				if _, err := publisher.New(e.js).Publish(ctx, job); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Second) // past the duplicate window: only the key knows
			}
			code, a := e.keyed(testAPISecret, "k-5", body)
			if code != 202 || a.ID != id || a.Duplicate != stored {
				t.Fatalf("next request: %d %+v, want id %s, duplicate %v", code, a, id, stored)
			}
			if n := e.streamMsgs(); n != 1 {
				t.Fatalf("stream holds %d jobs, want 1", n)
			}
			if _, b := e.keyed(testAPISecret, "k-5", body); b.ID != id || !b.Duplicate {
				t.Fatalf("then: %+v, want %s duplicate", b, id)
			}
		})
	}
}

// A Streaky request retried with its key after its job was delivered is
// answered delivered, and stores nothing.
func TestIdempotencyStreakyRetryOfDelivered(t *testing.T) {
	e := newTestEnv(t, withWait(MaxStreakyWait))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ids, errs, done := e.worker(ctx, herald.Status{State: herald.StateDelivered, Attempts: 1})
	defer func() { cancel(); <-done }()
	body := e.discordBody()
	post := func() (int, string) {
		rec := e.do(request{method: "POST", path: "/send-notification", body: body, header: map[string]string{
			"Content-Type": "application/json", "X-API-Secret": testAPISecret, "Idempotency-Key": "streak-2",
		}})
		return rec.Code, rec.Body.String()
	}
	if code, reply := post(); code != 200 || reply != `{"success":true,"error":null}` {
		t.Fatalf("first: %d %s", code, reply)
	}
	select {
	case <-ids:
	case err := <-errs:
		t.Fatal(err)
	}
	seq := e.lastSeq()
	if code, reply := post(); code != 200 || reply != `{"success":true,"error":null,"duplicate":true}` {
		t.Fatalf("retry: %d %s, want delivered, duplicate", code, reply)
	}
	if s := e.lastSeq(); s != seq {
		t.Fatal("the retry stored a job")
	}
}
