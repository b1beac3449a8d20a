package channels

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/fake"
)

// sendTelegram sends m through a fresh fake and returns the request it got.
func sendTelegram(t *testing.T, m herald.Message) fake.TelegramRequest {
	t.Helper()
	f := fake.NewTelegram(t)
	tg := newTestTelegram(t, f.URL(), nil)
	if err := tg.Send(context.Background(), telegramNotification(testBotToken, testChatID, m)); err != nil {
		t.Fatalf("Send: %v", err) // the fake answers 400 on HTML Telegram would refuse
	}
	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake got %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

func TestTelegramStreaky(t *testing.T) {
	r := sendTelegram(t, streakyMessage("octocat", 42, "You haven't committed today! Keep it going.", nil))
	wantHTML := "<b>⚠️ GitHub Streak Alert</b>\n\n" +
		"You haven't committed today! Keep it going.\n\n" +
		"👤 <b>GitHub Username:</b> octocat\n" +
		"🔥 <b>Current Streak:</b> 42 days\n\n" +
		"<i>Streaky - Never lose your GitHub streak</i>"
	if r.Text != wantHTML {
		t.Errorf("text:\n got %q\nwant %q", r.Text, wantHTML)
	}
	// The same lines Streaky's proxy sends (CONTRACT.md §5), once Telegram
	// has applied the formatting.
	wantVisible := strings.Join([]string{
		"⚠️ GitHub Streak Alert",
		"",
		"You haven't committed today! Keep it going.",
		"",
		"👤 GitHub Username: octocat",
		"🔥 Current Streak: 42 days",
		"",
		"Streaky - Never lose your GitHub streak",
	}, "\n")
	if r.Visible != wantVisible {
		t.Errorf("visible:\n got %q\nwant %q", r.Visible, wantVisible)
	}
	if r.Token != testBotToken || r.Method != "sendMessage" || r.ParseMode != "HTML" {
		t.Errorf("token/method/parse mode: %q %q %q", r.Token, r.Method, r.ParseMode)
	}
	if id, ok := r.Body["chat_id"].(string); !ok || id != testChatID {
		t.Errorf("chat_id = %#v, want the string %q", r.Body["chat_id"], testChatID)
	}
	lpo, _ := r.Body["link_preview_options"].(map[string]any)
	if lpo["is_disabled"] != true {
		t.Errorf("link_preview_options = %#v", r.Body["link_preview_options"])
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestTelegramHostileText(t *testing.T) {
	hostile := []string{
		"<script>alert(1)</script>",
		"a & b",
		"*_[",
		"&amp; &lt; &#60; &#x3C; &bogus;",
		"</b></i><b>",
		`"quotes" and 'apostrophes'`,
		"<a href=\"https://evil.example\">click</a>",
		"<<<>>>&&&",
		"`code` ~strike~ ||spoiler|| _italic_ *bold* [link](http://x)",
		"tab\tnew\nline",
	}
	for _, s := range hostile {
		t.Run(s, func(t *testing.T) {
			m := streakyMessage(s, 7, "Text: "+s, nil)
			m.Title = "Title " + s
			m.Footer = "Footer " + s
			m.Fields = append(m.Fields, herald.Field{Icon: s, Name: s, Value: s})
			r := sendTelegram(t, m)
			want := strings.Join([]string{
				"Title " + s, "", "Text: " + s, "",
				"👤 GitHub Username: " + s,
				"🔥 Current Streak: 7 days",
				s + " " + s + ": " + s, "",
				"Footer " + s,
			}, "\n")
			if r.Visible != want {
				t.Errorf("visible text differs:\n got %q\nwant %q\nhtml %q", r.Visible, want, r.Text)
			}
		})
	}
}

func TestTelegramTitleLink(t *testing.T) {
	hrefRE := regexp.MustCompile(`href="([^"]*)"`)
	tests := []struct {
		url, wantHref string // wantHref "" means no link
	}{
		{"https://github.com/octocat", "https://github.com/octocat"},
		{`https://example.com/?q="><script>&x=1`, "https://example.com/?q=&quot;&gt;&lt;script&gt;&amp;x=1"},
		{"javascript:alert(1)", ""},
		{"tg://resolve?domain=x", ""},
		{"/relative", ""},
		{"http://", ""},
	}
	for _, tt := range tests {
		r := sendTelegram(t, herald.Message{Title: "Title", Text: "body", URL: tt.url})
		m := hrefRE.FindStringSubmatch(r.Text)
		switch {
		case tt.wantHref == "" && m != nil:
			t.Errorf("%q: kept as link: %s", tt.url, r.Text)
		case tt.wantHref != "" && (m == nil || m[1] != tt.wantHref):
			t.Errorf("%q: href %v, want %q (%s)", tt.url, m, tt.wantHref, r.Text)
		}
		if !strings.HasPrefix(r.Visible, "Title\n\nbody") {
			t.Errorf("%q: visible %q", tt.url, r.Visible)
		}
	}
}

func TestTelegramLengthLimit(t *testing.T) {
	fieldsOf := func(n int, value string) []herald.Field {
		var fs []herald.Field
		for range n {
			fs = append(fs, herald.Field{Icon: "🔥", Name: "N&", Value: value})
		}
		return fs
	}
	tests := []struct {
		name     string
		m        herald.Message
		textCut  bool // the text part must end with "…"
		keepRest bool // title, fields and footer unchanged
	}{
		{name: "emoji text (2 UTF-16 units each)", m: streakyMessage("octocat", 3, strings.Repeat("😀", 5000), nil), textCut: true, keepRest: true},
		{name: "escapes count once", m: herald.Message{Title: "T", Text: strings.Repeat("<&>", 3000)}, textCut: true, keepRest: true},
		{name: "mixed multibyte", m: herald.Message{Title: "Tïtle", Text: strings.Repeat("aé😀中", 2000), Footer: "f"}, textCut: true, keepRest: true},
		{name: "cut lands inside a pair", m: herald.Message{Text: "a" + strings.Repeat("😀", 2100)}, textCut: true, keepRest: true},
		{name: "huge fields", m: herald.Message{Title: "T", Text: "text", Fields: fieldsOf(10, strings.Repeat("v&", 1000)), Footer: "foot"}},
		{name: "thousands of fields", m: herald.Message{Title: "T", Text: "text", Fields: fieldsOf(3000, "v")}},
		{name: "huge title", m: herald.Message{Title: strings.Repeat("<T>", 5000), Text: strings.Repeat("x", 5000)}},
		{name: "everything huge", m: herald.Message{Title: strings.Repeat("😀", 5000), Text: strings.Repeat("😀", 5000), Footer: strings.Repeat("😀", 5000), Fields: fieldsOf(50, strings.Repeat("😀", 500))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sendTelegram(t, tt.m)
			n := fake.UTF16Len(r.Visible)
			if n > telegramMaxText {
				t.Fatalf("visible text is %d UTF-16 units", n)
			}
			if !utf8.ValidString(r.Text) || strings.ContainsRune(r.Text, utf8.RuneError) {
				t.Fatal("a rune was split")
			}
			if tt.textCut {
				// Only what is needed is cut (a surrogate pair may leave one unit free).
				if n < telegramMaxText-1 {
					t.Errorf("visible %d units, want %d or one less", n, telegramMaxText)
				}
				sections := strings.Split(r.Visible, "\n\n")
				text := sections[0]
				if tt.m.Title != "" {
					text = sections[1]
				}
				if !strings.HasSuffix(text, "…") {
					t.Errorf("text part does not end with …: %q", text[max(0, len(text)-20):])
				}
			}
			if tt.keepRest {
				if tt.m.Title != "" && !strings.HasPrefix(r.Visible, tt.m.Title+"\n\n") {
					t.Error("title changed")
				}
				if tt.m.Footer != "" && !strings.HasSuffix(r.Visible, "\n\n"+tt.m.Footer) {
					t.Error("footer changed")
				}
				for _, f := range tt.m.Fields {
					if !strings.Contains(r.Visible, f.Icon+" "+f.Name+": "+f.Value) {
						t.Errorf("field %q changed", f.Name)
					}
				}
			}
		})
	}
}

func TestTelegramMigrate(t *testing.T) {
	const oldID, newID = "-12345", int64(-1009999999999)
	t.Run("followed once to the new id", func(t *testing.T) {
		f := fake.NewTelegram(t)
		f.Script(func(r fake.TelegramRequest, n int) fake.Response {
			if r.ChatID == oldID {
				return fake.RespondTelegramMigrate(newID)
			}
			return fake.Response{}
		})
		tg := newTestTelegram(t, f.URL(), nil)
		if err := tg.Send(context.Background(), telegramNotification(testBotToken, oldID, herald.Message{Text: "hi"})); err != nil {
			t.Fatalf("Send: %v", err)
		}
		reqs := f.Requests()
		if len(reqs) != 2 || reqs[0].ChatID != oldID || reqs[1].ChatID != "-1009999999999" {
			t.Fatalf("requests: %d, chat ids %v", len(reqs), chatIDs(reqs))
		}
		if _, isString := reqs[1].Body["chat_id"].(string); !isString || reqs[1].Text != reqs[0].Text {
			t.Errorf("resend differs: %#v", reqs[1].Body)
		}
	})
	t.Run("resend result is returned", func(t *testing.T) {
		f := fake.NewTelegram(t)
		f.Script(func(r fake.TelegramRequest, n int) fake.Response {
			if r.ChatID == oldID {
				return fake.RespondTelegramMigrate(newID)
			}
			return fake.RespondTelegramBlocked()
		})
		err := newTestTelegram(t, f.URL(), nil).Send(context.Background(), telegramNotification(testBotToken, oldID, herald.Message{Text: "hi"}))
		if !errors.Is(err, herald.ErrPermanent) || herald.StatusCode(err) != 403 {
			t.Fatalf("err = %v, want the resend's permanent 403", err)
		}
		assertNoSecrets(t, err, testBotToken, oldID, "1009999999999")
	})
	t.Run("not chased twice", func(t *testing.T) {
		f := fake.NewTelegram(t)
		f.Script(alwaysTelegram(fake.RespondTelegramMigrate(newID)))
		err := newTestTelegram(t, f.URL(), nil).Send(context.Background(), telegramNotification(testBotToken, oldID, herald.Message{Text: "hi"}))
		if !errors.Is(err, herald.ErrPermanent) || f.Count() != 2 {
			t.Fatalf("err = %v after %d requests, want permanent after 2", err, f.Count())
		}
	})
}

func chatIDs(reqs []fake.TelegramRequest) []string {
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.ChatID)
	}
	return ids
}

func TestTelegramRateLimited(t *testing.T) {
	tests := []struct {
		name string
		resp fake.Response
		max  time.Duration
		want time.Duration
	}{
		{name: "parameters.retry_after", resp: fake.RespondTelegram429(17), want: 17 * time.Second},
		{name: "Retry-After header only", resp: fake.Response{Status: 429, Header: http.Header{"Retry-After": {"5"}}, Body: `{"ok":false,"error_code":429,"description":"Too Many Requests"}`}, want: 5 * time.Second},
		{name: "nothing said", resp: fake.Response{Status: 429}, want: telegramDefaultRetryAfter},
		{name: "clamped", resp: fake.RespondTelegram429(86400), max: 10 * time.Minute, want: 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake.NewTelegram(t)
			f.Script(alwaysTelegram(tt.resp))
			tg, err := NewTelegram(TelegramConfig{APIBase: f.URL(), MaxRetryAfter: tt.max}, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = tg.Send(context.Background(), telegramNotification(testBotToken, testChatID, herald.Message{Text: "x"}))
			var ra *herald.RetryAfterError
			if !errors.As(err, &ra) || ra.After != tt.want || ra.Global {
				t.Fatalf("err = %v, want RetryAfterError after %v", err, tt.want)
			}
		})
	}
}

func TestTelegramRedirectNotFollowed(t *testing.T) {
	var evilHits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		_, _ = w.Write([]byte(`{"ok":true,"result":{}}`))
	}))
	defer evil.Close()
	f := fake.NewTelegram(t)
	f.Script(alwaysTelegram(fake.Response{Status: http.StatusFound, Header: http.Header{"Location": {evil.URL + "/steal"}}}))
	tg := newTestTelegram(t, f.URL(), &http.Client{})
	err := tg.Send(context.Background(), telegramNotification(testBotToken, testChatID, herald.Message{Text: "x"}))
	if herald.StatusCode(err) != http.StatusFound || evilHits.Load() != 0 {
		t.Fatalf("err = %v, evil hits %d: redirect followed", err, evilHits.Load())
	}
}

