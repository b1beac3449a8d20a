package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/dlq"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"
	"github.com/heraldrelay/herald/publisher"
)

const (
	secret       = "admin-secret-for-tests-0123"
	otherSecret  = "rotated-admin-secret-4567"
	plainWebhook = "https://discord.com/api/webhooks/123456789012345678/PLAINTEXT-webhook-token"
)

type env struct {
	js     jetstream.JetStream
	srv    *httptest.Server
	jobs   jetstream.Consumer
	writer *dlq.Writer
	pub    *publisher.Publisher
	keys   *crypto.Keyring
	logs   *testkit.LogBuffer
	sealed []string
}

// newEnv runs the kit's relay (a real JetStream server with the jobs
// stream) with the dead-letter stream and the admin API, mounted as the lead
// mounts it: at /admin/ on an outer mux. Its logs must hold none of the
// tests' secrets, nor any sealed credential.
func newEnv(t *testing.T) *env {
	t.Helper()
	r := relay.New(t)
	js := r.JS
	ctx := testkit.Context(t, 30*time.Second)
	if _, err := dlq.EnsureStream(ctx, js, dlq.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	jobs, err := js.CreateOrUpdateConsumer(ctx, herald.JobsStream, jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Secrets: []string{secret, otherSecret}}, dlq.NewStore(js), r.Log)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Prefix, s.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e := &env{js: js, srv: srv, jobs: jobs, writer: dlq.NewWriter(js), pub: r.Pub, keys: r.Keys, logs: r.Logs}
	t.Cleanup(func() { testkit.AssertNoSecrets(t, "log", e.logs.String(), e.secrets()...) })
	return e
}

// secrets are the tests' own secrets and every credential sealed so far,
// none of which a response or log line may contain (nor testkit.Secrets).
func (e *env) secrets() []string {
	return append([]string{plainWebhook, "PLAINTEXT", secret, otherSecret}, e.sealed...)
}

// kill dead-letters a fresh job with id on channel c.
func (e *env) kill(t *testing.T, c herald.Channel, id, reason string) {
	t.Helper()
	e.killAs(t, c, id, reason, consumer.CausePermanent)
}

// killAs is kill with a cause.
func (e *env) killAs(t *testing.T, c herald.Channel, id, reason, cause string) {
	t.Helper()
	ctx := testkit.Context(t, 30*time.Second)
	job := &herald.Job{Version: herald.JobVersion, ID: id, Channel: c, Message: herald.Message{Text: "hello " + id}}
	sealed := testkit.Seal(t, e.keys, plainWebhook)
	e.sealed = append(e.sealed, sealed)
	switch c {
	case herald.ChannelDiscord:
		job.Credentials.Webhook = sealed
	default:
		job.Credentials.BotToken, job.Credentials.ChatID = sealed, sealed
	}
	if _, err := e.pub.Publish(ctx, job); err != nil {
		t.Fatal(err)
	}
	m := e.next(t)
	meta, _ := m.Metadata()
	if err := e.writer.DeadLetter(ctx, m, consumer.DeadLetterInfo{JobID: id, Channel: c, Reason: reason, Cause: cause,
		StatusCode: 404, Attempts: 1, Subject: m.Subject(), Sequence: meta.Sequence.Stream, LastAttempt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_ = m.Ack()
}

func (e *env) next(t *testing.T) jetstream.Msg {
	t.Helper()
	m, err := e.jobs.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("no job: %v", err)
	}
	return m
}

type reply struct {
	code int
	hdr  http.Header
	body string
	json map[string]any
}

func (e *env) do(t *testing.T, method, path, body string, hdr map[string]string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if hdr == nil {
		hdr = map[string]string{"Authorization": "Bearer " + secret}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, hdr: resp.Header, body: string(raw)}
	if resp.StatusCode != http.StatusTeapot {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q, body %q", method, path, ct, raw)
		}
		if err := json.Unmarshal(raw, &r.json); err != nil {
			t.Errorf("%s %s: body is not a JSON object: %q", method, path, raw)
		}
	}
	testkit.AssertNoSecrets(t, method+" "+path+" response", r.body, e.secrets()...)
	return r
}

