package fake

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// post sends body to url and returns the status, headers and decoded JSON
// answer (nil for an empty body).
func post(t *testing.T, u, contentType, body string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Post(u, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("answer is not JSON: %s", raw)
		}
	}
	return resp.StatusCode, resp.Header, m
}

const embedOK = `{"username":"Bot","embeds":[{"title":"t","description":"d","fields":[{"name":"n","value":"v","inline":true}],"footer":{"text":"f"},"timestamp":"2026-04-14T12:00:00.123Z","color":16739947,"url":"https://x.example"}]}`

func TestDiscordDefaultAnswer(t *testing.T) {
	f := NewDiscord(t)
	status, h, _ := post(t, f.URL()+"/api/v10/webhooks/42/tok?thread_id=7", "application/json", embedOK)
	if status != http.StatusNoContent {
		t.Fatalf("status %d", status)
	}
	for _, k := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Reset-After", "X-RateLimit-Bucket"} {
		if h.Get(k) == "" {
			t.Errorf("missing %s", k)
		}
	}
	if h.Get("X-RateLimit-Limit") != "5" || h.Get("X-RateLimit-Remaining") != "4" {
		t.Errorf("limit %s remaining %s", h.Get("X-RateLimit-Limit"), h.Get("X-RateLimit-Remaining"))
	}
	r := f.Requests()[0]
	if r.WebhookID != "42" || r.Token != "tok" || r.Version != "v10" || r.ThreadID != "7" || r.Body["username"] != "Bot" || string(r.Raw) != embedOK || r.At.IsZero() {
		t.Errorf("recorded %+v", r)
	}

	status, _, m := post(t, f.URL()+"/api/webhooks/42/tok?wait=true", "application/json", embedOK)
	if status != http.StatusOK || m["webhook_id"] != "42" {
		t.Errorf("wait=true: %d %v", status, m)
	}
	if status, _, _ := post(t, f.URL()+"/api/channels/1/messages", "application/json", embedOK); status != http.StatusNotFound {
		t.Errorf("unknown path: %d", status)
	}
	resp, err := http.Get(f.WebhookURL("42", "tok"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	if f.Count() != 4 {
		t.Errorf("Count = %d, want 4 (every request is recorded)", f.Count())
	}
}

func TestDiscordValidation(t *testing.T) {
	long := func(n int) string { return strings.Repeat("😀", n) }
	embed := func(fields string) string { return `{"embeds":[{` + fields + `}]}` }
	var manyFields []string
	for range 26 {
		manyFields = append(manyFields, `{"name":"n","value":"v"}`)
	}
	tests := []struct {
		name, ct, body string
		code           float64
		path           string // substring of the form error path
	}{
		{"ok", "application/json", embedOK, 0, ""},
		{"content only", "application/json", `{"content":"hi"}`, 0, ""},
		{"form body", "application/x-www-form-urlencoded", "content=hi", 50006, ""},
		{"bad json", "application/json", "{", 50109, ""},
		{"empty", "application/json", `{"embeds":[]}`, 50006, ""},
		{"content too long", "application/json", `{"content":"` + long(2001) + `"}`, 50035, "content"},
		{"title", "application/json", embed(`"title":"` + long(257) + `"`), 50035, "title"},
		{"description", "application/json", embed(`"description":"` + long(4097) + `"`), 50035, "description"},
		{"fields", "application/json", embed(`"fields":[` + strings.Join(manyFields, ",") + `]`), 50035, "fields"},
		{"field name", "application/json", embed(`"fields":[{"name":"` + long(257) + `","value":"v"}]`), 50035, "name"},
		{"field value", "application/json", embed(`"fields":[{"name":"n","value":"` + long(1025) + `"}]`), 50035, "value"},
		{"empty field value", "application/json", embed(`"fields":[{"name":"n","value":""}]`), 50035, "value"},
		{"footer", "application/json", embed(`"footer":{"text":"` + long(2049) + `"}`), 50035, "footer"},
		{"total", "application/json", embed(`"description":"` + long(4000) + `","footer":{"text":"` + long(2001) + `"}`), 50035, "embeds"},
		{"url", "application/json", embed(`"description":"d","url":"javascript:x"`), 50035, "url"},
		{"color", "application/json", embed(`"description":"d","color":16777216`), 50035, "color"},
		{"timestamp", "application/json", embed(`"description":"d","timestamp":"yesterday"`), 50035, "timestamp"},
		{"username", "application/json", `{"content":"x","username":"Discord"}`, 50035, "username"},
		{"too many embeds", "application/json", `{"embeds":[{},{},{},{},{},{},{},{},{},{},{}]}`, 50035, "embeds"},
	}
	f := NewDiscord(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, m := post(t, f.WebhookURL("1", "tok"), tt.ct, tt.body)
			if tt.code == 0 {
				if status != http.StatusNoContent {
					t.Fatalf("status %d: %v", status, m)
				}
				return
			}
			if status != http.StatusBadRequest || m["code"] != tt.code {
				t.Fatalf("status %d body %v, want 400 code %v", status, m, tt.code)
			}
			if tt.path != "" {
				b, _ := json.Marshal(m["errors"])
				if !strings.Contains(string(b), `"`+tt.path+`"`) {
					t.Errorf("errors %s do not name %q", b, tt.path)
				}
			}
		})
	}
}

