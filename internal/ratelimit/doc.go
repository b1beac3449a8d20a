// Package ratelimit gives every client of Herald's public endpoints a token
// bucket per route group, with the counters in a JetStream key-value bucket
// (BucketName) so that any number of ingest replicas share one budget.
//
// A client is its API secret's identifier when it authenticates, else its
// address (read from CF-Connecting-IP or X-Forwarded-For only when the peer is
// a trusted proxy), together with the clearance token it presents, if any
// (see Identifier and Client.Key).
//
// Each bucket is stored as "<tokens> <unix ms>" under "<group>.<client key>"
// and changed with compare-and-swap on its revision, so replicas never admit
// more than the bucket holds. The cost is kept low:
//
//   - the last value and revision of each bucket are cached (a bounded LRU),
//     so the usual request is one Update; a write lost to another replica
//     costs a Get and a retry (bounded, with jittered pauses);
//   - concurrent requests for one bucket in one process share one write
//     (the first leads a round that takes as many tokens as are waiting);
//   - a refusal from a bucket known empty costs no store call, so a client
//     hammering past its limit costs a read a second at most;
//   - Limiter.Run (optional) watches the bucket, so each process learns of
//     the other replicas' writes as they happen and its cache stays current
//     even when a load balancer spreads a client over replicas;
//   - keys idle for Config.KeyTTL expire with the bucket's TTL.
//
// When the store cannot be reached, Config.OnStoreError decides: allow (the
// default) keeps limiting with buckets local to the process, starting from
// the last known state, and charges what they admitted to the shared bucket
// once the store answers again; deny refuses with 503. Either way the request
// is counted in herald_ratelimit_fallbacks_total, and the store is tried
// again a second later.
package ratelimit