func TestTelegramCheckTarget(t *testing.T) {
	tg := newTestTelegram(t, "", nil)
	tests := []struct {
		name, token, chat string
		ok                bool
	}{
		{"numeric chat", "123456:ABC-def_ghi", "123456789", true},
		{"group chat", "1:a", "-123456789", true},
		{"supergroup", "123:abc", "-1001234567890", true},
		{"channel username", "123:abc", "@my_channel", true},
		{"empty token", "", "5550001", false},
		{"token without colon", "123456ABC", "5550001", false},
		{"token letters in id", "12a:ABC", "5550001", false},
		{"token bad char", "123:AB/C", "5550001", false},
		{"token with space", "123:ABC DEF", "5550001", false},
		{"token path trick", "123:abc/../../x", "5550001", false},
		{"empty chat", "123:abc", "", false},
		{"chat with letters", "123:abc", "12a", false},
		{"chat too long", "123:abc", strings.Repeat("1", 21), false},
		{"username too short", "123:abc", "@abcd", false},
		{"username bad char", "123:abc", "@abc-def", false},
		{"chat double minus", "123:abc", "--1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tg.CheckTarget(herald.Target{BotToken: tt.token, ChatID: tt.chat})
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckTarget: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidTarget) || !errors.Is(err, herald.ErrPermanent) {
				t.Fatalf("err = %v, want ErrInvalidTarget and ErrPermanent", err)
			}
			assertNoSecrets(t, err, tt.token, tt.chat)
		})
	}
}

