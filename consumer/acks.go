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
	// others: each burst is one write to the server, and leaves the jobs
	// stream's last block empty (which costs the server a new file) at most
	// once.
	DefaultAckDelay = 5 * time.Millisecond
	// maxAckBurst sends a burst early once it holds this many acks.
	maxAckBurst = 256
)

// acker acks delivered jobs in bursts: the first waits up to delay for the
// others. The jobs are delivered and recorded already; a burst only decides
// when JetStream forgets them, so a crash meanwhile makes them duplicates
// (redelivered after AckWait), never losses. At low rates this is what
// keeps the server from creating and deleting a message block file per job,
// since acking a lone job empties the stream's last block; at high rates it
// turns hundreds of ack writes into one.
type acker struct {
	in    chan jetstream.Msg
	delay time.Duration
	log   *slog.Logger
	done  chan struct{}
}

// newAcker starts an acker; close its in to flush and stop it, then wait on
// done.
func newAcker(delay time.Duration, log *slog.Logger) *acker {
	a := &acker{in: make(chan jetstream.Msg, maxAckBurst), delay: delay, log: log, done: make(chan struct{})}
	go a.run()
	return a
}

func (a *acker) run() {
	defer close(a.done)
	burst := make([]jetstream.Msg, 0, maxAckBurst)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for m := range a.in {
		burst = append(burst[:0], m)
		timer.Reset(a.delay)
		open := true
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
		a.ack(burst)
		if !open {
			return
		}
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
