package breaker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/sony/gobreaker/v2"
)

// errReleased is the outcome recorded in a breaker that let a send through
// when another breaker of the same send refused it: the send never happened,
// so it is excluded, and a half-open breaker gets its probe slot back.
var errReleased = errors.New("breaker: send not made, another breaker is open")

// errPanicked is the outcome recorded when the wrapped handler panicked.
var errPanicked = errors.New("breaker: send panicked")

// maxKeysOnStack is how many keys a send may have before the middleware's
// scratch space spills to the heap (Telegram uses two).
const maxKeysOnStack = 4

// isSuccessful is every breaker's IsSuccessful: nil, and permanent errors,
// which dead-letter the job but say nothing about the destination being down.
func isSuccessful(err error) bool {
	return err == nil || errors.Is(err, herald.ErrPermanent)
}

// isExcluded is every breaker's IsExcluded: a destination asking to wait
// (429), Herald's own pacing and other breakers (all *herald.RetryAfterError),
// a cancelled send (shutdown), and a send that was never made count neither
// way. A deadline (context.DeadlineExceeded) is a timeout: a failure.
func isExcluded(err error) bool {
	if err == nil {
		return false // the hot path: no errors.As allocation
	}
	var ra *herald.RetryAfterError
	return errors.As(err, &ra) || errors.Is(err, context.Canceled) || errors.Is(err, errReleased)
}

// Middleware returns a consumer.Middleware that runs each send inside the
// breakers named by keys(d.Notification): typically the destination
// (channels' Destination) and, for Telegram, the bot (see Keys). A send with
// no keys runs without a breaker; repeated keys count once.
//
// Every breaker is asked before the send. If any is open, or half-open with
// its probes out, the send is not made, breakers that had let it through are
// released, and the handler returns a *herald.RetryAfterError whose Err wraps
// herald.ErrCircuitOpen (and names the key, which is not secret) and whose
// After is the time until the breaker may let a probe through (at least
// 100 ms; up to 1 s while a probe is out), spread by up to +20% so a backlog
// does not come back at once. Otherwise the send's outcome is recorded in
// every breaker and returned unchanged. keys must be safe for concurrent use;
// its keys must be non-secret, since they appear in logs.
func (s *Set) Middleware(keys func(herald.Notification) []string) consumer.Middleware {
	return func(next consumer.Handler) consumer.Handler {
		return func(ctx context.Context, d *consumer.Delivery) (err error) {
			ks := keys(d.Notification)
			if len(ks) == 0 {
				return next(ctx, d)
			}
			var (
				ebuf    [maxKeysOnStack]*entry
				dbuf    [maxKeysOnStack]func(error)
				mbuf    [maxKeysOnStack]string
				es      = ebuf[:0]
				dones   = dbuf[:0]
				missing = mbuf[:0] // keys without a breaker: closed, nothing on record
			)
			for i, k := range ks {
				if k == "" || containsKey(ks[:i], k) {
					continue
				}
				if e := s.lookup(k); e != nil {
					es = append(es, e)
				} else {
					missing = append(missing, k)
				}
			}
			var (
				refused *entry
				wait    time.Duration
			)
			for _, e := range es {
				done, err := e.cb.Allow()
				if err != nil {
					if w := s.waitFor(e, err); refused == nil || w > wait {
						refused, wait = e, w
					}
					continue
				}
				dones = append(dones, done)
			}
			if refused != nil {
				for _, done := range dones {
					done(errReleased)
				}
				return &herald.RetryAfterError{
					After: s.spread(wait),
					Err:   fmt.Errorf("breaker %s: %w", refused.key, herald.ErrCircuitOpen),
				}
			}
			defer func() {
				// A panic must still settle the breakers: a half-open one
				// would otherwise keep its probe slot taken for good.
				if p := recover(); p != nil {
					for _, done := range dones {
						done(errPanicked)
					}
					panic(p)
				}
			}()
			err = next(ctx, d)
			for _, done := range dones {
				done(err)
			}
			switch {
			case isSuccessful(err):
				for _, e := range es {
					s.forgetIfClean(e)
				}
			case !isExcluded(err):
				for _, k := range missing {
					s.recordFailure(k, channelLabel(k, d.Notification.Channel), err)
				}
			}
			return err
		}
	}
}

// waitFor returns how long a job refused by e's breaker with err should wait:
// until the breaker may turn half-open when it is open, a short while when it
// is half-open with its probes out.
func (s *Set) waitFor(e *entry, err error) time.Duration {
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		return min(max(s.cfg.OpenTimeout/4, minDelay), maxProbeWait)
	}
	wait := s.cfg.OpenTimeout
	if at := e.openedAt.Load(); at != 0 {
		wait = time.Unix(0, at).Add(s.cfg.OpenTimeout).Sub(s.now())
	}
	return max(wait, minDelay)
}

// spread adds up to 20% to d. Only ever later: a job back before its breaker
// may half-open would just be turned away again.
func (s *Set) spread(d time.Duration) time.Duration {
	return d + time.Duration(float64(d)*0.2*s.jitter())
}

func containsKey(ks []string, k string) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// Keys returns a keys function for Middleware built on dest, which names a
// notification's destination (channels' Destination: "discord:<host>/<webhook id>:<token hash>",
// "telegram:<bot id>.<token hash>:<chat hash>"). For a Telegram destination it adds the
// bot's own key, "telegram:<bot id>.<token hash>", so a revoked token or a bot Telegram
// stopped answering fails every chat of that bot fast. dest returning ""
// means no breaker for that notification.
func Keys(dest func(herald.Notification) string) func(herald.Notification) []string {
	return func(n herald.Notification) []string {
		k := dest(n)
		if k == "" {
			return nil
		}
		if bot, ok := BotKey(k); ok {
			return []string{k, bot}
		}
		return []string{k}
	}
}

// BotKey returns the bot key "telegram:<bot id>.<token hash>" of a Telegram destination
// key "telegram:<bot id>.<token hash>:<chat hash>", and false for any other key.
func BotKey(dest string) (string, bool) {
	rest, ok := strings.CutPrefix(dest, string(herald.ChannelTelegram)+":")
	if !ok {
		return "", false
	}
	bot, _, ok := strings.Cut(rest, ":")
	if !ok || bot == "" {
		return "", false
	}
	return string(herald.ChannelTelegram) + ":" + bot, true
}
