// Package metrics defines Herald's Prometheus collectors in one place, so every
// package records into the same names and no label can carry a secret: labels
// are limited to channel names, routes, status classes, outcomes and reasons,
// all from fixed sets.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector. A nil *Metrics is not valid; tests use
// New(prometheus.NewRegistry()).
type Metrics struct {
	// Ingest.
	HTTPRequests *prometheus.CounterVec   // route, code
	HTTPDuration *prometheus.HistogramVec // route
	JobsAccepted *prometheus.CounterVec   // channel, source
	JobsRejected *prometheus.CounterVec   // route, reason
	PublishFails prometheus.Counter       // publishes that were not acknowledged

	// Delivery.
	Deliveries       *prometheus.CounterVec   // channel, outcome (delivered, retry, failed, dead)
	Retries          *prometheus.CounterVec   // channel, reason (retry_after, transient, paced, breaker_open)
	RateLimited      *prometheus.CounterVec   // channel (429s received)
	SendDuration     *prometheus.HistogramVec // channel: one HTTP call to the destination
	DeliveryLatency  *prometheus.HistogramVec // channel: job accepted → delivered
	InFlight         prometheus.Gauge         // jobs being handled by this process
	StatusWriteFails prometheus.Counter
}

// New creates the collectors and registers them, plus the Go and process
// collectors, with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_http_requests_total", Help: "HTTP requests served, by route and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_http_request_duration_seconds", Help: "HTTP request handling time, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15},
		}, []string{"route"}),
		JobsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_jobs_accepted_total", Help: "Jobs stored in JetStream by the ingest, by channel and source.",
		}, []string{"channel", "source"}),
		JobsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_jobs_rejected_total", Help: "Requests the ingest refused, by route and reason.",
		}, []string{"route", "reason"}),
		PublishFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_publish_failures_total", Help: "Job publishes JetStream did not acknowledge (answered 503).",
		}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_deliveries_total", Help: "Delivery attempts by channel and outcome.",
		}, []string{"channel", "outcome"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_retries_total", Help: "Jobs put back to wait, by channel and reason.",
		}, []string{"channel", "reason"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_rate_limited_total", Help: "429 answers received from destinations, by channel.",
		}, []string{"channel"}),
		SendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_send_duration_seconds", Help: "Time of one call to a destination, by channel.",
			Buckets: prometheus.DefBuckets,
		}, []string{"channel"}),
		DeliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_delivery_latency_seconds", Help: "Time from job accepted to delivered, by channel.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}, []string{"channel"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_jobs_in_flight", Help: "Jobs being handled by this process.",
		}),
		StatusWriteFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_status_write_failures_total", Help: "Job status records that could not be written.",
		}),
	}
	reg.MustRegister(
		m.HTTPRequests, m.HTTPDuration, m.JobsAccepted, m.JobsRejected, m.PublishFails,
		m.Deliveries, m.Retries, m.RateLimited, m.SendDuration, m.DeliveryLatency, m.InFlight,
		m.StatusWriteFails,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
