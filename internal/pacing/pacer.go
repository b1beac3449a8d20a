package pacing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// unknownRetry is the delay handed to JetStream when a send finds its
// destination busy with requests whose answers will free a slot at no known
// time (a first request that would teach the bucket, or MaxInFlight sends):
// the job goes back at once instead of holding a worker, which a destination
// that never answers would otherwise take from every other tenant.
const unknownRetry = time.Second

// minHold is the shortest wait worth sleeping: shorter ones are below timer
// granularity, and most come from the clock being read before a lock that
// another send took with a later reading.
const minHold = time.Millisecond

// scope names the limit that held a send back: the PacingWaits metric's
// scope label.
type scope int

const (
	scopeDestination   scope = iota // one Discord webhook's bucket, or one Telegram private chat
	scopeGlobal                     // Discord's per-IP global limit, or a global 429 pause
	scopeInvalidBudget              // Discord suspended: invalid-request budget spent
	scopeBot                        // one Telegram bot over all its chats
	scopeGroup                      // one Telegram group
	scopeUnverified                 // verification messages: their share of the invalid budget spent
	nScopes
)

var scopeNames = [nScopes]string{"destination", "global", "invalid_budget", "bot", "group", "unverified"}

// pacedErrs are the Err of the RetryAfterErrors the Pacer returns, one per
// scope; each matches herald.ErrPaced with errors.Is.
var pacedErrs = [nScopes]error{
	scopeDestination:   fmt.Errorf("%w (per-destination limit)", herald.ErrPaced),
	scopeGlobal:        fmt.Errorf("%w (Discord global limit)", herald.ErrPaced),
	scopeInvalidBudget: fmt.Errorf("%w (Discord suspended: invalid-request budget spent)", herald.ErrPaced),
	scopeBot:           fmt.Errorf("%w (per-bot limit)", herald.ErrPaced),
	scopeGroup:         fmt.Errorf("%w (per-group limit)", herald.ErrPaced),
	scopeUnverified:    fmt.Errorf("%w (verification messages: their share of Discord's invalid-request budget spent)", herald.ErrPaced),
}

// channel indexes the per-channel metric children.
const (
	chDiscord = iota
	chTelegram
	nChannels
)

// Pacer holds sends back so that they stay within what Discord and Telegram
// allow, instead of sending and collecting 429s. Create it with New, set
// ObserveDiscord as channels.DiscordConfig.Observe, and add Middleware to the
// consumer's middlewares. Its methods are safe for concurrent use.
//
// State is per process: see the package documentation.
type Pacer struct {
	cfg Config
	log *slog.Logger

	// now and sleep are the clock; tests replace them. sleep waits d, or
	// until wake is closed (a nil wake never is), or until ctx ends.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration, wake <-chan struct{}) error

	dests *cache[discordDest, *discordDest]
	dmu   sync.Mutex // guards dg and unv
	dg    discordGlobal
	unv   unverifiedShare
	// bad remembers destinations that refused a verification message.
	bad *expirable.LRU[string, struct{}]

	chats *cache[tgChat, *tgChat] // chat shards are locked before bot shards
	bots  *cache[tgBot, *tgBot]

	waits     [nChannels][nScopes]prometheus.Counter // nil where a scope does not apply
	held      [nChannels]prometheus.Observer
	invalid   prometheus.Counter
	suspended prometheus.Gauge
}