// clock is a manual clock for the limiter.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestDiscordLimiter(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	f := NewDiscord(t)
	f.now = clk.Now
	f.Limit(2, 2*time.Second, 0)
	u := f.URL() + "/api/v10/webhooks/1/tok"

	for i := range 2 {
		if status, h, _ := post(t, u, "application/json", embedOK); status != http.StatusNoContent || h.Get("X-RateLimit-Remaining") != strconv.Itoa(1-i) {
			t.Fatalf("request %d: %d remaining %s", i, status, h.Get("X-RateLimit-Remaining"))
		}
	}
	clk.Add(500 * time.Millisecond)
	status, h, m := post(t, u, "application/json", embedOK)
	if status != http.StatusTooManyRequests || m["retry_after"] != 1.5 || m["global"] != false || m["message"] != "You are being rate limited." {
		t.Fatalf("third request: %d %v", status, m)
	}
	if h.Get("Retry-After") != "2" || h.Get("X-RateLimit-Scope") != "user" || h.Get("X-RateLimit-Remaining") != "0" || h.Get("X-RateLimit-Reset-After") != "1.500" {
		t.Errorf("429 headers: %v", h)
	}
	// Another webhook has its own bucket.
	if status, _, _ := post(t, f.URL()+"/api/v10/webhooks/2/tok", "application/json", embedOK); status != http.StatusNoContent {
		t.Errorf("other webhook: %d", status)
	}
	// The unversioned path speaks the old API: milliseconds.
	if status, _, m := post(t, f.WebhookURL("1", "tok"), "application/json", embedOK); status != 429 || m["retry_after"] != float64(1500) {
		t.Errorf("unversioned 429: %d %v", status, m)
	}
	clk.Add(1500 * time.Millisecond)
	if status, _, _ := post(t, u, "application/json", embedOK); status != http.StatusNoContent {
		t.Errorf("after the window: %d", status)
	}
}

func TestDiscordGlobalLimiter(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	f := NewDiscord(t)
	f.now = clk.Now
	f.Limit(0, time.Second, 3)
	for i := range 3 {
		if status, _, _ := post(t, f.URL()+"/api/v10/webhooks/"+strconv.Itoa(i+1)+"/tok", "application/json", embedOK); status != 204 {
			t.Fatalf("request %d: %d", i, status)
		}
	}
	clk.Add(250 * time.Millisecond)
	status, h, m := post(t, f.URL()+"/api/v10/webhooks/9/tok", "application/json", embedOK)
	if status != 429 || m["global"] != true || m["retry_after"] != 0.75 || h.Get("X-RateLimit-Global") != "true" || h.Get("X-RateLimit-Scope") != "global" {
		t.Fatalf("global 429: %d %v %v", status, m, h)
	}
	clk.Add(750 * time.Millisecond)
	if status, _, _ := post(t, f.URL()+"/api/v10/webhooks/9/tok", "application/json", embedOK); status != 204 {
		t.Errorf("next second: %d", status)
	}
}

