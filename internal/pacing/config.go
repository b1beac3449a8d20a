package pacing

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Defaults of Config. A zero field takes its default.
const (
	// DefaultMaxHold is the longest a send is held in-process before it goes
	// out. Longer waits hand the job back to JetStream (NakWithDelay), which
	// frees the worker; shorter ones are cheaper to sleep through than a
	// redelivery round trip.
	DefaultMaxHold = 2 * time.Second
	// DefaultMaxInFlight is how many sends to one destination may be on
	// their way at once. Discord's webhook buckets allow about 5 per 2 s and
	// answer in well under a second, so 2 costs a healthy webhook nothing;
	// a destination that hangs holds at most 2 workers until the send
	// timeout, not the pool.
	DefaultMaxInFlight = 2
	// DefaultMaxDestinations bounds the per-destination state of each kind
	// (Discord webhooks, Telegram chats, Telegram bots), so millions of
	// destinations cannot exhaust memory. An entry costs a few hundred bytes.
	DefaultMaxDestinations = 100_000
	// DefaultMaxMemory bounds the bytes of each kind of per-destination
	// state (see Config.MaxMemory): 8 MiB holds about 23,000 Discord
	// webhooks' learned buckets or 20,000 Telegram chats, far more than are
	// sent to within a few seconds, and the three kinds together stay under
	// 25 MiB of a 512 MB machine however many destinations one client names.
	DefaultMaxMemory = 8 << 20

	// DefaultDiscordGlobalRate is Discord's global limit: 50 requests per
	// second per IP address. Webhook calls carry no bot token, so every
	// webhook this process calls shares it.
	DefaultDiscordGlobalRate = 50
	// DefaultDiscordInvalidBudget is half of the 10,000 invalid requests per 10
	// minutes after which Cloudflare bans an IP for hours: the other half is
	// headroom for other processes behind the same IP and for responses
	// already in flight.
	DefaultDiscordInvalidBudget = 5000
	// DefaultDiscordInvalidWindow is Cloudflare's sliding window for invalid
	// requests.
	DefaultDiscordInvalidWindow = 10 * time.Minute
	// DefaultDiscordUnverifiedShare is the part of InvalidBudget that sends
	// to destinations nobody has verified (registrations' verification
	// messages) may spend: a tenth, so the public can never take what
	// deliveries to verified destinations need.
	DefaultDiscordUnverifiedShare = 0.1
	// DefaultBadDestinationTTL is how long a destination that refused a
	// verification message (401, 403, 404) is remembered: no second
	// verification goes to it meanwhile.
	DefaultBadDestinationTTL = time.Hour

	// DefaultTelegramPerChat is Telegram's guidance for one chat: about one
	// message per second.
	DefaultTelegramPerChat = 1.0
	// DefaultTelegramPerGroup is Telegram's guidance for groups: 20 messages
	// per minute.
	DefaultTelegramPerGroup = 20.0 / 60
	// DefaultTelegramPerBot is Telegram's guidance for one bot over all its
	// chats: about 30 messages per second.
	DefaultTelegramPerBot = 30.0
)

// Bounds that guard against typos in configuration.
const (
	maxMaxHold     = time.Minute
	minInvalidSpan = time.Second
	// minMaxMemory is room for a few destinations of every kind.
	minMaxMemory = 64 << 10
)

// Config configures a Pacer. The zero value is valid: every zero field takes
// its Default* value.
type Config struct {
	Discord  DiscordConfig
	Telegram TelegramConfig
	// MaxHold is the longest wait held in-process (the worker sleeps) before a
	// send; DefaultMaxHold when 0. A job that would wait longer is returned as
	// *herald.RetryAfterError{After: wait, Err: herald.ErrPaced}, which the
	// consumer turns into NakWithDelay(wait) without using an attempt. Keep it
	// well below the consumer's DrainTimeout. At most one minute.
	MaxHold time.Duration
	// MaxInFlight caps the sends to one destination (a Discord webhook, a
	// Telegram chat) on their way at once (pacing.max_in_flight);
	// DefaultMaxInFlight when 0. A job for a destination at its cap is given
	// back at once (NakWithDelay, no attempt used), so it never holds a
	// worker.
	MaxInFlight int
	// MaxDestinations bounds the entries kept for each kind of destination
	// state (Discord webhooks, Telegram chats, Telegram bots); least recently
	// used idle entries are evicted first. DefaultMaxDestinations when 0.
	MaxDestinations int
	// MaxMemory bounds the bytes kept for each kind of destination state
	// (pacing.max_memory), counted as the heap measures them: an entry's
	// fixed size (288 bytes for a Discord webhook, 336 for a Telegram chat or
	// bot) plus its key (about 64). The least
	// recently used idle entries are evicted first, whichever of MaxMemory
	// and MaxDestinations is reached first. It also bounds the destinations
	// remembered as having refused a verification message. DefaultMaxMemory
	// when 0.
	MaxMemory int64
}