func errCode(r reply) string {
	e, _ := r.json["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func TestDisabledAnswers404(t *testing.T) {
	s, err := New(Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/admin/dlq", "/admin/dlq/x", "/admin/"} {
		for _, method := range []string{"GET", "POST"} {
			req := httptest.NewRequest(method, path, nil)
			req.Header.Set("Authorization", "Bearer "+secret)
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"code":"not_found"`) {
				t.Errorf("%s %s = %d %s, want 404 JSON", method, path, rec.Code, rec.Body)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	weak := "short-secret"
	_, err := New(Config{Secrets: []string{weak}}, dlq.NewStore(nil), nil)
	if err == nil || strings.Contains(err.Error(), weak) {
		t.Errorf("weak secret: err = %v", err)
	}
	if _, err := New(Config{Secrets: []string{" " + secret}}, dlq.NewStore(nil), nil); err == nil {
		t.Error("secret with spaces accepted")
	}
	if _, err := New(Config{Secrets: []string{secret}}, nil, nil); err == nil {
		t.Error("enabled without a store accepted")
	}
	if !(Config{Secrets: []string{secret}}).Enabled() || (Config{}).Enabled() {
		t.Error("Enabled wrong")
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"none", map[string]string{}, 401},
		{"wrong bearer", map[string]string{"Authorization": "Bearer " + secret + "x"}, 401},
		{"prefix of secret", map[string]string{"Authorization": "Bearer " + secret[:10]}, 401},
		{"basic scheme", map[string]string{"Authorization": "Basic " + secret}, 401},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, 401},
		{"wrong header", map[string]string{"X-Admin-Secret": "nope"}, 401},
		{"bearer", map[string]string{"Authorization": "Bearer " + secret}, 200},
		{"bearer any case", map[string]string{"Authorization": "bearer " + secret}, 200},
		{"x-admin-secret", map[string]string{"X-Admin-Secret": secret}, 200},
		{"rotated secret", map[string]string{"X-Admin-Secret": otherSecret}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "GET", "/admin/dlq", "", tt.hdr)
			if r.code != tt.want {
				t.Fatalf("code %d, want %d: %s", r.code, tt.want, r.body)
			}
			if tt.want == 401 && (errCode(r) != "unauthorized" || r.hdr.Get("WWW-Authenticate") == "") {
				t.Errorf("401 body %s, WWW-Authenticate %q", r.body, r.hdr.Get("WWW-Authenticate"))
			}
		})
	}
	// Unknown admin routes do not reveal themselves without the secret.
	if r := e.do(t, "GET", "/admin/nothing", "", map[string]string{}); r.code != 401 {
		t.Errorf("unknown route without secret = %d", r.code)
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Error("log holds the secret")
	}
}

func TestRoutingErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		method, path string
		want         int
		code, allow  string
	}{
		{"GET", "/admin/nothing", 404, "not_found", ""},
		{"GET", "/admin/", 404, "not_found", ""},
		{"DELETE", "/admin/dlq", 405, "method_not_allowed", "GET"},
		{"POST", "/admin/dlq", 405, "method_not_allowed", "GET"},
		{"PUT", "/admin/dlq/replay", 405, "method_not_allowed", "GET, POST"},
		{"POST", "/admin/dlq/some-job", 405, "method_not_allowed", "GET"},
		{"GET", "/admin/dlq/a/b", 404, "not_found", ""},
	}
	for _, tt := range tests {
		r := e.do(t, tt.method, tt.path, "", nil)
		if r.code != tt.want || errCode(r) != tt.code || r.hdr.Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d %s (Allow %q), want %d %s", tt.method, tt.path, r.code, r.body, r.hdr.Get("Allow"), tt.want, tt.code)
		}
	}
}

func TestListAndShow(t *testing.T) {
	e := newEnv(t)
	e.kill(t, herald.ChannelDiscord, "d1", "Discord API error: 404 Not Found - Unknown Webhook (code 10015)")
	e.kill(t, herald.ChannelTelegram, "t1", "Telegram API error: 403 Forbidden - bot was blocked by the user")
	e.kill(t, herald.ChannelDiscord, "d2", "Discord API error: 401 Unauthorized")

	r := e.do(t, "GET", "/admin/dlq", "", nil)
	if r.code != 200 || r.json["count"] != float64(3) || r.json["truncated"] != false || r.json["limit"] != float64(DefaultListLimit) {
		t.Fatalf("list = %d %s", r.code, r.body)
	}
	letters := r.json["letters"].([]any)
	first := letters[0].(map[string]any)
	if first["job_id"] != "d1" || first["channel"] != "discord" || first["cause"] != "permanent" || first["status_code"] != float64(404) {
		t.Errorf("first letter %v", first)
	}
	creds := first["job"].(map[string]any)["credentials"].(map[string]any)
	if !strings.HasPrefix(creds["webhook"].(string), "sealed (") {
		t.Errorf("credentials shown as %v", creds)
	}

	for _, tt := range []struct {
		query string
		want  []string
		trunc bool
	}{
		{"?channel=discord", []string{"d1", "d2"}, false},
		{"?reason=BLOCKED", []string{"t1"}, false},
		{"?limit=2", []string{"d1", "t1"}, true},
		{"?since=1h", []string{"d1", "t1", "d2"}, false},
		{"?since=2099-01-01", nil, false},
		{"?id=d2&id=seq:1", []string{"d1", "d2"}, false},
	} {
		r := e.do(t, "GET", "/admin/dlq"+tt.query, "", nil)
		var got []string
		for _, l := range r.json["letters"].([]any) {
			got = append(got, l.(map[string]any)["job_id"].(string))
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") || r.json["truncated"] != tt.trunc {
			t.Errorf("list%s = %v truncated %v, want %v %v", tt.query, got, r.json["truncated"], tt.want, tt.trunc)
		}
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?limit=10001", "?since=yesterday", "?channel=slack", "?id=bad%20id"} {
		if r := e.do(t, "GET", "/admin/dlq"+q, "", nil); r.code != 400 || errCode(r) != "invalid_filter" {
			t.Errorf("list%s = %d %s, want 400 invalid_filter", q, r.code, r.body)
		}
	}

	r = e.do(t, "GET", "/admin/dlq/t1", "", nil)
	if r.code != 200 || r.json["job_id"] != "t1" || r.json["seq"] != float64(2) {
		t.Errorf("show t1 = %d %s", r.code, r.body)
	}
	if r := e.do(t, "GET", "/admin/dlq/seq:3", "", nil); r.code != 200 || r.json["job_id"] != "d2" {
		t.Errorf("show seq:3 = %d %s", r.code, r.body)
	}
	for _, id := range []string{"nope", "seq:99", "replay"} {
		if r := e.do(t, "GET", "/admin/dlq/"+id, "", nil); r.code != 404 || errCode(r) != "not_found" {
			t.Errorf("show %s = %d %s", id, r.code, r.body)
		}
	}
}

func TestReplayAndPurge(t *testing.T) {
	e := newEnv(t)
	e.kill(t, herald.ChannelDiscord, "d1", "gone")
	e.kill(t, herald.ChannelTelegram, "t1", "blocked")
	e.kill(t, herald.ChannelTelegram, "t2", "blocked")

	for _, tt := range []struct {
		body string
		want int
		code string
	}{
		{`{}`, 400, "empty_filter"},
		{`{"limit":3}`, 400, "empty_filter"},
		{`{"all":true,"bogus":1}`, 400, "invalid_body"},
		{`{"all":true} {}`, 400, "invalid_body"},
		{`not json`, 400, "invalid_body"},
		{`{"channel":"slack"}`, 400, "invalid_filter"},
		{`{"since":"soon"}`, 400, "invalid_filter"},
		{`{"all":true,"rate":-1}`, 400, "invalid_filter"},
		{`{"ids":["` + strings.Repeat("x", 70<<10) + `"]}`, 413, "body_too_large"},
	} {
		r := e.do(t, "POST", "/admin/dlq/replay", tt.body, nil)
		if r.code != tt.want || errCode(r) != tt.code {
			t.Errorf("replay %.40s = %d %s, want %d %s", tt.body, r.code, r.body, tt.want, tt.code)
		}
	}

	r := e.do(t, "POST", "/admin/dlq/replay", `{"channel":"telegram","dry_run":true}`, nil)
	if r.code != 200 || r.json["replayed"] != float64(2) || r.json["dry_run"] != true {
		t.Errorf("dry run = %d %s", r.code, r.body)
	}
	r = e.do(t, "POST", "/admin/dlq/replay", `{"ids":["d1"],"rate":0}`, nil)
	if r.code != 200 || r.json["replayed"] != float64(1) || r.json["failed"] != float64(0) {
		t.Fatalf("replay = %d %s", r.code, r.body)
	}
	if ids := r.json["ids"].([]any); len(ids) != 1 || ids[0] != "d1" {
		t.Errorf("ids = %v", ids)
	}
	m := e.next(t)
	if m.Subject() != "herald.jobs.discord" || m.Headers().Get(dlq.HeaderBudgetStart) == "" {
		t.Errorf("replayed job on %s with headers %v", m.Subject(), m.Headers())
	}
	if r := e.do(t, "GET", "/admin/dlq/d1", "", nil); r.code != 404 {
		t.Errorf("replayed letter still there: %d", r.code)
	}
	if !strings.Contains(e.logs.String(), `"msg":"admin dlq replay"`) || !strings.Contains(e.logs.String(), `"replayed":1`) {
		t.Errorf("replay not logged:\n%s", e.logs)
	}

	if r := e.do(t, "POST", "/admin/dlq/purge", `{}`, nil); r.code != 400 || errCode(r) != "empty_filter" {
		t.Errorf("purge {} = %d %s", r.code, r.body)
	}
	if r := e.do(t, "POST", "/admin/dlq/purge", `{"all":true,"dry_run":true}`, nil); r.code != 400 {
		t.Errorf("purge with dry_run = %d %s", r.code, r.body)
	}
	r = e.do(t, "POST", "/admin/dlq/purge", `{"channel":"telegram","limit":1}`, nil)
	if r.code != 200 || r.json["purged"] != float64(1) {
		t.Errorf("purge = %d %s", r.code, r.body)
	}
	r = e.do(t, "POST", "/admin/dlq/purge", `{"all":true}`, nil)
	if r.code != 200 || r.json["purged"] != float64(1) {
		t.Errorf("purge all = %d %s", r.code, r.body)
	}
	if r := e.do(t, "GET", "/admin/dlq", "", nil); r.json["count"] != float64(0) {
		t.Errorf("letters left: %s", r.body)
	}
}

func TestReplayWithoutJobsStream(t *testing.T) {
	e := newEnv(t)
	e.kill(t, herald.ChannelDiscord, "d1", "gone")
	if err := e.js.DeleteStream(testkit.Context(t, 30*time.Second), herald.JobsStream); err != nil {
		t.Fatal(err)
	}
	r := e.do(t, "POST", "/admin/dlq/replay", `{"all":true,"rate":0}`, nil)
	if r.code != 200 || r.json["failed"] != float64(1) || r.json["replayed"] != float64(0) {
		t.Errorf("replay = %d %s", r.code, r.body)
	}
	if probs, _ := r.json["problems"].([]any); len(probs) != 1 {
		t.Errorf("problems = %v", r.json["problems"])
	}
	if r := e.do(t, "GET", "/admin/dlq/d1", "", nil); r.code != 200 {
		t.Errorf("letter gone after a failed replay: %d", r.code)
	}

	if err := e.js.DeleteStream(testkit.Context(t, 30*time.Second), herald.DeadLetterStream); err != nil {
		t.Fatal(err)
	}
	r = e.do(t, "GET", "/admin/dlq", "", nil)
	if r.code != 503 || errCode(r) != "no_stream" || r.hdr.Get("Retry-After") == "" {
		t.Errorf("list without stream = %d %s", r.code, r.body)
	}
}