func TestDiscordScript(t *testing.T) {
	f := NewDiscord(t)
	var seen []int
	var mu sync.Mutex
	f.Script(func(r DiscordRequest, n int) Response {
		mu.Lock()
		seen = append(seen, n)
		mu.Unlock()
		_ = f.Count() // scripts may use the fake
		if n == 2 {
			return Respond429(0.8)
		}
		return Response{}
	})
	u1, u2 := f.WebhookURL("1", "a"), f.WebhookURL("2", "b")
	if s, _, _ := post(t, u1, "application/json", embedOK); s != 204 {
		t.Fatalf("first: %d", s)
	}
	if s, h, m := post(t, u1, "application/json", embedOK); s != 429 || m["retry_after"] != 0.8 || h.Get("Retry-After") != "1" {
		t.Fatalf("second: %d %v", s, m)
	}
	if s, _, _ := post(t, u2, "application/json", embedOK); s != 204 {
		t.Fatalf("other webhook: %d", s)
	}
	// Malformed requests are refused before the script sees them.
	if s, _, _ := post(t, u2, "application/json", "{"); s != 400 {
		t.Fatalf("malformed: %d", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[0] != 1 || seen[1] != 2 || seen[2] != 1 {
		t.Errorf("n values %v, want [1 2 1]", seen)
	}

	ban := RespondCloudflareBan()
	f.Script(func(DiscordRequest, int) Response { return ban })
	s, h, _ := postRaw(t, u1, embedOK)
	if s != 429 || h.Get("X-RateLimit-Limit") != "" || h.Get("Retry-After") != "" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Errorf("ban: %d %v", s, h)
	}
	f.Script(func(DiscordRequest, int) Response { return Respond404UnknownWebhook() })
	if s, _, m := post(t, u1, "application/json", embedOK); s != 404 || m["code"] != float64(10015) || m["message"] != "Unknown Webhook" {
		t.Errorf("404: %d %v", s, m)
	}
}

func postRaw(t *testing.T, u, body string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestHangReleasedOnClose(t *testing.T) {
	f := NewDiscord(nil)
	f.Script(func(DiscordRequest, int) Response { return Response{Hang: true} })
	done := make(chan error, 1)
	go func() {
		resp, err := http.Post(f.WebhookURL("1", "t"), "application/json", strings.NewReader(embedOK))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for f.Count() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { f.Close(); f.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked on a hanging request")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("hanging request never returned")
	}
}

func TestHangReleasedWhenClientLeaves(t *testing.T) {
	f := NewTelegram(t)
	f.Script(func(TelegramRequest, int) Response { return Response{Hang: true} })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.URL()+"/bot1:a/sendMessage", strings.NewReader(`{"chat_id":1,"text":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("hanging request answered")
	}
}

func TestTelegramFake(t *testing.T) {
	f := NewTelegram(t)
	base := f.URL() + "/bot123:abc"
	status, _, m := post(t, base+"/sendMessage", "application/json", `{"chat_id":-1001234567890123,"text":"<b>hi</b> &amp; bye","parse_mode":"HTML"}`)
	if status != 200 || m["ok"] != true {
		t.Fatalf("default: %d %v", status, m)
	}
	res := m["result"].(map[string]any)
	if res["text"] != "hi & bye" || res["chat"].(map[string]any)["type"] != "supergroup" {
		t.Errorf("result %v", res)
	}
	r := f.Requests()[0]
	if r.Token != "123:abc" || r.Method != "sendMessage" || r.ChatID != "-1001234567890123" || r.ParseMode != "HTML" || r.Visible != "hi & bye" {
		t.Errorf("recorded %+v", r)
	}

	form := url.Values{"chat_id": {"@some_channel"}, "text": {"plain <not a tag>"}}
	if status, _, m := post(t, base+"/SENDMESSAGE", "application/x-www-form-urlencoded", form.Encode()); status != 200 || m["result"].(map[string]any)["chat"].(map[string]any)["type"] != "channel" {
		t.Errorf("form, no parse mode: %d %v", status, m)
	}

	refusals := []struct {
		name, path, body string
		status           int
		desc             string
	}{
		{"no bot prefix", "/123:abc/sendMessage", `{"chat_id":1,"text":"x"}`, 404, "Not Found"},
		{"bad token", "/botabc/sendMessage", `{"chat_id":1,"text":"x"}`, 401, "Unauthorized"},
		{"unknown method", "/bot1:a/sendTelepathy", `{"chat_id":1,"text":"x"}`, 404, "Not Found: method not found"},
		{"no chat", "/bot1:a/sendMessage", `{"text":"x"}`, 400, "Bad Request: chat_id is empty"},
		{"no text", "/bot1:a/sendMessage", `{"chat_id":1}`, 400, "Bad Request: message text is empty"},
		{"blank text", "/bot1:a/sendMessage", `{"chat_id":1,"text":"<b> </b>","parse_mode":"HTML"}`, 400, "Bad Request: message text is empty"},
		{"parse mode", "/bot1:a/sendMessage", `{"chat_id":1,"text":"x","parse_mode":"BBCode"}`, 400, "Bad Request: unsupported parse_mode"},
		{"bad html", "/bot1:a/sendMessage", `{"chat_id":1,"text":"<script>","parse_mode":"HTML"}`, 400, `Bad Request: can't parse entities: Unsupported start tag "script" at byte offset 0`},
		{"raw ampersand", "/bot1:a/sendMessage", `{"chat_id":1,"text":"a & b","parse_mode":"HTML"}`, 400, "Bad Request: can't parse entities: "},
		{"too long", "/bot1:a/sendMessage", `{"chat_id":1,"text":"` + strings.Repeat("😀", 2049) + `"}`, 400, "Bad Request: message is too long"},
		{"too long after parsing", "/bot1:a/sendMessage", `{"chat_id":1,"parse_mode":"HTML","text":"` + strings.Repeat("&amp;", 4097) + `"}`, 400, "Bad Request: message is too long"},
	}
	for _, tt := range refusals {
		status, _, m := post(t, f.URL()+tt.path, "application/json", tt.body)
		if status != tt.status || m["ok"] != false || m["error_code"] != float64(tt.status) || !strings.HasPrefix(m["description"].(string), tt.desc) {
			t.Errorf("%s: %d %v, want %d %q", tt.name, status, m, tt.status, tt.desc)
		}
	}
	// 4096 after parsing is fine, however long the HTML.
	if status, _, m := post(t, base+"/sendMessage", "application/json", `{"chat_id":1,"parse_mode":"HTML","text":"`+strings.Repeat("&amp;", 4096)+`"}`); status != 200 {
		t.Errorf("4096 visible: %d %v", status, m)
	}
}

func TestTelegramScriptAndHelpers(t *testing.T) {
	f := NewTelegram(t)
	var ns []int
	var mu sync.Mutex
	f.Script(func(r TelegramRequest, n int) Response {
		mu.Lock()
		ns = append(ns, n)
		mu.Unlock()
		switch r.ChatID {
		case "1":
			return RespondTelegram429(7)
		case "2":
			return RespondTelegramMigrate(-1001234567890)
		case "3":
			return RespondTelegramBlocked()
		case "4":
			return RespondTelegramChatNotFound()
		case "5":
			return RespondTelegramUnauthorized()
		}
		return Response{}
	})
	send := func(chat string) (int, http.Header, map[string]any) {
		return post(t, f.URL()+"/bot9:x/sendMessage", "application/json", `{"chat_id":"`+chat+`","text":"x"}`)
	}
	if s, h, m := send("1"); s != 429 || m["parameters"].(map[string]any)["retry_after"] != float64(7) || h.Get("Retry-After") != "7" {
		t.Errorf("429: %d %v", s, m)
	}
	if s, _, m := send("2"); s != 400 || m["parameters"].(map[string]any)["migrate_to_chat_id"] != float64(-1001234567890) {
		t.Errorf("migrate: %d %v", s, m)
	}
	if s, _, m := send("3"); s != 403 || m["description"] != "Forbidden: bot was blocked by the user" {
		t.Errorf("blocked: %d %v", s, m)
	}
	if s, _, m := send("4"); s != 400 || m["description"] != "Bad Request: chat not found" {
		t.Errorf("chat not found: %d %v", s, m)
	}
	if s, _, m := send("5"); s != 401 || m["description"] != "Unauthorized" {
		t.Errorf("unauthorized: %d %v", s, m)
	}
	if s, _, _ := send("6"); s != 200 {
		t.Errorf("default: %d", s)
	}
	if s, _, _ := send("6"); s != 200 {
		t.Errorf("default: %d", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int{1, 1, 1, 1, 1, 1, 2}; len(ns) != len(want) || ns[6] != 2 || ns[0] != 1 {
		t.Errorf("n values %v, want %v", ns, want)
	}
}
