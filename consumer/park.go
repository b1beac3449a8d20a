package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Parking. A job that must wait (a destination's retry_after, Herald's
// pacing, an open breaker, the backoff after a transient failure) does not
// wait in the jobs stream's consumer, where a NakWithDelay would keep one of
// its MaxAckPending slots for the whole wait: a few hundred jobs held back for
// one webhook would fill the window and stop every other tenant's delivery.
// Instead the worker parks it: it stores the job in herald.ParkedStream as a
// message schedule on herald.ParkedHoldSubject, which the server publishes on
// herald.ParkedDueSubject when the wait is over, and acks the original. The
// Pool consumes the due subjects with a second durable consumer and handles
// a parked copy like any job. Only jobs being sent hold a slot.
//
// Parking is crash-safe through the job's status record, which carries the
// time the job was parked for (herald.Status.NextAttemptAt) as a token, and
// the identity of the copy that holds the job (its stream and sequence):
//
//  1. the record is written with the token, held by the copy parking the job
//     (a failure: the job is put back with NakWithDelay instead, as before
//     parking existed);
//  2. the schedule is stored, its copy carrying the token in ParkedHeader (a
//     failure: NakWithDelay, and the token is left for the original to take);
//  3. the original is acked.
//
// A copy that finds a token in the record (the parked copy with its own
// token, or the copy that parked the job, redelivered after a crash between
// 1 and 3) must take it with a compare-and-swap of the record, which clears
// the token and names the copy the holder, before it may be sent. The other copy then finds the
// token gone and another holder, and is dropped; the holder itself, should
// it come back (put back after a short wait, redelivered after a crash), is
// let through. A copy whose job's record is final (delivered, failed, dead)
// is dropped too. So a job is never lost between parking and acking, and
// never sent twice because of it.

// Headers a parked copy carries, besides the original's own.
const (
	// ParkedHeader holds the token of the park this copy belongs to: the
	// RFC 3339 time (nanoseconds) it was parked for, as in the job's
	// record's NextAttemptAt.
	ParkedHeader = "Herald-Parked"
	// JobIDHeader keeps the job's id (the server drops Nats-Msg-Id from a
	// scheduled message).
	JobIDHeader = "Herald-Job-Id"
	// SubjectHeader keeps the subject the job was published on, so that logs,
	// dead letters and replays name it rather than the parked stream's.
	SubjectHeader = "Herald-Subject"
)

// Defaults of the parking caps.
const (
	// DefaultMaxParkedPerDestination caps the jobs one destination may have
	// parked by one process. At Discord's usual webhook pace (5 per 2 s)
	// 2,000 jobs drain in under 14 minutes; a destination asked to hold more
	// is in trouble that more waiting will not fix.
	DefaultMaxParkedPerDestination = 2000
	// DefaultMaxParked caps the jobs one process keeps parked. Each costs
	// the NATS server about 1.4 KB of memory (its schedule and its status
	// record) and 0.8 KB of store while it waits (BenchmarkParkedJobs):
	// 20,000 is about 27 MB, well inside the smallest box Herald runs on.
	DefaultMaxParked = 20000
)

// parkStaleAfter is how long after the time its jobs were parked for a
// destination's count of parked jobs is forgotten: their copies came back,
// to this process or another.
const parkStaleAfter = time.Minute

// parkStore is what parking needs of the status store; status.Store
// satisfies it. Without it (Deps.Status nil or another StatusStore) jobs
// are not parked: they wait with NakWithDelay.
type parkStore interface {
	StatusStore
	// GetRevision returns the job's record, the copy holding the job ("":
	// none) and the record's revision.
	GetRevision(ctx context.Context, id string) (rec herald.Status, holder string, revision uint64, err error)
	// Swap writes rec held by holder if the record is still at revision,
	// else fails with an error matching status.ErrChanged.
	Swap(ctx context.Context, rec herald.Status, holder string, revision uint64) error
	// PutHeld writes rec held by holder.
	PutHeld(ctx context.Context, rec herald.Status, holder string) error
}

var _ parkStore = (*status.Store)(nil)

// parkCount is one destination's parked jobs, as far as this process knows.
type parkCount struct {
	n     int
	until time.Time // the latest time one of them was parked for
}

// parkCaps counts the jobs this process parked, per destination and in all,
// to refuse parking past Config.MaxParkedPerDestination and Config.MaxParked.
// A count goes down when a parked copy of the destination comes back to this
// process, or all at once parkStaleAfter after the latest time its jobs were
// parked for (their copies went to another process). Entries exist only for
// destinations with parked jobs, so there are at most MaxParked.
type parkCaps struct {
	mu      sync.Mutex
	perDest map[string]*parkCount
	total   int
	maxDest int
	max     int
}

func newParkCaps(maxDest, max int) *parkCaps {
	return &parkCaps{perDest: make(map[string]*parkCount), maxDest: maxDest, max: max}
}

// Park refusal scopes, as the ParkRefused metric's scope label.
const (
	parkScopeDestination = "destination"
	parkScopeProcess     = "process"
)

// take counts one more job of dest (empty: unknown, counted against the
// process's cap only) parked until at, and returns "" or, when a cap is
// reached, the scope that refused it.
func (c *parkCaps) take(dest string, at, now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.perDest[dest]
	if e != nil && now.After(e.until.Add(parkStaleAfter)) {
		c.total -= e.n
		e.n = 0
	}
	switch {
	case e != nil && e.n >= c.maxDest:
		return parkScopeDestination
	case c.total >= c.max:
		return parkScopeProcess
	}
	c.total++
	if dest == "" {
		return ""
	}
	if e == nil {
		e = &parkCount{}
		c.perDest[dest] = e
	}
	e.n++
	if at.After(e.until) {
		e.until = at
	}
	return ""
}

// done counts one parked job of dest less: it came back, or was not parked
// after all.
func (c *parkCaps) done(dest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total > 0 {
		c.total--
	}
	e := c.perDest[dest]
	if e == nil {
		return
	}
	if e.n--; e.n <= 0 {
		delete(c.perDest, dest)
	}
}

// parkTime returns the token and time a job waiting delay from now is parked
// for: now+delay and a random part of a millisecond, so that two parks of
// one job never share a token.
func parkTime(now time.Time, delay time.Duration) time.Time {
	return now.Add(delay).Add(time.Duration(rand.Int64N(int64(time.Millisecond)-1) + 1))
}

// minPark is the shortest wait that parks a job. A shorter one waits in the
// consumer with NakWithDelay, which keeps its ack-pending slot no longer
// than a send would, and returns on time to the millisecond, where a
// schedule may return a few hundred milliseconds late (the server fires
// schedules at most four times a second): pacing slots are that short.
const minPark = time.Second

// parkedToken returns the token a parked copy carries, or the zero time for
// a job that is not a parked copy.
func parkedToken(h nats.Header) time.Time {
	v := h.Get(ParkedHeader)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}
	}
	return t
}