// DiscordConfig paces Discord (config keys channels.discord.*).
type DiscordConfig struct {
	// GlobalRate is the most requests per second sent to Discord from this
	// process over all webhooks together (channels.discord.global_rate);
	// DefaultDiscordGlobalRate when 0. When N worker processes share one IP
	// address, set it to DefaultDiscordGlobalRate/N. Rates of 1 and above are
	// enforced as ⌊GlobalRate⌋ requests in any window of ⌊GlobalRate⌋/GlobalRate
	// seconds (one second for whole rates); below 1, as one request per
	// 1/GlobalRate seconds.
	GlobalRate float64
	// InvalidBudget is how many invalid responses (401, 403, and 429 other than
	// scope "shared") may be received within InvalidWindow before every Discord
	// send is suspended until the window drops below it
	// (channels.discord.invalid_budget); DefaultDiscordInvalidBudget when 0.
	InvalidBudget int
	// InvalidWindow is the sliding window of InvalidBudget, counted in 60
	// buckets; DefaultDiscordInvalidWindow when 0, at least one second.
	InvalidWindow time.Duration
	// UnverifiedShare is the fraction of InvalidBudget that verification
	// messages (herald.SourceVerification jobs) may spend, counting each
	// from the moment it is sent (channels.discord.unverified_share);
	// DefaultDiscordUnverifiedShare when 0, at most 0.5. Past it they wait
	// for the window while other sends go on.
	UnverifiedShare float64
	// BadDestinationTTL is how long a destination that answered a
	// verification message with 401, 403 or 404 is remembered: a second
	// verification to it fails at once, without a request
	// (channels.discord.bad_destination_ttl); DefaultBadDestinationTTL when 0.
	BadDestinationTTL time.Duration
}

// TelegramConfig paces Telegram (config keys channels.telegram.*). Rates are
// messages per second; Telegram publishes guidance, not hard limits, so every
// rate is halved for a while after Telegram answers 429.
type TelegramConfig struct {
	// PerChat is the rate for one private chat
	// (channels.telegram.per_chat_rate); DefaultTelegramPerChat when 0.
	PerChat float64
	// PerGroup is the rate for one group, supergroup or channel: a chat id
	// that is negative or an @username (channels.telegram.per_group_rate);
	// DefaultTelegramPerGroup when 0.
	PerGroup float64
	// PerBot is the rate for one bot over all its chats
	// (channels.telegram.per_bot_rate); DefaultTelegramPerBot when 0.
	PerBot float64
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.MaxHold == 0 {
		c.MaxHold = DefaultMaxHold
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxDestinations == 0 {
		c.MaxDestinations = DefaultMaxDestinations
	}
	if c.MaxMemory == 0 {
		c.MaxMemory = DefaultMaxMemory
	}
	d := &c.Discord
	if d.GlobalRate == 0 {
		d.GlobalRate = DefaultDiscordGlobalRate
	}
	if d.InvalidBudget == 0 {
		d.InvalidBudget = DefaultDiscordInvalidBudget
	}
	if d.InvalidWindow == 0 {
		d.InvalidWindow = DefaultDiscordInvalidWindow
	}
	if d.UnverifiedShare == 0 {
		d.UnverifiedShare = DefaultDiscordUnverifiedShare
	}
	if d.BadDestinationTTL == 0 {
		d.BadDestinationTTL = DefaultBadDestinationTTL
	}
	t := &c.Telegram
	if t.PerChat == 0 {
		t.PerChat = DefaultTelegramPerChat
	}
	if t.PerGroup == 0 {
		t.PerGroup = DefaultTelegramPerGroup
	}
	if t.PerBot == 0 {
		t.PerBot = DefaultTelegramPerBot
	}
	return c
}

// Validate reports every problem with c after defaults are applied (a zero
// field is never an error): negative, NaN or infinite rates, a negative or
// over-a-minute MaxHold, a negative budget or MaxDestinations, a MaxMemory
// under 64 KiB, an
// InvalidWindow under one second. Errors name the config key.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("pacing: config: "+format, args...))
	}
	rate := func(key string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
			bad("%s %v must be a positive number", key, v)
		}
	}
	if c.MaxHold < 0 || c.MaxHold > maxMaxHold {
		bad("pacing.max_hold %s must be between 0 and %s", c.MaxHold, maxMaxHold)
	}
	if c.MaxInFlight < 1 {
		bad("pacing.max_in_flight %d must be at least 1", c.MaxInFlight)
	}
	if c.MaxDestinations < 1 {
		bad("pacing.max_destinations %d must be at least 1", c.MaxDestinations)
	}
	if c.MaxMemory < minMaxMemory {
		bad("pacing.max_memory %d must be at least %d bytes", c.MaxMemory, minMaxMemory)
	}
	rate("channels.discord.global_rate", c.Discord.GlobalRate)
	if c.Discord.InvalidBudget < 1 {
		bad("channels.discord.invalid_budget %d must be at least 1", c.Discord.InvalidBudget)
	}
	if s := c.Discord.UnverifiedShare; math.IsNaN(s) || s <= 0 || s > 0.5 {
		bad("channels.discord.unverified_share %v must be more than 0 and at most 0.5", s)
	}
	if c.Discord.BadDestinationTTL < 0 {
		bad("channels.discord.bad_destination_ttl %s must not be negative", c.Discord.BadDestinationTTL)
	}
	if c.Discord.InvalidWindow < minInvalidSpan {
		bad("channels.discord.invalid_window %s must be at least %s", c.Discord.InvalidWindow, minInvalidSpan)
	}
	rate("channels.telegram.per_chat_rate", c.Telegram.PerChat)
	rate("channels.telegram.per_group_rate", c.Telegram.PerGroup)
	rate("channels.telegram.per_bot_rate", c.Telegram.PerBot)
	return errors.Join(errs...)
}
