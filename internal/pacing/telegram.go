package pacing

import (
	"strings"
	"time"

	"golang.org/x/time/rate"
)

const (
	// tightenFor is how long a rate stays lowered after a Telegram 429.
	tightenFor = time.Minute
	// maxTighten caps the halvings: a rate never drops below 1/8 of its
	// configured value.
	maxTighten = 3
	// botStrikes is how many 429s within tightenFor, on any of a bot's chats,
	// lower the bot's own rate: one 429 is blamed on its chat.
	botStrikes = 2
)

// tgLimit is a Telegram rate that is halved after 429s and restored once
// tightenFor has passed without one. Only touched under its shard's lock.
type tgLimit struct {
	base       rate.Limit
	lim        *rate.Limiter
	level      int // halvings in force
	tightUntil time.Time
	last       time.Time // latest time given to lim
}

// at returns now, or the latest time already given to the limiter if that
// is later. Callers read the clock before taking the lock, so times can
// arrive slightly out of order, and rate.Limiter over-grants when its time
// goes backwards.
func (t *tgLimit) at(now time.Time) time.Time {
	if now.Before(t.last) {
		return t.last
	}
	t.last = now
	return now
}

func newTGLimit(perSecond float64) tgLimit {
	// A burst of one: Telegram's guidance is a spacing, and a burst is what
	// draws its 429s. The first send is free.
	return tgLimit{base: rate.Limit(perSecond), lim: rate.NewLimiter(rate.Limit(perSecond), 1)}
}

// restore lifts the tightening once it has run out.
func (t *tgLimit) restore(now time.Time) {
	if t.level > 0 && !now.Before(t.tightUntil) {
		t.level = 0
		t.lim.SetLimitAt(t.at(now), t.base)
	}
}

// tighten halves the rate (down to base/2^maxTighten) until now+tightenFor,
// or later than that when the 429 asked to wait longer.
func (t *tgLimit) tighten(now time.Time, after time.Duration) {
	t.level = min(t.level+1, maxTighten)
	t.lim.SetLimitAt(t.at(now), t.base/rate.Limit(int(1)<<t.level))
	t.tightUntil = now.Add(max(after, 0) + tightenFor)
}

// tgChat is one chat's pacing state.
type tgChat struct {
	tgLimit
	blockedUntil time.Time // a 429's retry_after
	inflight     int       // sends on their way (Config.MaxInFlight caps it)
	later        spread    // returns of jobs given back while MaxInFlight sends are out
}

func (c *tgChat) busy() bool { return c.inflight > 0 }

// tgBot is one bot's pacing state over all its chats.
type tgBot struct {
	tgLimit
	strikes   int       // 429s in the current strike period
	strikeEnd time.Time // end of the strike period, tightenFor after its first 429
}

func (*tgBot) busy() bool { return false }

// strike counts one 429 on any of the bot's chats and tightens the bot after
// botStrikes of them within tightenFor.
func (b *tgBot) strike(now time.Time, after time.Duration) {
	if !now.Before(b.strikeEnd) {
		b.strikes = 0
		b.strikeEnd = now.Add(tightenFor)
	}
	b.strikes++
	if b.strikes >= botStrikes {
		b.strikes = 0
		b.tighten(now, after)
	}
}

// telegramBotKey returns the bot's key, "telegram:<bot id>.<token hash>", from a chat's
// destination key "telegram:<bot id>.<token hash>:<chat hash>".
func telegramBotKey(dest string) string {
	rest, ok := strings.CutPrefix(dest, "telegram:")
	if !ok {
		return dest
	}
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		return dest[:len("telegram:")+i]
	}
	return dest
}

// isGroupChat reports whether a chat id names a group, supergroup or channel
// (negative ids, or a public @username, which only channels and groups
// have), which Telegram limits to 20 messages per minute.
func isGroupChat(chatID string) bool {
	return strings.HasPrefix(chatID, "-") || strings.HasPrefix(chatID, "@")
}