// park stores m's job as a schedule in herald.ParkedStream for at (a token
// from parkTime) and acks m. rec is the job's record to write first, with
// NextAttemptAt set to at. An error means the job is not parked: the caller
// puts it back with NakWithDelay, and the token in the record, if it was
// written, is taken by the job when it comes back.
func (p *Pool) park(m jetstream.Msg, d *Delivery, rec herald.Status, at time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), statusWriteTimeout)
	defer cancel()
	// A new token, held by the copy parking the job until the scheduled
	// copy takes it: should this one come back instead (a crash before the
	// schedule is stored or the ack sent), it takes the token itself.
	if err := p.status.(parkStore).PutHeld(ctx, rec, holderOf(d.Parked, d.Sequence)); err != nil {
		p.metrics.StatusWriteFails.Inc()
		return fmt.Errorf("consumer: park: %w", err)
	}
	if p.parkStep != nil {
		p.parkStep("recorded")
	}
	msg := nats.NewMsg(herald.ParkedHoldSubject(d.Job.Channel, d.Job.ID))
	msg.Data = m.Data()
	for k, v := range m.Headers() {
		// The server strips these from the copy it publishes; they would only
		// get in the way of storing the schedule.
		if k == jetstream.MsgIDHeader || strings.HasPrefix(k, "Nats-") {
			continue
		}
		msg.Header[k] = v
	}
	msg.Header.Set(ParkedHeader, at.UTC().Format(time.RFC3339Nano))
	msg.Header.Set(JobIDHeader, d.Job.ID)
	msg.Header.Set(SubjectHeader, d.Subject)
	if !d.BudgetStart.IsZero() {
		// The copy is a new message: its stream time must not restart the
		// retry budget of a job without created_at.
		msg.Header.Set(BudgetStartHeader, d.BudgetStart.Format(time.RFC3339Nano))
	}
	// The schedule's time to the nanosecond: jetstream.WithScheduleAt would
	// cut it to the second, and the server reads fractions.
	msg.Header.Set(jetstream.ScheduleHeader, "@at "+at.UTC().Format(time.RFC3339Nano))
	msg.Header.Set(jetstream.ScheduleTargetHeader, herald.ParkedDueSubject(d.Job.Channel))
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("consumer: park: store schedule: %w", err)
	}
	if p.parkStep != nil {
		p.parkStep("scheduled")
	}
	if err := m.Ack(); err != nil {
		// The original comes back after AckWait, finds the token in the
		// record, and either takes it or is dropped: never sent twice.
		return errAckAfterPark{err}
	}
	return nil
}