// New validates cfg and returns a Pacer with its defaults applied. logger
// receives the suspension and global-pause lines (nil discards); m records
// pacing metrics (nil uses a private registry).
func New(cfg Config, logger *slog.Logger, m *metrics.Metrics) (*Pacer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.New(prometheus.NewRegistry())
	}
	now := time.Now()
	p := &Pacer{
		cfg:   cfg,
		log:   logger,
		now:   time.Now,
		sleep: sleepCtx,
		dests: newCache[discordDest](cfg.MaxDestinations, cfg.MaxMemory, discordDestBytes),
		dg: discordGlobal{
			rate:    newWindow(cfg.Discord.GlobalRate),
			invalid: newInvalidCounter(cfg.Discord.InvalidWindow, now),
			budget:  cfg.Discord.InvalidBudget,
		},
		unv: unverifiedShare{
			invalid: newInvalidCounter(cfg.Discord.InvalidWindow, now),
			budget:  max(int(float64(cfg.Discord.InvalidBudget)*cfg.Discord.UnverifiedShare), 1),
		},
		bad:   expirable.NewLRU[string, struct{}](badDestinations(cfg), nil, cfg.Discord.BadDestinationTTL),
		chats: newCache[tgChat](cfg.MaxDestinations, cfg.MaxMemory, tgChatBytes),
		bots:  newCache[tgBot](cfg.MaxDestinations, cfg.MaxMemory, tgBotBytes),
	}
	applies := [nChannels][]scope{
		chDiscord:  {scopeDestination, scopeGlobal, scopeInvalidBudget, scopeUnverified},
		chTelegram: {scopeDestination, scopeGroup, scopeBot},
	}
	for ch, name := range [nChannels]herald.Channel{chDiscord: herald.ChannelDiscord, chTelegram: herald.ChannelTelegram} {
		for _, s := range applies[ch] {
			p.waits[ch][s] = m.PacingWaits.WithLabelValues(string(name), scopeNames[s])
		}
		p.held[ch] = m.PacingWait.WithLabelValues(string(name))
	}
	p.invalid = m.InvalidResponses.WithLabelValues(string(herald.ChannelDiscord))
	p.suspended = m.Suspended.WithLabelValues(string(herald.ChannelDiscord))
	p.suspended.Set(0)
	discord := string(herald.ChannelDiscord)
	m.InvalidBudget.WithLabelValues(discord).Set(float64(cfg.Discord.InvalidBudget))
	m.InvalidSpent.Set(p.invalidSpent, discord)
	m.GlobalPause.Set(p.globalPause, discord)
	return p, nil
}

// invalidSpent is the InvalidSpent metric: the Discord invalid responses in
// the current window, with the sends on their way (each may come back
// invalid), as the guard in discordGateLocked counts them.
func (p *Pacer) invalidSpent() float64 {
	p.dmu.Lock()
	defer p.dmu.Unlock()
	return float64(p.dg.invalid.count(p.now()) + p.dg.inflight)
}

// globalPause is the GlobalPause metric: the seconds left of a pause of
// every Discord send after a global 429.
func (p *Pacer) globalPause() float64 {
	p.dmu.Lock()
	defer p.dmu.Unlock()
	return max(p.dg.pausedUntil.Sub(p.now()), 0).Seconds()
}

