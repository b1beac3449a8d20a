package bench

import (
	"strconv"
	"sync"
	"time"
)

// Job states in a tracker.
const (
	stateSent     uint8 = iota + 1 // request on its way
	stateAccepted                  // 2xx (Streaky: success:true), or a publish ack
	stateRefused                   // any other answer
	stateFailed                    // no answer: transport error or timeout
)

// jobRecord is what the tracker knows of one job. Times are offsets from the
// tracker's start, on the monotonic clock.
type jobRecord struct {
	sent, answered, delivered time.Duration
	deliveries                int32
	state                     uint8
}

// tracker accounts for every job of a run by its sequence number: when it was
// sent and answered, how it was answered, when and how often it was
// delivered. It is safe for concurrent use.
type tracker struct {
	t0 time.Time

	mu      sync.Mutex
	jobs    []jobRecord
	refused map[string]int // by answer: "503", "200 success:false", "error"
	// unexpected counts deliveries that name no job of this run.
	unexpected int
	// Running counts, for progress and for the drain.
	sent, inFlight, accepted, delivered, pending int
	lastAnswer, lastDelivery                     time.Duration
}

func newTracker(t0 time.Time) *tracker {
	return &tracker{t0: t0, refused: make(map[string]int)}
}

func (t *tracker) since() time.Duration { return time.Since(t.t0) }

// record returns job seq's record, growing the table; t.mu is held.
func (t *tracker) record(seq int) *jobRecord {
	if seq >= len(t.jobs) {
		if seq >= cap(t.jobs) {
			grown := make([]jobRecord, seq+1, max(2*cap(t.jobs), seq+1, 1024))
			copy(grown, t.jobs)
			t.jobs = grown
		} else {
			t.jobs = t.jobs[:seq+1]
		}
	}
	return &t.jobs[seq]
}

// begin records that job seq is being sent now.
func (t *tracker) begin(seq int) {
	now := t.since()
	t.mu.Lock()
	r := t.record(seq)
	r.sent, r.state = now, stateSent
	t.sent++
	t.inFlight++
	t.mu.Unlock()
}

// answer records job seq's answer: accepted, or refused with a label saying
// how ("503", "200 success:false"); failed (no answer) when label is
// "error".
func (t *tracker) answer(seq int, accepted bool, label string) {
	now := t.since()
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.record(seq)
	r.answered = now
	t.inFlight--
	t.lastAnswer = max(t.lastAnswer, now)
	switch {
	case accepted:
		r.state = stateAccepted
		t.accepted++
		if r.deliveries == 0 {
			t.pending++
		}
	case label == labelError:
		r.state = stateFailed
		t.refused[label]++
	default:
		r.state = stateRefused
		t.refused[label]++
	}
}

// labelError labels requests that got no answer.
const labelError = "error"

// statusLabel labels a refusal by its HTTP status.
func statusLabel(status int) string { return strconv.Itoa(status) }

// deliver records a delivery of job seq; false when seq names no job sent.
func (t *tracker) deliver(seq int) bool {
	now := t.since()
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq < 0 || seq >= len(t.jobs) || t.jobs[seq].state == 0 {
		t.unexpected++
		return false
	}
	r := &t.jobs[seq]
	r.deliveries++
	if r.deliveries == 1 {
		r.delivered = now
		t.delivered++
		t.lastDelivery = max(t.lastDelivery, now)
		if r.state == stateAccepted {
			t.pending--
		}
	}
	return true
}

// progress is a snapshot of the running counts.
type progress struct {
	sent, accepted, refused, delivered int
}

func (t *tracker) progress() progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	refused := 0
	for _, n := range t.refused {
		refused += n
	}
	return progress{sent: t.sent, accepted: t.accepted, refused: refused, delivered: t.delivered}
}

// settled reports whether no request is in flight and every accepted job has
// been delivered at least once.
func (t *tracker) settled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inFlight == 0 && t.pending == 0
}

// accounting is the tracker's final tally.
type accounting struct {
	sent, accepted, delivered, deliveries int
	lost, duplicates, deliveredUnaccepted int
	unexpected                            int
	refused                               map[string]int
	lastAnswer, lastDelivery              time.Duration
	// delivery is, per accepted and delivered job, sent → first delivery;
	// answer is, per answered request, sent → answer.
	delivery, answer []time.Duration
	// lostSample holds a few lost jobs' sequence numbers.
	lostSample []int
}

// tally counts what happened to every job.
func (t *tracker) tally() accounting {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := accounting{
		sent: t.sent, unexpected: t.unexpected, refused: make(map[string]int, len(t.refused)),
		lastAnswer: t.lastAnswer, lastDelivery: t.lastDelivery,
		delivery: make([]time.Duration, 0, t.accepted), answer: make([]time.Duration, 0, t.sent),
	}
	for k, v := range t.refused {
		a.refused[k] = v
	}
	for seq := range t.jobs {
		r := &t.jobs[seq]
		if r.state == 0 {
			continue
		}
		if r.state != stateSent && r.state != stateFailed {
			a.answer = append(a.answer, r.answered-r.sent)
		}
		a.deliveries += int(r.deliveries)
		if r.deliveries > 1 {
			a.duplicates += int(r.deliveries) - 1
		}
		if r.state != stateAccepted {
			if r.deliveries > 0 {
				a.deliveredUnaccepted++
			}
			continue
		}
		a.accepted++
		if r.deliveries == 0 {
			a.lost++
			if len(a.lostSample) < 5 {
				a.lostSample = append(a.lostSample, seq)
			}
			continue
		}
		a.delivered++
		a.delivery = append(a.delivery, r.delivered-r.sent)
	}
	return a
}
