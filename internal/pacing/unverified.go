package pacing

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
)

// unverifiedShare is the part of Discord's invalid-request budget that
// verification messages (herald.SourceVerification jobs: a registration's
// code, sent to a destination nobody has verified) may spend. A stranger can
// make every one of them answer 401; counting them apart, and stopping them
// at their share, keeps the rest of the budget for deliveries to verified
// destinations. Guarded by Pacer.dmu.
type unverifiedShare struct {
	invalid  *invalidCounter // invalid answers to verification messages
	inflight int             // verification messages on their way
	budget   int             // Discord.InvalidBudget × Discord.UnverifiedShare, at least 1
	// later spreads the returns of the verification messages given back
	// while the share is spent, so that they come back a few at a time
	// rather than all at once to be given back again.
	later spread
}

// errBadDestination refuses a verification message to a destination that
// refused one recently.
var errBadDestination = herald.Permanent(errors.New("pacing: this destination refused a verification message recently (401, 403 or 404): not sending another"))

// sendUnverified paces one verification message to key: it fails at once
// for a destination remembered as bad, waits (gives the job back) while the
// share is spent, counting the messages on their way as spent so the share
// is never overshot, and then paces it like any other send.
func (p *Pacer) sendUnverified(ctx context.Context, key string, d *consumer.Delivery, next consumer.Handler) error {
	if p.bad.Contains(key) {
		return errBadDestination
	}
	now := p.now()
	p.dmu.Lock()
	u := &p.unv
	if u.invalid.count(now)+u.inflight >= u.budget {
		wait := u.later.next(now, p.unverifiedWaitLocked(now), p.unknownStep())
		p.dmu.Unlock()
		p.countWait(chDiscord, scopeUnverified, new([nScopes]bool))
		return p.paced(wait, scopeUnverified)
	}
	u.inflight++
	p.dmu.Unlock()

	err := p.sendDiscord(ctx, key, d, next)

	status := answerStatus(err)
	p.dmu.Lock()
	u.inflight--
	if status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests {
		u.invalid.add(p.now())
	}
	p.dmu.Unlock()
	if status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound {
		p.bad.Add(key, struct{}{})
	}
	return err
}

// answerStatus is the HTTP status of the destination's answer that err
// reports, 0 when none (Herald's own refusals, transport errors).
func answerStatus(err error) int {
	var ra *herald.RetryAfterError
	if errors.As(err, &ra) && madeByHerald(ra) {
		return 0
	}
	var de *herald.DestinationError
	if errors.As(err, &de) {
		return de.StatusCode
	}
	return 0
}

// UnverifiedWait reports how long until a verification message may be sent:
// 0 when it may be now. The registration page answers 503 with Retry-After
// meanwhile, instead of queueing codes that could only wait.
func (p *Pacer) UnverifiedWait() time.Duration {
	now := p.now()
	p.dmu.Lock()
	defer p.dmu.Unlock()
	u := &p.unv
	if u.invalid.count(now)+u.inflight < u.budget {
		return 0
	}
	return p.unverifiedWaitLocked(now)
}

// unverifiedWaitLocked is UnverifiedWait once the share is known to be
// spent. p.dmu is held.
func (p *Pacer) unverifiedWaitLocked(now time.Time) time.Duration {
	u := &p.unv
	if u.inflight >= u.budget {
		return unknownRetry
	}
	return max(u.invalid.below(now, u.budget-u.inflight), unknownRetry)
}
