package fake

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TelegramMaxText is Telegram's limit on a message's text after entity
// parsing, in UTF-16 code units.
const TelegramMaxText = 4096

var telegramToken = regexp.MustCompile(`^[0-9]+:[A-Za-z0-9_-]+$`)

// TelegramRequest is one request the Telegram fake received.
type TelegramRequest struct {
	// Token is the bot token from the path /bot<token>/<method>.
	Token string
	// Method is the API method from the path, e.g. "sendMessage".
	Method string
	// ChatID is chat_id as a string (a JSON number is formatted in decimal).
	ChatID string
	// Text and ParseMode are the text and parse_mode parameters.
	Text, ParseMode string
	// Visible is Text after entity parsing (Text itself for no parse mode or a
	// Markdown mode; "" when the HTML did not parse).
	Visible string
	Header  http.Header
	// Body is the parameters decoded generically: the JSON object, or the form
	// fields as strings. Treat it as read-only.
	Body map[string]any
	// Raw is the body as received.
	Raw []byte
	// At is when the request arrived.
	At time.Time
}

// Telegram is a fake Telegram Bot API. It is safe for concurrent use.
type Telegram struct {
	s *server

	mu      sync.Mutex
	reqs    []TelegramRequest
	perChat map[string]int
	script  func(TelegramRequest, int) Response
	msgSeq  int64
	now     func() time.Time
}

// NewTelegram starts a fake Telegram Bot API; point TelegramConfig.APIBase at
// URL(). t.Cleanup closes it; with a nil t the caller must call Close. By
// default a valid sendMessage is answered 200 {"ok": true, "result": <the
// message>}. Like the real API it refuses (400, before any Script): a missing
// chat_id or text, HTML that Telegram would not parse when parse_mode is HTML
// ("Bad Request: can't parse entities: ..."), and text longer than 4096
// characters after entity parsing ("Bad Request: message is too long").
func NewTelegram(t testing.TB) *Telegram {
	f := &Telegram{perChat: make(map[string]int), now: time.Now}
	f.s = newServer(t, http.HandlerFunc(f.serveHTTP))
	return f
}

// Close shuts the server down, releasing hanging requests. Safe to call twice.
func (f *Telegram) Close() { f.s.close() }

// URL is the server's base URL, the APIBase to configure.
func (f *Telegram) URL() string { return f.s.srv.URL }

// Requests returns a copy of the requests received so far, oldest first.
func (f *Telegram) Requests() []TelegramRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]TelegramRequest(nil), f.reqs...)
}

// Count is the number of requests received so far.
func (f *Telegram) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// Script sets fn to answer well-formed requests. n is the number of requests
// received so far for the same bot token and chat_id, this one included
// (1-based). Returning the zero Response falls back to the default answer. fn
// runs on the server's goroutines without the fake's lock and must be safe for
// concurrent use. Script(nil) removes it.
func (f *Telegram) Script(fn func(r TelegramRequest, n int) Response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = fn
}

func (f *Telegram) serveHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	req := TelegramRequest{Header: r.Header.Clone(), Raw: raw}
	rest, isBot := strings.CutPrefix(r.URL.Path, "/bot")
	token, method, hasMethod := strings.Cut(rest, "/")
	req.Token, req.Method = token, method
	req.Body = telegramParams(r, raw)
	req.ChatID = paramString(req.Body["chat_id"])
	req.Text = paramString(req.Body["text"])
	req.ParseMode = paramString(req.Body["parse_mode"])

	mode := strings.ToLower(req.ParseMode)
	var parseErr error
	switch mode {
	case "html":
		req.Visible, parseErr = ParseTelegramHTML(req.Text)
	default:
		req.Visible = req.Text
	}

	f.mu.Lock()
	req.At = f.now()
	f.reqs = append(f.reqs, req)
	key := req.Token + "\x00" + req.ChatID
	f.perChat[key]++
	n := f.perChat[key]
	script := f.script
	f.msgSeq++
	seq := f.msgSeq
	f.mu.Unlock()

	fail := func(status int, description string) {
		writeJSON(w, status, map[string]any{"ok": false, "error_code": status, "description": description}, nil)
	}
	switch {
	case !isBot || !hasMethod || strings.Contains(method, "/"):
		fail(http.StatusNotFound, "Not Found")
		return
	case !telegramToken.MatchString(token):
		fail(http.StatusUnauthorized, "Unauthorized")
		return
	case !strings.EqualFold(method, "sendMessage"):
		fail(http.StatusNotFound, "Not Found: method not found")
		return
	case req.ChatID == "":
		fail(http.StatusBadRequest, "Bad Request: chat_id is empty")
		return
	case mode != "" && mode != "html" && mode != "markdown" && mode != "markdownv2":
		fail(http.StatusBadRequest, "Bad Request: unsupported parse_mode")
		return
	case parseErr != nil:
		fail(http.StatusBadRequest, "Bad Request: can't parse entities: "+parseErr.Error())
		return
	case strings.TrimSpace(req.Visible) == "":
		fail(http.StatusBadRequest, "Bad Request: message text is empty")
		return
	case UTF16Len(req.Visible) > TelegramMaxText:
		fail(http.StatusBadRequest, "Bad Request: message is too long")
		return
	}
	if script != nil {
		resp := script(req, n)
		if !resp.isDefault() {
			f.s.respond(w, r, resp)
			return
		}
		if !f.s.sleep(r.Context(), resp.Delay) {
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "result": telegramMessage(seq, req)}, nil)
}

