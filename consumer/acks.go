package consumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bounds of an ack burst (see acker).
const (
	// DefaultAckDelay is how long the first ack of a burst may wait for
	// others: each burst is one write to the server.
	DefaultAckDelay = 5 * time.Millisecond
	// maxAckBurst sends a burst early once it holds this many acks.
	maxAckBurst = 256
	// maxAckHold bounds how long the acker holds back the newest ack of a
	// burst when no other follows (see acker); a quarter of AckWait when
	// that is shorter, so that the held job is never redelivered.
	maxAckHold = time.Second
)

// ackHold is how long the newest ack is held back under cfg.
func ackHold(cfg Config) time.Duration {
	wait := cfg.AckWait
	if wait <= 0 {
		wait = DefaultAckWait
	}
	return min(maxAckHold, wait/4)
}

// acker acks delivered jobs in bursts: the first waits up to delay for the
// others. The jobs are delivered and recorded already; a burst only decides
// when JetStream forgets them, so a crash meanwhile makes them duplicates
// (redelivered after AckWait), never losses. At high rates this turns
// hundreds of ack writes into one.
//
// It also holds back the newest ack of each burst until the next burst
// (or, when none comes, for hold). Acking the last job in the jobs stream
// empties the stream's last message block, and the server then creates a
// new block file and deletes the old one: at low rates, where every job is
// alone in the stream, that was a file created and one deleted per job, and
// at 50 jobs a second a sixth of Herald's CPU. With one job held, the block
// stays in use while jobs keep coming; it is emptied once, hold after the
// last. A crash adds at most that one job to the duplicates.
type acker struct {
	in    chan jetstream.Msg
	delay time.Duration
	hold  time.Duration
	log   *slog.Logger
	done  chan struct{}
}

// newAcker starts an acker; close its in to flush and stop it, then wait on
// done.
func newAcker(delay, hold time.Duration, log *slog.Logger) *acker {
	a := &acker{in: make(chan jetstream.Msg, maxAckBurst), delay: delay, hold: hold, log: log, done: make(chan struct{})}
	go a.run()
	return a
}

func (a *acker) run() {
	defer close(a.done)
	burst := make([]jetstream.Msg, 0, maxAckBurst+1)
	var held jetstream.Msg // the newest ack of the last burst, not sent yet
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	holding := time.NewTimer(time.Hour)
	holding.Stop()
	for {
		var m jetstream.Msg
		open := true
		select {
		case m, open = <-a.in:
		case <-holding.C:
			// Nothing followed: the stream may be emptied now.
			if held != nil {
				a.ack(append(burst[:0], held))
				held = nil
			}
			continue
		}
		if !open {
			if held != nil {
				a.ack(append(burst[:0], held))
			}
			return
		}
		holding.Stop()
		burst = append(burst[:0], m)
		timer.Reset(a.delay)
	collect:
		for len(burst) < maxAckBurst {
			select {
			case m, ok := <-a.in:
				if !ok {
					open = false
					break collect
				}
				burst = append(burst, m)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		if !open {
			if held != nil {
				burst = append(burst, held)
			}
			a.ack(burst)
			return
		}
		// Hold the newest back, so its block stays in use; the one held
		// before goes with the rest.
		newest := burst[len(burst)-1]
		burst = burst[:len(burst)-1]
		if held != nil {
			burst = append(burst, held)
		}
		held = newest
		a.ack(burst)
		holding.Reset(a.hold)
	}
}

func (a *acker) ack(burst []jetstream.Msg) {
	for i, m := range burst {
		if err := m.Ack(); err != nil {
			// Redelivered after AckWait and delivered again: a duplicate,
			// never a loss.
			a.log.LogAttrs(context.Background(), slog.LevelWarn, "ack",
				slog.String("subject", m.Subject()), slog.String("error", err.Error()))
		}
		burst[i] = nil
	}
}
