package pacing

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
)

const (
	botKey   = "telegram:123456"
	chatKey1 = botKey + ":0011223344556677"
	chatKey2 = botKey + ":8899aabbccddeeff"
	chatKey3 = botKey + ":0f0f0f0f0f0f0f0f"
	otherBot = "telegram:654321:0011223344556677"
)

// sendTelegram runs one Telegram send to key (chatID gives the chat's sign)
// through the middleware; respond returns the send's error.
func (tp *testPacer) sendTelegramVia(t *testing.T, key, chatID string, respond func() error) (called bool, err error) {
	t.Helper()
	h := tp.Middleware(keyOfTarget)(func(context.Context, *consumer.Delivery) error {
		called = true
		if respond == nil {
			return nil
		}
		return respond()
	})
	d := &consumer.Delivery{Notification: herald.Notification{
		JobID: "job", Channel: herald.ChannelTelegram, Target: herald.Target{BotToken: key, ChatID: chatID},
	}}
	return called, h(context.Background(), d)
}

func telegram429(after time.Duration) error {
	return &herald.RetryAfterError{After: after, Err: &herald.DestinationError{Channel: herald.ChannelTelegram, StatusCode: 429}}
}

func TestTelegramBotKey(t *testing.T) {
	tests := []struct{ dest, want string }{
		{"telegram:123456:0011223344556677", "telegram:123456"},
		{"telegram:invalid:0011", "telegram:invalid"},
		{"telegram:123456", "telegram:123456"},
		{"other", "other"},
	}
	for _, tt := range tests {
		if got := telegramBotKey(tt.dest); got != tt.want {
			t.Errorf("telegramBotKey(%q) = %q, want %q", tt.dest, got, tt.want)
		}
	}
	for id, want := range map[string]bool{"12345": false, "-12345": true, "-1001234567890": true, "@channel_name": true} {
		if got := isGroupChat(id); got != want {
			t.Errorf("isGroupChat(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestTelegramPerChatRate(t *testing.T) {
	tp := newTestPacer(t, Config{})
	if called, err := tp.sendTelegramVia(t, chatKey1, "42", nil); !called || err != nil {
		t.Fatalf("first: called %v, err %v", called, err)
	}
	// Another chat of the same bot is not held by the first chat's rate.
	if called, err := tp.sendTelegramVia(t, chatKey2, "43", nil); !called || err != nil {
		t.Fatalf("other chat: called %v, err %v", called, err)
	}
	if s := tp.clock.slept(); len(s) > 1 || len(s) == 1 && s[0] > 50*time.Millisecond {
		t.Fatalf("slept %v for different chats", s)
	}
	// The same chat again: one message per second.
	if called, err := tp.sendTelegramVia(t, chatKey1, "42", nil); !called || err != nil {
		t.Fatalf("second: called %v, err %v", called, err)
	}
	if s := tp.clock.slept(); len(s) != 1 || s[0] < 900*time.Millisecond || s[0] > time.Second {
		t.Errorf("slept %v, want about 1s", s)
	}
	if got := tp.waits("telegram", "destination"); got != 1 {
		t.Errorf("pacing waits{telegram,destination} = %v, want 1", got)
	}
}

func TestTelegramGroupRate(t *testing.T) {
	tp := newTestPacer(t, Config{})
	if called, err := tp.sendTelegramVia(t, chatKey1, "-1001234567890", nil); !called || err != nil {
		t.Fatalf("first: called %v, err %v", called, err)
	}
	// 20 per minute: the next message to the group is 3 s away, beyond
	// MaxHold: the job is given back.
	called, err := tp.sendTelegramVia(t, chatKey1, "-1001234567890", nil)
	if called {
		t.Fatal("second group message sent at once")
	}
	if after := pacedAfter(t, err); after < 2900*time.Millisecond || after > 3*time.Second {
		t.Errorf("After = %s, want about 3s", after)
	}
	if got := tp.waits("telegram", "group"); got != 1 {
		t.Errorf("pacing waits{telegram,group} = %v, want 1", got)
	}
	// The refused job did not use up the group's next slot.
	tp.clock.Advance(3 * time.Second)
	if called, err := tp.sendTelegramVia(t, chatKey1, "-1001234567890", nil); !called || err != nil {
		t.Fatalf("after 3s: called %v, err %v", called, err)
	}
	if s := tp.clock.slept(); len(s) != 0 {
		t.Errorf("slept %v, want none", s)
	}
}

func TestTelegramPerBotRate(t *testing.T) {
	tp := newTestPacer(t, Config{Telegram: TelegramConfig{PerBot: 2}})
	// Two per second for the bot, without a burst: three chats are served
	// 0.5 s apart.
	for _, key := range []string{chatKey1, chatKey2, chatKey3} {
		if called, err := tp.sendTelegramVia(t, key, "1", nil); !called || err != nil {
			t.Fatalf("%s: called %v, err %v", key, called, err)
		}
	}
	s := tp.clock.slept()
	if len(s) != 2 {
		t.Fatalf("slept %v, want two waits of about 0.5s", s)
	}
	for _, d := range s {
		if d < 400*time.Millisecond || d > 500*time.Millisecond {
			t.Errorf("slept %v, want two waits of about 0.5s", s)
		}
	}
	if got := tp.waits("telegram", "bot"); got != 2 {
		t.Errorf("pacing waits{telegram,bot} = %v, want 2", got)
	}
	// Another bot is independent.
	if called, err := tp.sendTelegramVia(t, otherBot, "1", nil); !called || err != nil {
		t.Fatalf("other bot: called %v, err %v", called, err)
	}
	if s := tp.clock.slept(); len(s) != 0 {
		t.Errorf("other bot slept %v", s)
	}
}

func TestTelegram429BlocksAndTightens(t *testing.T) {
	tp := newTestPacer(t, Config{Telegram: TelegramConfig{PerChat: 10, PerBot: 1e6}, MaxHold: 5 * time.Second})
	limited := telegram429(3 * time.Second)
	if _, err := tp.sendTelegramVia(t, chatKey1, "42", func() error { return limited }); err != limited {
		t.Fatalf("err = %v, want the 429 unchanged", err)
	}
	// The chat waits what Telegram asked.
	start := tp.clock.Now()
	if called, err := tp.sendTelegramVia(t, chatKey1, "42", nil); !called || err != nil {
		t.Fatalf("after the 429: called %v, err %v", called, err)
	}
	if got := tp.clock.Now().Sub(start); got != 3*time.Second {
		t.Errorf("held %s, want 3s", got)
	}
	// Then its rate is halved (10/s → 5/s: 200 ms apart) for a minute.
	tp.clock.slept()
	tp.sendTelegramVia(t, chatKey1, "42", nil)
	if s := tp.clock.slept(); len(s) != 1 || s[0] < 190*time.Millisecond || s[0] > 200*time.Millisecond {
		t.Errorf("slept %v, want 200ms (halved rate)", s)
	}
	// One 429 is blamed on its chat: the bot is not tightened, and other
	// chats are not held.
	tp.sendTelegramVia(t, chatKey2, "43", nil)
	tp.sendTelegramVia(t, chatKey3, "44", nil)
	for _, d := range tp.clock.slept() {
		if d > time.Millisecond {
			t.Errorf("other chats slept %s", d)
		}
	}
	// A minute (plus the 429's wait) later the rate is restored.
	tp.clock.Advance(tightenFor + 3*time.Second)
	tp.sendTelegramVia(t, chatKey1, "42", nil)
	tp.sendTelegramVia(t, chatKey1, "42", nil)
	if s := tp.clock.slept(); len(s) != 1 || s[0] < 90*time.Millisecond || s[0] > 100*time.Millisecond {
		t.Errorf("slept %v, want 100ms (restored rate)", s)
	}
}

func TestTelegramRepeated429sTightenBot(t *testing.T) {
	tp := newTestPacer(t, Config{Telegram: TelegramConfig{PerChat: 100, PerBot: 10}, MaxHold: 5 * time.Second})
	// 429s on two chats of the bot within a minute.
	tp.sendTelegramVia(t, chatKey1, "1", func() error { return telegram429(time.Second) })
	tp.clock.Advance(time.Second)
	tp.sendTelegramVia(t, chatKey2, "2", func() error { return telegram429(time.Second) })
	tp.clock.Advance(time.Second)
	tp.clock.slept()
	// The bot is at 5/s now: two sends to fresh chats are 200 ms apart.
	tp.sendTelegramVia(t, chatKey3, "3", nil)
	tp.sendTelegramVia(t, botKey+":1111111111111111", "4", nil)
	if s := tp.clock.slept(); len(s) != 1 || s[0] < 190*time.Millisecond || s[0] > 200*time.Millisecond {
		t.Errorf("slept %v, want 200ms (bot rate halved)", s)
	}
	// Another bot is unaffected.
	tp.sendTelegramVia(t, otherBot, "1", nil)
	if s := tp.clock.slept(); len(s) != 0 {
		t.Errorf("other bot slept %v", s)
	}
}

func TestTelegramPacedErrorsDoNotTighten(t *testing.T) {
	tp := newTestPacer(t, Config{Telegram: TelegramConfig{PerChat: 10}})
	open := &herald.RetryAfterError{After: time.Minute, Err: herald.ErrCircuitOpen}
	if _, err := tp.sendTelegramVia(t, chatKey1, "1", func() error { return open }); !errors.Is(err, herald.ErrCircuitOpen) {
		t.Fatalf("err = %v", err)
	}
	tp.clock.Advance(time.Second)
	tp.sendTelegramVia(t, chatKey1, "1", nil)
	tp.sendTelegramVia(t, chatKey1, "1", nil)
	if s := tp.clock.slept(); len(s) != 1 || s[0] > 100*time.Millisecond {
		t.Errorf("slept %v, want 100ms: a breaker's wait is not a 429", s)
	}
}

// TestTelegramInFlightCap: with MaxInFlight sends to a chat on their way the
// next is given back at once, without holding a worker; other chats are
// untouched, and an answer frees a slot.
func TestTelegramInFlightCap(t *testing.T) {
	tp := newTestPacer(t, Config{MaxInFlight: 2, Telegram: TelegramConfig{PerChat: 1e6, PerBot: 1e6}})
	const chat, other, bot = "telegram:1.aaaa:bbbb", "telegram:1.aaaa:cccc", "telegram:1.aaaa"
	now := tp.clock.Now()
	a := tp.acquireTelegram(chat, bot, false, now, time.Second)
	b := tp.acquireTelegram(chat, bot, false, now, time.Second)
	if !a.ok || !b.ok {
		t.Fatalf("first two sends: %+v %+v, want ok", a, b)
	}
	doneA, _ := tp.sendingTelegram(a), tp.sendingTelegram(b)
	if g := tp.acquireTelegram(chat, bot, false, now, time.Second); g.ok || !g.unknown {
		t.Fatalf("third send with two in flight: %+v, want an unknown wait", g)
	}
	if err := tp.hold(context.Background(), chTelegram, grant{unknown: true, scope: scopeDestination}, time.Second, new([nScopes]bool)); pacedAfter(t, err) != unknownRetry {
		t.Fatalf("hold on an unknown wait = %v, want the job given back after %s", err, unknownRetry)
	}
	if s := tp.clock.slept(); len(s) != 0 {
		t.Errorf("the worker slept %v waiting for a busy chat", s)
	}
	if g := tp.acquireTelegram(other, bot, false, now, time.Second); !g.ok {
		t.Fatalf("another chat: %+v, want ok", g)
	}
	doneA()
	if g := tp.acquireTelegram(chat, bot, false, now, time.Second); !g.ok {
		t.Fatalf("after an answer: %+v, want ok", g)
	}
}