// telegramParams reads the method's parameters from the query string and the
// body (JSON, or URL-encoded form), as the Bot API accepts them.
func telegramParams(r *http.Request, raw []byte) map[string]any {
	params := map[string]any{}
	for k, vs := range r.URL.Query() {
		params[k] = vs[0]
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		var body map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // chat ids reach 52 bits and more
		if dec.Decode(&body) == nil {
			for k, v := range body {
				params[k] = v
			}
		}
	case "application/x-www-form-urlencoded":
		if form, err := url.ParseQuery(string(raw)); err == nil {
			for k, vs := range form {
				params[k] = vs[0]
			}
		}
	}
	return params
}

func paramString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

// telegramMessage is the Message object a successful sendMessage returns.
func telegramMessage(seq int64, r TelegramRequest) map[string]any {
	botID, _, _ := strings.Cut(r.Token, ":")
	bot, _ := strconv.ParseInt(botID, 10, 64)
	chat := map[string]any{}
	if id, err := strconv.ParseInt(r.ChatID, 10, 64); err == nil {
		chat["id"] = id
		switch {
		case id > 0:
			chat["type"] = "private"
			chat["first_name"] = "Test"
		case strings.HasPrefix(r.ChatID, "-100"):
			chat["type"] = "supergroup"
			chat["title"] = "Test Supergroup"
		default:
			chat["type"] = "group"
			chat["title"] = "Test Group"
		}
	} else {
		chat["id"] = int64(-1001000000001)
		chat["type"] = "channel"
		chat["title"] = "Test Channel"
		chat["username"] = strings.TrimPrefix(r.ChatID, "@")
	}
	return map[string]any{
		"message_id": seq,
		"from":       map[string]any{"id": bot, "is_bot": true, "first_name": "Herald Test Bot", "username": "herald_test_bot"},
		"chat":       chat,
		"date":       r.At.Unix(),
		"text":       r.Visible,
	}
}

// RespondTelegramError is a Bot API error answer {"ok": false, "error_code":
// status, "description": description} with status.
func RespondTelegramError(status int, description string) Response {
	return Response{Status: status, Body: mustJSON(map[string]any{"ok": false, "error_code": status, "description": description})}
}

// RespondTelegram429 is Telegram's flood-control answer asking to wait
// retryAfter whole seconds (parameters.retry_after, and Retry-After).
func RespondTelegram429(retryAfter int) Response {
	h := http.Header{}
	h.Set("Retry-After", strconv.Itoa(retryAfter))
	return Response{Status: http.StatusTooManyRequests, Header: h, Body: mustJSON(map[string]any{
		"ok": false, "error_code": 429,
		"description": "Too Many Requests: retry after " + strconv.Itoa(retryAfter),
		"parameters":  map[string]any{"retry_after": retryAfter},
	})}
}

// RespondTelegramBlocked is 403 "Forbidden: bot was blocked by the user".
func RespondTelegramBlocked() Response {
	return RespondTelegramError(http.StatusForbidden, "Forbidden: bot was blocked by the user")
}

// RespondTelegramChatNotFound is 400 "Bad Request: chat not found".
func RespondTelegramChatNotFound() Response {
	return RespondTelegramError(http.StatusBadRequest, "Bad Request: chat not found")
}

// RespondTelegramUnauthorized is 401 "Unauthorized" (a revoked or wrong token).
func RespondTelegramUnauthorized() Response {
	return RespondTelegramError(http.StatusUnauthorized, "Unauthorized")
}

// RespondTelegramMigrate is the answer for a group that became a supergroup:
// 400 with parameters.migrate_to_chat_id = newChatID.
func RespondTelegramMigrate(newChatID int64) Response {
	return Response{Status: http.StatusBadRequest, Body: mustJSON(map[string]any{
		"ok": false, "error_code": 400,
		"description": "Bad Request: group chat was upgraded to a supergroup chat",
		"parameters":  map[string]any{"migrate_to_chat_id": newChatID},
	})}
}