// sleepCtx is the real Pacer.sleep.
func sleepCtx(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Middleware returns the consumer middleware that paces each send. dest
// returns a notification's destination key, the one its channel's
// Destination method gives ("discord:<host>/<webhook id>:<token hash>", "telegram:<bot
// id>.<token hash>:<chat hash>"); the Pacer keys its state by it, never by a credential.
// Keys of targets that do not parse ("discord:invalid", "telegram:invalid:…")
// and channels other than Discord and Telegram are not paced: they fail
// without I/O or are not the Pacer's.
//
// Before calling next, the middleware waits until every limit that applies
// allows the send. A wait of at most MaxHold in total, ending before ctx's
// deadline when it has one, is slept through
// (honouring ctx, whose end returns an error wrapping ctx.Err()); a longer one
// returns *herald.RetryAfterError{After: wait, Err: an error matching
// herald.ErrPaced} without calling next. After next returns, a 429 it
// reports (a *herald.RetryAfterError whose Err is not ErrPaced or
// ErrCircuitOpen) blocks the destination, or every Discord send when it is
// Global, for its After; a Telegram 429 also halves the chat's rate, and
// repeated 429s the bot's, for a minute. next's error is returned unchanged.
//
// It panics if dest is nil.
func (p *Pacer) Middleware(dest func(herald.Notification) string) consumer.Middleware {
	if dest == nil {
		panic("pacing: Middleware: dest is nil")
	}
	return func(next consumer.Handler) consumer.Handler {
		return func(ctx context.Context, d *consumer.Delivery) error {
			switch d.Notification.Channel {
			case herald.ChannelDiscord:
				key := dest(d.Notification)
				if key == "" || key == "discord:invalid" {
					return next(ctx, d)
				}
				if d.Job.Source == herald.SourceVerification {
					return p.sendUnverified(ctx, key, d, next)
				}
				return p.sendDiscord(ctx, key, d, next)
			case herald.ChannelTelegram:
				key := dest(d.Notification)
				if key == "" || strings.HasPrefix(key, "telegram:invalid:") {
					return next(ctx, d)
				}
				// Only the chat id's sign is kept, never the id.
				group := isGroupChat(d.Notification.Target.ChatID)
				return p.sendTelegram(ctx, key, group, d, next)
			default:
				return next(ctx, d)
			}
		}
	}
}

// grant is the answer to a request for a slot.
type grant struct {
	ok      bool          // the slot is taken; send after wait
	wait    time.Duration // ok: hold this long first; else: how long until a slot may free up
	unknown bool          // !ok: a slot frees up when a response arrives, at no known time
	wake    <-chan struct{}
	scope   scope

	// Discord reservations, to release after the send.
	key   string
	shard *cacheShard[discordDest, *discordDest]
	dest  *discordDest
	// The Telegram chat's in-flight slot, to release after the send.
	chatShard *cacheShard[tgChat, *tgChat]
	chat      *tgChat
}

// hold decides what to do with a grant that is not ok, for a send that may
// still be held for budget: sleep (nil error: try again) or give the job back
// (a *herald.RetryAfterError). It counts the wait, once per scope and send.
func (p *Pacer) hold(ctx context.Context, ch int, g grant, budget time.Duration, counted *[nScopes]bool) error {
	p.countWait(ch, g.scope, counted)
	wait := g.wait
	if g.unknown {
		if g.dest != nil {
			// One of the few allowed to wait a moment for the answer on
			// its way: usually it comes in milliseconds.
			if err := p.sleep(ctx, wait, g.wake); err != nil {
				return fmt.Errorf("pacing: hold: %w", err)
			}
			return nil
		}
		// Never hold a worker for an answer that may never come: the job
		// goes back, to return at its place in the destination's spread.
		return p.paced(max(wait, unknownRetry), g.scope)
	}
	if wait > budget {
		return p.paced(wait, g.scope)
	}
	if err := p.sleep(ctx, wait, g.wake); err != nil {
		return fmt.Errorf("pacing: hold: %w", err)
	}
	return nil
}

// budget is how much longer a send that came in at start may be held at
// now: what is left of MaxHold, and never past ctx's deadline (a job tried
// before it is stored must end within its request's wait). A longer wait
// gives the job back instead.
func (p *Pacer) budget(ctx context.Context, start, now time.Time) time.Duration {
	b := p.cfg.MaxHold - now.Sub(start)
	if dl, ok := ctx.Deadline(); ok {
		b = min(b, dl.Sub(now))
	}
	return b
}

func (p *Pacer) paced(after time.Duration, s scope) error {
	return &herald.RetryAfterError{After: after, Global: s == scopeGlobal || s == scopeInvalidBudget, Err: pacedErrs[s]}
}

func (p *Pacer) countWait(ch int, s scope, counted *[nScopes]bool) {
	if counted[s] {
		return
	}
	counted[s] = true
	if c := p.waits[ch][s]; c != nil {
		c.Inc()
	}
}

// sendDiscord paces one Discord send to key and calls next.
func (p *Pacer) sendDiscord(ctx context.Context, key string, d *consumer.Delivery, next consumer.Handler) error {
	start := p.now()
	now := start
	var (
		g       grant
		counted [nScopes]bool
		waited  bool
	)
	waitedAnswer := false
	for {
		g = p.acquireDiscordWaiting(key, now, p.budget(ctx, start, now), !waitedAnswer)
		if g.ok {
			break
		}
		if g.unknown && g.dest != nil {
			waitedAnswer = true
		}
		err := p.hold(ctx, chDiscord, g, p.budget(ctx, start, now), &counted)
		if g.dest != nil {
			// A worker waiting for the webhook's next window: no longer.
			g.shard.mu.Lock()
			g.dest.holding = max(g.dest.holding-1, 0)
			g.shard.mu.Unlock()
		}
		if err != nil {
			return err
		}
		waited = true
		now = p.now()
	}
	if g.wait > 0 {
		p.countWait(chDiscord, g.scope, &counted)
		if err := p.sleep(ctx, g.wait, nil); err != nil {
			p.releaseDiscord(g, false, nil, time.Time{}, false)
			return fmt.Errorf("pacing: hold: %w", err)
		}
		waited = true
	}
	if waited {
		p.held[chDiscord].Observe(p.now().Sub(start).Seconds())
	} else {
		p.held[chDiscord].Observe(0)
	}

	return p.callDiscord(ctx, d, next, g)
}

// callDiscord sends through next and then ends g's reservation, also when
// next panics (the consumer's recoverer, further out, turns the panic into
// an error): a reservation left in flight would hold the webhook forever.
func (p *Pacer) callDiscord(ctx context.Context, d *consumer.Delivery, next consumer.Handler, g grant) (err error) {
	defer func() {
		if err == nil {
			p.releaseDiscord(g, true, nil, time.Time{}, false)
			return
		}
		p.discordFailed(g, err)
	}()
	return next(ctx, d)
}

// discordFailed releases g after a send that failed with err, learning from a
// 429: a per-webhook one blocks the webhook, a global one every webhook.
func (p *Pacer) discordFailed(g grant, err error) {
	var ra *herald.RetryAfterError
	if !errors.As(err, &ra) || madeByHerald(ra) {
		p.releaseDiscord(g, sent(err), nil, time.Time{}, webhookGone(err))
		return
	}
	now := p.now()
	if ra.Global {
		p.pauseDiscord(now.Add(ra.After), now)
		ra = nil
	}
	p.releaseDiscord(g, true, ra, now, false)
}

// webhookGone reports whether err is a webhook's answer that it does not
// exist (404, Unknown Webhook) or refuses the token (401, 403): permanent,
// so its bucket is not worth remembering.
func webhookGone(err error) bool {
	if !errors.Is(err, herald.ErrPermanent) {
		return false
	}
	switch answerStatus(err) {
	case http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	return false
}

// madeByHerald reports whether a RetryAfterError is Herald's own (pacing, a
// breaker) rather than a destination's answer.
func madeByHerald(ra *herald.RetryAfterError) bool {
	return errors.Is(ra.Err, herald.ErrPaced) || errors.Is(ra.Err, herald.ErrCircuitOpen)
}

// sent reports whether a send that failed with err may have reached the
// destination. Herald's own refusals and invalid targets certainly did not.
func sent(err error) bool {
	return !errors.Is(err, herald.ErrPaced) && !errors.Is(err, herald.ErrCircuitOpen) &&
		!errors.Is(err, channels.ErrInvalidTarget)
}

// answerWait is how long a send that finds its webhook's answers on their
// way (MaxInFlight sends out, or the first one, which teaches the bucket)
// may wait for one before its job goes back to the queue. Answers usually
// take milliseconds: the jobs of a burst to a new webhook then go on at
// once instead of a round through the queue. At most MaxInFlight sends wait
// so for one webhook, so one that never answers holds few workers briefly.
const answerWait = 250 * time.Millisecond

// acquireDiscord tries to take a slot for key at now: the global gates
// (suspension, global pause), the webhook's bucket, then the global rate,
// which may ask to hold up to budget.
func (p *Pacer) acquireDiscord(key string, now time.Time, budget time.Duration) grant {
	return p.acquireDiscordWaiting(key, now, budget, false)
}

// acquireDiscordWaiting is acquireDiscord; when waitAnswer is set, a send
// that finds the webhook's answers on their way may be told to wait
// answerWait for one (an unknown grant with g.dest set, counted in the
// webhook's holding), rather than to go back to the queue.
func (p *Pacer) acquireDiscordWaiting(key string, now time.Time, budget time.Duration, waitAnswer bool) grant {
	p.dmu.Lock()
	w, s := p.discordGateLocked(now)
	p.dmu.Unlock()
	if w > 0 {
		return grant{wait: w, scope: s}
	}

	sh := p.dests.shard(key)
	sh.mu.Lock()
	e := sh.get(key)
	if e == nil {
		e = sh.add(key, discordDest{})
	}
	// At most MaxInFlight workers wait in-process for one webhook's next
	// window: waiting must not hold the workers other tenants need. The
	// others are given a slot in a coming window and go back to the queue.
	holdBudget := budget
	if e.holding >= p.cfg.MaxInFlight {
		holdBudget = 0
	}
	ok, w, unknown := e.reserve(now, holdBudget, p.cfg.MaxInFlight)
	if !ok {
		g := grant{wait: w, unknown: unknown, scope: scopeDestination}
		switch {
		case unknown && waitAnswer && e.holding < p.cfg.MaxInFlight && budget >= answerWait:
			e.holding++
			g.wake, g.wait = e.waitChan(), answerWait
			g.shard, g.dest = sh, e
		case unknown:
			g.wake = e.waitChan()
			g.wait = e.later.next(now, unknownRetry, p.unknownStep())
		case w > 0 && w <= holdBudget:
			e.holding++
			g.shard, g.dest = sh, e
		}
		sh.mu.Unlock()
		return g
	}
	sh.mu.Unlock()

	p.dmu.Lock()
	t := p.dg.rate.earliest(now)
	if w = t.Sub(now); w < minHold {
		w = 0
	}
	if w > 0 && w > budget {
		p.dmu.Unlock()
		sh.mu.Lock()
		e.release(false)
		sh.mu.Unlock()
		return grant{wait: w, scope: scopeGlobal}
	}
	p.dg.rate.take(t)
	p.dg.inflight++
	p.dmu.Unlock()
	return grant{ok: true, wait: w, scope: scopeGlobal, key: key, shard: sh, dest: e}
}

// releaseDiscord ends g's reservation; a non-nil ra (a per-webhook 429)
// blocks the webhook for ra.After from now. The webhook's state is
// forgotten when it holds nothing a fresh entry would not (no response
// taught it anything), or when gone is set (the webhook answered that it
// does not exist or refuses us), once no other send to it is in flight and
// no 429 blocks it.
func (p *Pacer) releaseDiscord(g grant, sent bool, ra *herald.RetryAfterError, now time.Time, gone bool) {
	p.dmu.Lock()
	p.dg.inflight = max(p.dg.inflight-1, 0)
	p.dmu.Unlock()
	g.shard.mu.Lock()
	if ra != nil {
		g.dest.block(now.Add(ra.After))
	}
	g.dest.release(sent)
	if d := g.dest; d.inflight == 0 && d.wake == nil && !p.now().Before(d.blockedUntil) && (gone || !d.learned) {
		if g.shard.get(g.key) == d {
			g.shard.remove(g.key)
		}
	}
	g.shard.mu.Unlock()
}

// discordGateLocked returns how long every Discord send must wait, and why:
// the invalid-request budget is spent, or a global 429 paused sending. It
// notices the end of a suspension. p.dmu is held.
func (p *Pacer) discordGateLocked(now time.Time) (time.Duration, scope) {
	g := &p.dg
	if w := g.invalid.below(now, g.budget); w > 0 {
		p.setSuspendedLocked(true, now, w)
		return w, scopeInvalidBudget
	}
	p.setSuspendedLocked(false, now, 0)
	if now.Before(g.pausedUntil) {
		return g.pausedUntil.Sub(now), scopeGlobal
	}
	if g.invalid.count(now)+g.inflight >= g.budget {
		// The sends on their way could spend what is left: wait for their
		// answers rather than overshoot.
		return unknownRetry, scopeInvalidBudget
	}
	return 0, 0
}

// setSuspendedLocked records a suspension starting or ending, with one log
// line and the Suspended gauge. p.dmu is held.
func (p *Pacer) setSuspendedLocked(on bool, now time.Time, resumeIn time.Duration) {
	g := &p.dg
	if g.suspended == on {
		return
	}
	g.suspended = on
	if on {
		p.suspended.Set(1)
		p.log.LogAttrs(context.Background(), slog.LevelWarn, "discord suspended: invalid-request budget spent",
			slog.Int("invalid_responses", g.invalid.count(now)),
			slog.Int("budget", g.budget),
			slog.Duration("window", p.cfg.Discord.InvalidWindow),
			slog.Duration("resume_in", resumeIn.Round(time.Second)))
		return
	}
	p.suspended.Set(0)
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "discord resumed: invalid responses back under budget",
		slog.Int("invalid_responses", g.invalid.count(now)),
		slog.Int("budget", g.budget))
}

// pauseDiscord holds every Discord send until until (a global 429).
func (p *Pacer) pauseDiscord(until, now time.Time) {
	p.dmu.Lock()
	defer p.dmu.Unlock()
	if !until.After(p.dg.pausedUntil) {
		return
	}
	if !now.Before(p.dg.pausedUntil) {
		p.log.LogAttrs(context.Background(), slog.LevelWarn, "discord global rate limit: pausing every send",
			slog.Duration("pause", until.Sub(now)))
	}
	p.dg.pausedUntil = until
}

// ObserveDiscord learns from one Discord response; set it as
// channels.DiscordConfig.Observe. dest is the webhook's destination key, rl
// the response's X-RateLimit-* headers, status its HTTP status. It learns the
// webhook's bucket (limit, remaining, reset, keyed by destination: Discord
// gives every webhook the same bucket hash), counts invalid responses (401,
// 403, 429 unless scope "shared") toward the invalid-request budget, and on
// a global 429 or a Cloudflare ban (rl.Covers, as channels.Classify429
// decided) pauses every Discord send until the send returns the wait
// Discord asked for. It is
// quick and safe for concurrent use.
func (p *Pacer) ObserveDiscord(dest string, rl channels.RateLimit, status int) {
	now := p.now()
	if isInvalid(status, rl) {
		p.invalid.Inc()
		p.dmu.Lock()
		if n := p.dg.invalid.add(now); n >= p.dg.budget {
			p.setSuspendedLocked(true, now, p.dg.invalid.below(now, p.dg.budget))
		}
		p.dmu.Unlock()
	}
	if isGlobal429(status, rl) {
		p.pauseDiscord(now.Add(max(rl.ResetAfter, globalPauseGuess)), now)
	}
	if dest == "" || !rl.Present || rl.Limit <= 0 {
		return
	}
	sh := p.dests.shard(dest)
	sh.mu.Lock()
	e := sh.get(dest)
	if e == nil {
		e = sh.add(dest, discordDest{})
	}
	e.observe(rl, now)
	sh.mu.Unlock()
}

// sendTelegram paces one Telegram send to chat key and calls next.
func (p *Pacer) sendTelegram(ctx context.Context, key string, group bool, d *consumer.Delivery, next consumer.Handler) error {
	bot := telegramBotKey(key)
	start := p.now()
	now := start
	var (
		g       grant
		counted [nScopes]bool
		waited  bool
	)
	for {
		g = p.acquireTelegram(key, bot, group, now, p.budget(ctx, start, now))
		if g.ok {
			break
		}
		if err := p.hold(ctx, chTelegram, g, p.budget(ctx, start, now), &counted); err != nil {
			return err
		}
		waited = true
		now = p.now()
	}
	if g.wait > 0 {
		p.countWait(chTelegram, g.scope, &counted)
		if err := p.sleep(ctx, g.wait, nil); err != nil {
			// The slot stays spent: the limiters cannot give back a slot
			// that others have queued behind.
			return fmt.Errorf("pacing: hold: %w", err)
		}
		waited = true
	}
	if waited {
		p.held[chTelegram].Observe(p.now().Sub(start).Seconds())
	} else {
		p.held[chTelegram].Observe(0)
	}

	done := p.sendingTelegram(g)
	defer done()
	err := next(ctx, d)
	if err != nil {
		p.telegramFailed(key, bot, err)
	}
	return err
}

// telegramFailed learns from a send that failed with err: a 429 blocks the
// chat and tightens its rate (and, repeated, the bot's).
func (p *Pacer) telegramFailed(key, bot string, err error) {
	var ra *herald.RetryAfterError
	if errors.As(err, &ra) && !madeByHerald(ra) {
		p.telegram429(key, bot, p.now(), ra.After)
	}
}

// acquireTelegram tries to take a slot at now for chat key of bot, holding
// up to budget: the chat's 429 block, then the chat's and the bot's rates.
func (p *Pacer) acquireTelegram(key, bot string, group bool, now time.Time, budget time.Duration) grant {
	chatScope := scopeDestination
	perSecond := p.cfg.Telegram.PerChat
	if group {
		chatScope, perSecond = scopeGroup, p.cfg.Telegram.PerGroup
	}
	cs := p.chats.shard(key)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.get(key)
	if c == nil {
		c = cs.add(key, tgChat{tgLimit: newTGLimit(perSecond)})
	}
	c.restore(now)
	if now.Before(c.blockedUntil) {
		return grant{wait: c.blockedUntil.Sub(now), scope: chatScope}
	}
	if c.inflight >= p.cfg.MaxInFlight {
		// Enough sends to this chat are on their way: wait for an answer
		// without holding a worker.
		return grant{unknown: true, wait: c.later.next(now, unknownRetry, p.unknownStep()), scope: chatScope}
	}

	bs := p.bots.shard(bot)
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.get(bot)
	if b == nil {
		b = bs.add(bot, tgBot{tgLimit: newTGLimit(p.cfg.Telegram.PerBot)})
	}
	b.restore(now)

	tc, tb := c.at(now), b.at(now)
	rc := c.lim.ReserveN(tc, 1)
	rb := b.lim.ReserveN(tb, 1)
	g := grant{ok: true, wait: rc.DelayFrom(now), scope: chatScope}
	if w := rb.DelayFrom(now); w > g.wait {
		g.wait, g.scope = w, scopeBot
	}
	if g.wait < minHold {
		g.wait = 0
	}
	if g.wait > 0 && g.wait > budget {
		// Both limiters are locked: nothing reserved after these, so
		// cancelling restores them exactly.
		rb.CancelAt(tb)
		rc.CancelAt(tc)
		g.ok = false
		return g
	}
	g.chatShard, g.chat = cs, c
	return g
}

// sendingTelegram counts g's send as on its way to its chat, once it has
// waited for its slot (a send still waiting is paced, not in flight), and
// returns the function that ends it.
func (p *Pacer) sendingTelegram(g grant) (done func()) {
	g.chatShard.mu.Lock()
	g.chat.inflight++
	g.chatShard.mu.Unlock()
	return func() {
		g.chatShard.mu.Lock()
		g.chat.inflight = max(g.chat.inflight-1, 0)
		g.chatShard.mu.Unlock()
	}
}

// telegram429 records a 429 for chat key of bot: the chat waits after, its
// rate is halved for a while, and repeated 429s halve the bot's.
func (p *Pacer) telegram429(key, bot string, now time.Time, after time.Duration) {
	cs := p.chats.shard(key)
	cs.mu.Lock()
	if c := cs.get(key); c != nil {
		if until := now.Add(after); until.After(c.blockedUntil) {
			c.blockedUntil = until
		}
		c.tighten(now, after)
	}
	bs := p.bots.shard(bot)
	bs.mu.Lock()
	if b := bs.get(bot); b != nil {
		b.strike(now, after)
	}
	bs.mu.Unlock()
	cs.mu.Unlock()
}
