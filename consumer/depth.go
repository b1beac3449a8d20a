package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultDepthInterval is how often SampleDepth samples when given no
// interval: often enough for a dashboard, one cheap request per stream.
const DefaultDepthInterval = 15 * time.Second

// depthTimeout bounds one stream lookup.
const depthTimeout = 5 * time.Second

// Queue depth stream labels.
const (
	depthJobs        = "jobs"
	depthParked      = "parked"
	depthDeadLetters = "dead_letters"
)

// SampleDepth sets m.QueueDepth{stream="jobs"} to the number of messages in
// herald.JobsStream (waiting or in flight), {stream="parked"} and m.Parked to
// the number in herald.ParkedStream (held back until their next attempt),
// and {stream="dead_letters"} to the number in herald.DeadLetterStream, and
// m.QueueOldest of each stream to the age of its oldest message (0 when it is
// empty: for the work-queue jobs stream, the oldest job not yet settled), at once and then every every
// (DefaultDepthInterval when every <= 0), until ctx ends; it blocks, so run it
// in its own goroutine. A stream that does not exist counts 0; a lookup that
// fails otherwise leaves the gauge at its last value. Several processes may
// sample the same streams: the gauge is the same everywhere.
func SampleDepth(ctx context.Context, js jetstream.JetStream, m *metrics.Metrics, every time.Duration) {
	if every <= 0 {
		every = DefaultDepthInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		sampleStream(ctx, js, m, herald.JobsStream, depthJobs)
		if n, ok := sampleStream(ctx, js, m, herald.ParkedStream, depthParked); ok {
			m.Parked.Set(n)
		}
		sampleStream(ctx, js, m, herald.DeadLetterStream, depthDeadLetters)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sampleStream sets the QueueDepth gauge labelled label to the message count
// of stream, and the QueueOldest one to the age of its first message, and
// returns the count; ok is false when the lookup failed.
func sampleStream(ctx context.Context, js jetstream.JetStream, m *metrics.Metrics, stream, label string) (n float64, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, depthTimeout)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	var age time.Duration
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		n, ok = 0, true
	case err == nil:
		st := s.CachedInfo().State
		n, ok = float64(st.Msgs), true
		if st.Msgs > 0 && !st.FirstTime.IsZero() {
			age = max(time.Since(st.FirstTime), 0)
		}
	default:
		return 0, false
	}
	m.QueueDepth.WithLabelValues(label).Set(n)
	m.QueueOldest.WithLabelValues(label).Set(age.Seconds())
	return n, true
}
