// Package bench is Herald's load harness, behind `herald bench`. It starts
// Herald as a child process (`herald serve` on loopback ports, with a
// temporary data directory) or drives a running deployment, runs a lean fake
// of the Discord webhook API in its own process, sends jobs through the
// Streaky endpoint, Herald's own API or straight to NATS, and accounts for
// every job by id: when it was sent, accepted and delivered, how often it was
// delivered, and whether it was lost.
//
// Beside throughput and latency it measures the Herald process itself from
// /proc (resident memory idle and at its peak, CPU time used during the run)
// and compares the ingest with a baseline: a bare HTTP handler that only
// decodes the body and publishes it to the same JetStream server, driven with
// the same load.
//
// The harness needs no testing package at run time; its Discord fake is its
// own (see Destination), not channels/fake.
package bench
