// Package testkit is Herald's one kit for tests: a real embedded JetStream
// server (single node with options, or a cluster of N restartable nodes), a
// connection to it, logs that are checked for secrets and shown when a test
// fails, polling and deadline helpers, and sealed jobs. Its sibling
// internal/fake holds the Discord and Telegram fakes, and
// internal/testkit/relay wires a consumer pool to them.
//
// testkit imports nothing of Herald's but the root package and crypto, so
// every package's tests, internal ones included, can use it.
package testkit
