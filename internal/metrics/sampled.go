package metrics

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Sampled is a gauge whose value is read when it is scraped, from a function
// that the package holding the state gives it with Set: for state that
// changes without an event to set a gauge on (a sliding window emptying, a
// pause running out, a connection's status). A series without a function is
// not exported. It is safe for concurrent use.
type Sampled struct {
	desc   *prometheus.Desc
	labels int

	mu  sync.Mutex
	fns map[string]sampledSeries // by label values joined with labelSep
}

type sampledSeries struct {
	values []string
	fn     func() float64
}

// labelSep joins label values into a map key; it cannot occur in UTF-8 text.
const labelSep = "\xff"

// NewSampled returns a Sampled gauge named name with the given label names.
func NewSampled(name, help string, labels ...string) *Sampled {
	return &Sampled{
		desc:   prometheus.NewDesc(name, help, labels, nil),
		labels: len(labels),
		fns:    make(map[string]sampledSeries),
	}
}

// Set makes fn the source of the series with labelValues (one per label
// name, in order), replacing the one it had; a nil fn removes the series.
// fn is called at every scrape, so it must be cheap and must not block for
// long. Set panics if the number of label values is wrong.
func (s *Sampled) Set(fn func() float64, labelValues ...string) {
	if len(labelValues) != s.labels {
		panic("metrics: Sampled.Set: wrong number of label values")
	}
	key := strings.Join(labelValues, labelSep)
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		delete(s.fns, key)
		return
	}
	s.fns[key] = sampledSeries{values: append([]string(nil), labelValues...), fn: fn}
}

// Describe implements prometheus.Collector.
func (s *Sampled) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

// Collect implements prometheus.Collector.
func (s *Sampled) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	series := make([]sampledSeries, 0, len(s.fns))
	for _, v := range s.fns {
		series = append(series, v)
	}
	s.mu.Unlock()
	// The functions run without s.mu, so one may take its own locks.
	for _, v := range series {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, v.fn(), v.values...)
	}
}