func TestTelegramDestination(t *testing.T) {
	tg := newTestTelegram(t, "", nil)
	key := tg.Destination(herald.Target{BotToken: testBotToken, ChatID: testChatID})
	if !regexp.MustCompile(`^telegram:7654321\.[0-9a-f]{16}:[0-9a-f]{16}$`).MatchString(key) {
		t.Fatalf("Destination = %q", key)
	}
	if strings.Contains(key, "TgTok_SeCrEt") || strings.Contains(key, strings.TrimPrefix(testChatID, "-")) {
		t.Fatalf("Destination leaks: %q", key)
	}
	if other := tg.Destination(herald.Target{BotToken: testBotToken, ChatID: "-1"}); other == key {
		t.Error("two chats share a key")
	}
	// A token that shares only the public bot id is another bot: its
	// failures and 429s are not the victim's.
	other := tg.Destination(herald.Target{BotToken: "7654321:another-secret", ChatID: testChatID})
	if other == key || strings.SplitN(other, ":", 3)[1] == strings.SplitN(key, ":", 3)[1] {
		t.Errorf("a token sharing only the bot id shares the key: %q and %q", other, key)
	}
	if a, b := tg.Destination(herald.Target{BotToken: "1:a", ChatID: "@MyChannel"}), tg.Destination(herald.Target{BotToken: "1:a", ChatID: "@mychannel"}); a != b {
		t.Error("@usernames are case-insensitive")
	}
	if got := tg.Destination(herald.Target{BotToken: "garbage", ChatID: "1"}); !strings.HasPrefix(got, "telegram:invalid:") {
		t.Errorf("invalid token: %q", got)
	}
}

func TestTelegramConfigValidate(t *testing.T) {
	for _, bad := range []TelegramConfig{
		{MaxRetryAfter: -time.Second},
		{APIBase: "api.telegram.org"},
		{APIBase: "ftp://api.telegram.org"},
		{APIBase: "https://user:pw@api.telegram.org"},
		{APIBase: "https://api.telegram.org/?x=1"},
		{APIBase: "https://api.telegram.org/#f"},
		{APIBase: "://"},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
	tg := newTestTelegram(t, "https://api.telegram.org/", nil)
	if tg.cfg.APIBase != DefaultTelegramAPIBase || tg.cfg.MaxRetryAfter != DefaultMaxRetryAfter {
		t.Errorf("defaults: %+v", tg.cfg)
	}
	if tg := newTestTelegram(t, "", nil); tg.cfg.APIBase != DefaultTelegramAPIBase {
		t.Errorf("default base: %q", tg.cfg.APIBase)
	}
}
