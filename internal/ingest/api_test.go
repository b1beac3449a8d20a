package ingest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
)

func (e *env) apiBody(channel string) string {
	req := map[string]any{"channel": channel, "message": map[string]any{
		"title": "Deploy finished", "text": "v1.2.3 is live", "url": "https://example.org/deploys/7", "color": 0x00FF00,
		"fields": []map[string]any{{"name": "env", "value": "prod", "inline": true, "icon": "🌍"}},
		"footer": "ci", "username": "Deploy Bot", "timestamp": "2026-04-14T12:00:00Z",
	}}
	switch channel {
	case "discord":
		req["credentials"] = map[string]any{"webhook": e.seal(testWebhook)}
	case "telegram":
		req["credentials"] = map[string]any{"bot_token": e.seal(testBotToken), "chat_id": e.seal(testChatID)}
	}
	return streakyBody(req)
}

func (e *env) api(method, path, body string, header ...string) *http.Response {
	e.t.Helper()
	h := map[string]string{"Content-Type": "application/json", "X-API-Secret": testAPISecret}
	for i := 0; i < len(header); i += 2 {
		if header[i+1] == "" {
			delete(h, header[i])
		} else {
			h[header[i]] = header[i+1]
		}
	}
	return e.do(request{method: method, path: path, body: body, header: h}).Result()
}

// apiErr decodes Herald's JSON error and checks its code.
func apiErr(t *testing.T, res *http.Response, status int, code string) string {
	t.Helper()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", res.StatusCode, status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	if e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("error = %+v, want code %s", e.Error, code)
	}
	return e.Error.Message
}

