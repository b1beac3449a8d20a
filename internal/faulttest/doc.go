// Package faulttest holds Herald's fault tests that touch NATS: a node of a
// three-node JetStream cluster killed while jobs flow, the embedded server
// restarted under HTTP ingest load, and a destination that never answers.
// Everything runs in-process on loopback (real nats-server instances, fake
// Discord), fast enough for CI with -race:
//
//	go test -race -count=1 ./faulttest/
//
// The package has no non-test code.
package faulttest