// errAckAfterPark is a failed ack of a job that is parked all the same.
type errAckAfterPark struct{ err error }

func (e errAckAfterPark) Error() string { return "ack after park: " + e.err.Error() }

// admission is what process does with a message before sending it.
type admission int

const (
	admitSend  admission = iota // send it
	admitDrop                   // another copy of the job has it, or it is settled: ack, do nothing
	admitLater                  // its record could not be read or taken: put back after a backoff
)

// holderOf is the identity of a message as the holder of its job: its
// stream and sequence.
func holderOf(parked bool, seq uint64) string {
	if parked {
		return "parked:" + strconv.FormatUint(seq, 10)
	}
	return "jobs:" + strconv.FormatUint(seq, 10)
}

// admit decides whether d, a delivery of m with token (zero unless m is a
// parked copy), may be sent, and sets d.Failures (and d.holder when the
// copy holds the job). The first delivery of a job that is not a parked
// copy costs no read. Otherwise the job's record is read: a final record
// written in the job's current life means another copy settled it (drop); a
// token in the record must be taken with a compare-and-swap by the copy it
// belongs to, or by the original (see the parking comment above); a copy
// that finds the job held by another copy, or a parked copy that finds its
// token gone and the job held by none, is stale (drop).
func (p *Pool) admit(d *Delivery, fromHeader bool, token time.Time) admission {
	parked := !token.IsZero()
	if !parked && d.Attempt <= 1 {
		return admitSend
	}
	ps, ok := p.status.(parkStore)
	if !ok || !p.parking {
		d.Failures = p.failures(d, fromHeader)
		return admitSend
	}
	me := holderOf(parked, d.Sequence)
	ctx, cancel := context.WithTimeout(context.Background(), statusReadTimeout)
	defer cancel()
	rec, holder, rev, err := ps.GetRevision(ctx, d.Job.ID)
	switch {
	case errors.Is(err, status.ErrNotFound):
		// Expired, or never written (a parked copy's record is written
		// before it exists, so only expiry): nothing to take.
		return admitSend
	case err != nil:
		if parked {
			return admitLater
		}
		d.Failures = d.Attempt - 1
		return admitSend
	case fromHeader && rec.UpdatedAt.Before(d.BudgetStart):
		// From the job's life before a replay.
		return admitSend
	}
	d.Failures = max(rec.Attempts, 0)
	switch {
	case rec.State.Final():
		return admitDrop
	case rec.NextAttemptAt.IsZero() && holder == me:
		d.holder = me // back after a short wait, or a crash: still ours
		return admitSend
	case rec.NextAttemptAt.IsZero() && (parked || holder != ""):
		return admitDrop // taken by another copy
	case rec.NextAttemptAt.IsZero():
		return admitSend // never parked
	case holder == me:
		// This copy parked the job and came back before its scheduled copy
		// (a crash before the schedule was stored or the ack sent): it
		// takes the token back.
	case !parked && holder != "":
		return admitDrop // an original, long since parked by a copy of it
	case parked && !rec.NextAttemptAt.Equal(token):
		return admitDrop // parked again since, by another copy
	}
	rec.NextAttemptAt = time.Time{}
	rec.UpdatedAt = time.Time{}
	switch err := ps.Swap(ctx, rec, me, rev); {
	case errors.Is(err, status.ErrChanged):
		return admitDrop
	case err != nil:
		return admitLater
	}
	d.holder = me
	return admitSend
}