func TestAPICreateAndGet(t *testing.T) {
	e := newTestEnv(t)
	for _, ch := range []string{"discord", "telegram"} {
		t.Run(ch, func(t *testing.T) {
			body := e.apiBody(ch)
			res := e.api("POST", "/v1/notifications", body)
			if res.StatusCode != http.StatusAccepted {
				b, _ := io.ReadAll(res.Body)
				t.Fatalf("status %d: %s", res.StatusCode, b)
			}
			var acc Accepted
			decodeJSON(t, res.Body, &acc)
			if !herald.ValidID(acc.ID) || acc.Status != herald.StateQueued || acc.Duplicate {
				t.Fatalf("reply %+v", acc)
			}
			if loc := res.Header.Get("Location"); loc != "/v1/notifications/"+acc.ID {
				t.Fatalf("Location %q", loc)
			}
			job, _ := e.lastJob(herald.Channel(ch))
			if job.ID != acc.ID || job.Source != "api" || job.Message.Title != "Deploy finished" || job.Message.URL != "https://example.org/deploys/7" ||
				*job.Message.Color != 0x00FF00 || job.Message.Fields[0].Icon != "🌍" || job.Message.Timestamp == nil {
				t.Fatalf("job = %+v", job)
			}
			var sent NotificationRequest
			if err := json.Unmarshal([]byte(body), &sent); err != nil {
				t.Fatal(err)
			}
			if job.Credentials != sent.Credentials {
				t.Fatal("stored credentials differ from the sealed strings sent")
			}

			res = e.api("GET", "/v1/notifications/"+acc.ID, "")
			var st herald.Status
			decodeJSON(t, res.Body, &st)
			if res.StatusCode != 200 || st.ID != acc.ID || st.State != herald.StateQueued || st.Channel != herald.Channel(ch) {
				t.Fatalf("GET %d %+v", res.StatusCode, st)
			}
		})
	}
	t.Run("bearer", func(t *testing.T) {
		res := e.api("POST", "/v1/notifications", e.apiBody("discord"), "X-API-Secret", "", "Authorization", "bearer "+testAPISecret)
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d", res.StatusCode)
		}
	})
	t.Run("status after delivery", func(t *testing.T) {
		res := e.api("POST", "/v1/notifications", e.apiBody("discord"))
		var acc Accepted
		decodeJSON(t, res.Body, &acc)
		if err := e.status.Put(context.Background(), herald.Status{ID: acc.ID, State: herald.StateDelivered, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
		res = e.api("GET", "/v1/notifications/"+acc.ID, "", "X-API-Secret", "", "Authorization", "Bearer "+testAPISecret)
		var st herald.Status
		decodeJSON(t, res.Body, &st)
		if st.State != herald.StateDelivered {
			t.Fatalf("status %+v", st)
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		apiErr(t, e.api("GET", "/v1/notifications/"+herald.NewID(), ""), 404, "not_found")
	})
	t.Run("invalid id", func(t *testing.T) {
		apiErr(t, e.api("GET", "/v1/notifications/not!valid", ""), 404, "not_found")
		apiErr(t, e.api("GET", "/v1/notifications/"+strings.Repeat("a", 65), ""), 404, "not_found")
	})
	t.Run("GET needs auth", func(t *testing.T) {
		res := e.api("GET", "/v1/notifications/"+herald.NewID(), "", "X-API-Secret", "")
		apiErr(t, res, 401, "unauthorized")
		if res.Header.Get("WWW-Authenticate") == "" {
			t.Fatal("401 without WWW-Authenticate")
		}
	})
}

func TestAPIIdempotency(t *testing.T) {
	e := newTestEnv(t)
	body := e.apiBody("discord")
	first := e.api("POST", "/v1/notifications", body, "Idempotency-Key", "order-1234")
	var a, b, c Accepted
	decodeJSON(t, first.Body, &a)
	// A retry, through the other auth header: the same client.
	second := e.api("POST", "/v1/notifications", body, "Idempotency-Key", "order-1234", "X-API-Secret", "", "Authorization", "Bearer "+testAPISecret)
	decodeJSON(t, second.Body, &b)
	if first.StatusCode != 202 || second.StatusCode != 202 {
		t.Fatalf("statuses %d %d", first.StatusCode, second.StatusCode)
	}
	if a.ID != b.ID || a.Duplicate || !b.Duplicate {
		t.Fatalf("first %+v, second %+v", a, b)
	}
	if second.Header.Get("Location") != "/v1/notifications/"+a.ID {
		t.Fatalf("Location %q", second.Header.Get("Location"))
	}
	if n := e.streamMsgs(); n != 1 {
		t.Fatalf("stream holds %d jobs, want 1", n)
	}
	// Another client's key of the same name is another job.
	third := e.api("POST", "/v1/notifications", body, "Idempotency-Key", "order-1234", "X-API-Secret", "second-secret-abcdefgh")
	decodeJSON(t, third.Body, &c)
	if c.ID == a.ID || c.Duplicate {
		t.Fatalf("another secret's request = %+v", c)
	}
	if !e.srv.secrets[1].mayRead(c.ID) || e.srv.secrets[0].mayRead(c.ID) {
		t.Fatal("the other secret's job is not owned by it alone")
	}
	if n := e.streamMsgs(); n != 2 {
		t.Fatalf("stream holds %d jobs, want 2", n)
	}
}

// TestAPIStatusOnlyForItsOwner: a job's status is visible only to the API
// secret that created it; another secret gets 404 (not 403, which would say
// the job exists), also for a made-up tag. A job without an owner tag (one
// published straight to NATS) stays visible to every API secret.
func TestAPIStatusOnlyForItsOwner(t *testing.T) {
	e := newTestEnv(t)
	resp := e.api("POST", "/v1/notifications", `{"channel":"discord","credentials":{"webhook":"`+e.seal(testWebhook)+`"},"message":{"text":"mine"}}`, "X-API-Secret", testAPISecret)
	var a Accepted
	decodeJSON(t, resp.Body, &a)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("create: %d", resp.StatusCode)
	}
	if got := e.api("GET", "/v1/notifications/"+a.ID, "", "X-API-Secret", testAPISecret); got.StatusCode != http.StatusOK {
		t.Fatalf("owner's GET: %d", got.StatusCode)
	}
	if got := e.api("GET", "/v1/notifications/"+a.ID, "", "X-API-Secret", "second-secret-abcdefgh"); got.StatusCode != http.StatusNotFound {
		t.Fatalf("another secret's GET: %d, want 404", got.StatusCode)
	}
	base, _, owned := split(a.ID)
	if !owned {
		t.Fatalf("id %q carries no owner tag", a.ID)
	}
	if got := e.api("GET", "/v1/notifications/"+base+"_aaaaaaaaaa", "", "X-API-Secret", "second-secret-abcdefgh"); got.StatusCode != http.StatusNotFound {
		t.Fatalf("a made-up tag: %d, want 404", got.StatusCode)
	}
	job := &herald.Job{ID: "from-nats-1", Channel: herald.ChannelDiscord, Credentials: herald.Credentials{Webhook: e.seal(testWebhook)}, Message: herald.Message{Text: "another backend's"}}
	if _, err := publisher.New(e.js).Publish(testkit.Context(t, 5*time.Second), job); err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{testAPISecret, "second-secret-abcdefgh"} {
		if got := e.api("GET", "/v1/notifications/from-nats-1", "", "X-API-Secret", sec); got.StatusCode != http.StatusOK {
			t.Fatalf("a NATS-published job for %.6s…: %d, want 200", sec, got.StatusCode)
		}
	}
}

func TestAPIErrors(t *testing.T) {
	e := newTestEnv(t)
	good := e.apiBody("discord")
	withCreds := func(creds map[string]any) string {
		return streakyBody(map[string]any{"channel": "discord", "credentials": creds, "message": map[string]any{"text": "hi"}})
	}
	tests := []struct {
		name     string
		body     string
		header   []string
		status   int
		code     string
		contains string
	}{
		{"no secret", good, []string{"X-API-Secret", ""}, 401, "unauthorized", ""},
		{"wrong secret", good, []string{"X-API-Secret", "nope"}, 401, "unauthorized", ""},
		{"wrong bearer", good, []string{"X-API-Secret", "", "Authorization", "Bearer nope"}, 401, "unauthorized", ""},
		{"basic auth", good, []string{"X-API-Secret", "", "Authorization", "Basic " + testAPISecret}, 401, "unauthorized", ""},
		{"content type", good, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type", ""},
		{"malformed", `{"channel":`, nil, 400, "malformed_json", "unexpected end"},
		{"syntax error offset", `{"channel" "discord"}`, nil, 400, "malformed_json", "at byte 12"},
		{"empty", ``, nil, 400, "malformed_json", "empty"},
		{"trailing data", good + `{}`, nil, 400, "malformed_json", "after the JSON object"},
		{"unknown field", `{"channel":"discord","colour":1}`, nil, 400, "invalid_body", `unknown field "colour"`},
		{"unknown nested field", `{"channel":"discord","message":{"text":"a","embeds":[]}}`, nil, 400, "invalid_body", `unknown field "embeds"`},
		{"wrong type", `{"channel":"discord","message":{"color":"red"}}`, nil, 400, "invalid_body", "message.color"},
		{"bad timestamp", `{"channel":"discord","message":{"timestamp":"yesterday"}}`, nil, 400, "invalid_body", "timestamp"},
		{"array", `[]`, nil, 400, "invalid_body", ""},
		{"bad idempotency key", good, []string{"Idempotency-Key", "caf\u00e9"}, 400, "invalid_idempotency_key", ""},
		{"long idempotency key", good, []string{"Idempotency-Key", strings.Repeat("k", 201)}, 400, "invalid_idempotency_key", ""},
		{"unknown channel", `{"channel":"slack","message":{"text":"a"}}`, nil, 422, "invalid_job", "unknown channel"},
		{"missing webhook", withCreds(map[string]any{}), nil, 422, "invalid_job", "credentials.webhook"},
		{"empty message", `{"channel":"discord","credentials":{"webhook":"` + e.seal(testWebhook) + `"},"message":{}}`, nil, 422, "invalid_job", "title or a text"},
		{"bad credentials", withCreds(map[string]any{"webhook": "AAAA"}), nil, 422, "invalid_credentials", "credentials.webhook: invalid encrypted data: too short"},
		{"telegram bad chat", `{"channel":"telegram","credentials":{"bot_token":"` + e.seal(testBotToken) + `","chat_id":"%%%"},"message":{"text":"a"}}`,
			nil, 422, "invalid_credentials", "credentials.chat_id"},
		{"target not allowed", withCreds(map[string]any{"webhook": e.seal("https://evil.example.com/api/webhooks/1/EvilToken_xyz")}), nil, 422, "target_not_allowed", "allowed Discord host"},
		{"oversize", `{"channel":"discord","message":{"text":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}}`, nil, 413, "body_too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := apiErr(t, e.api("POST", "/v1/notifications", tt.body, tt.header...), tt.status, tt.code)
			if !strings.Contains(msg, tt.contains) {
				t.Fatalf("message %q does not contain %q", msg, tt.contains)
			}
		})
	}
	if n := e.streamMsgs(); n != 0 {
		t.Fatalf("refused requests stored %d jobs", n)
	}
	if !strings.Contains(e.logs.String(), "code=invalid_credentials") {
		t.Fatal("rejections are not logged with their code")
	}
}

func TestAPINotStored(t *testing.T) {
	e := newTestEnv(t)
	body := e.apiBody("discord")
	e.stopNATS()
	res := e.api("POST", "/v1/notifications", body)
	apiErr(t, res, 503, "not_stored")
	if res.Header.Get("Retry-After") != "5" {
		t.Fatal("503 without Retry-After")
	}
	res = e.api("GET", "/v1/notifications/"+herald.NewID(), "")
	apiErr(t, res, 503, "unavailable")
}

func TestOpsRoutes(t *testing.T) {
	e := newTestEnv(t)
	get := func(path string, header ...string) *http.Response {
		h := map[string]string{}
		for i := 0; i < len(header); i += 2 {
			h[header[i]] = header[i+1]
		}
		return e.do(request{method: "GET", path: path, header: h}).Result()
	}
	read := func(res *http.Response) string {
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	if res := get("/"); res.StatusCode != 200 || read(res) != "OK" {
		t.Fatalf("GET / = %d", res.StatusCode)
	}
	res := get("/health")
	if body := read(res); res.StatusCode != 200 || body != `{"status":"healthy","service":"streaky-notification-proxy","version":"0.1.0"}` {
		t.Fatalf("GET /health = %d %s", res.StatusCode, body)
	}
	if res.Header.Get("X-Herald-Version") != "test" {
		t.Fatal("no version header")
	}
	if res := get("/health", "X-API-Secret", testAPISecret); res.StatusCode != 200 {
		t.Fatalf("GET /health with the secret = %d", res.StatusCode)
	}
	if res := get("/readyz"); res.StatusCode != 200 || read(res) != `{"status":"ready"}` {
		t.Fatalf("GET /readyz = %d", res.StatusCode)
	}
	if res := get("/nope"); res.StatusCode != 404 {
		t.Fatalf("GET /nope = %d", res.StatusCode)
	}
	if res := e.do(request{method: "DELETE", path: "/health"}).Result(); res.StatusCode != 405 {
		t.Fatalf("DELETE /health = %d", res.StatusCode)
	}
	e.streaky(e.discordBody())
	e.do(request{method: "GET", path: "/v1/notifications/whatever-id-1"})
	res = get("/metrics")
	body := read(res)
	for _, want := range []string{
		`herald_http_requests_total{code="202",route="POST /send-notification"} 1`,
		`herald_http_requests_total{code="401",route="GET /v1/notifications/{id}"} 1`,
		`herald_http_requests_total{code="404",route="unmatched"} 1`,
		`herald_http_requests_total{code="405",route="unmatched"} 1`,
		`herald_jobs_accepted_total{channel="discord",source="streaky"} 1`,
		`herald_jobs_rejected_total{reason="unauthorized",route="GET /v1/notifications/{id}"} 1`,
		`herald_http_request_duration_seconds_count{route="GET /health"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "whatever-id-1") {
		t.Fatal("a raw path became a label")
	}

	e.stopNATS()
	res = get("/readyz")
	var ready map[string]string
	decodeJSON(t, res.Body, &ready)
	if res.StatusCode != 503 || ready["status"] != "unavailable" || ready["error"] == "" {
		t.Fatalf("GET /readyz after shutdown = %d %v", res.StatusCode, ready)
	}
}

// panicPublisher panics, to test the recovery middleware.
type panicPublisher struct{}

func (panicPublisher) Publish(context.Context, *herald.Job, ...publisher.Option) (publisher.Result, error) {
	panic("boom")
}

func TestPanicRecovered(t *testing.T) {
	e := newTestEnv(t, withPublisher(panicPublisher{}))
	rec := e.streaky(e.discordBody())
	if rec.Code != 500 {
		t.Fatalf("status %d", rec.Code)
	}
	if !strings.Contains(e.logs.String(), "panic serving request") {
		t.Fatal("panic not logged")
	}
	body := e.do(request{method: "GET", path: "/metrics"}).Body.String()
	if !strings.Contains(body, `herald_http_requests_total{code="500",route="POST /send-notification"} 1`) {
		t.Fatal("panic not counted")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{APISecrets: []string{"s"}}, true},
		{"full", Config{APISecrets: []string{"a", "b"}, MaxBodyBytes: 1 << 20, StreakyWait: DefaultStreakyWait, Version: "1"}, true},
		{"no secret", Config{}, false},
		{"empty secret", Config{APISecrets: []string{"a", ""}}, false},
		{"secret with newline", Config{APISecrets: []string{"a\nb"}}, false},
		{"secret with trailing space", Config{APISecrets: []string{"ab "}}, false},
		{"negative body", Config{APISecrets: []string{"a"}, MaxBodyBytes: -1}, false},
		{"negative wait", Config{APISecrets: []string{"a"}, StreakyWait: -time.Second}, false},
		{"wait past the Worker's timeout", Config{APISecrets: []string{"a"}, StreakyWait: 15 * time.Second}, false},
		{"share of the default", Config{APISecrets: []string{"a", "b"}, MaxWaitingPerSecret: DefaultMaxWaiting / 2}, true},
		{"one secret takes all", Config{APISecrets: []string{"a"}, MaxWaiting: 10, MaxWaitingPerSecret: 10}, true},
		{"shares past max waiting", Config{APISecrets: []string{"a", "b", "c"}, MaxWaiting: 10, MaxWaitingPerSecret: 4}, false},
		{"fewer slots than secrets", Config{APISecrets: []string{"a", "b", "c"}, MaxWaiting: 2}, false},
		{"negative share", Config{APISecrets: []string{"a"}, MaxWaitingPerSecret: -1}, false},
		{"negative max waiting", Config{APISecrets: []string{"a"}, MaxWaiting: -1}, false},
		{"key share of the default", Config{APISecrets: []string{"a", "b"}, MaxKeysPerSecret: 100_000}, true},
		{"key shares past max keys", Config{APISecrets: []string{"a", "b", "c"}, MaxKeys: 10, MaxKeysPerSecret: 4}, false},
		{"fewer keys than secrets", Config{APISecrets: []string{"a", "b", "c"}, MaxKeys: 2}, false},
		{"negative key share", Config{APISecrets: []string{"a"}, MaxKeysPerSecret: -1}, false},
		{"negative max keys", Config{APISecrets: []string{"a"}, MaxKeys: -1}, false},
		{"idempotency window under a second", Config{APISecrets: []string{"a"}, IdempotencyWindow: time.Millisecond}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
			if err != nil && strings.Contains(err.Error(), "ab ") {
				t.Fatal("error quotes the secret")
			}
		})
	}
	if _, err := New(Config{APISecrets: []string{"s"}}, Deps{}); err == nil {
		t.Fatal("New accepted missing dependencies")
	}
}
