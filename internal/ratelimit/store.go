package ratelimit

import (
	"context"
	"errors"
	"fmt"

	"github.com/heraldrelay/herald/internal/queue"
	"github.com/nats-io/nats.go/jetstream"
)

// BucketName is the key-value bucket holding the shared counters.
const BucketName = "herald_ratelimit"

// EnsureBucket creates the BucketName key-value bucket, or updates it if it
// exists: one revision per key, file storage, replicas copies (1 when 0), and
// a TTL of cfg.IdleTTL(): every write of a counter is a new message, so a
// key expires that long after its last change.
//
// The TTL is the bucket's, not each key's: the jetstream KeyTTL option applies
// to Create only, and the Update a compare-and-swap needs drops it, so a
// per-key TTL would not outlive a key's first update. It is idempotent.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, cfg Config, replicas int) (jetstream.KeyValue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if replicas < 0 || replicas > 5 {
		return nil, fmt.Errorf("ratelimit: bucket: replicas %d out of range 0..5", replicas)
	}
	kv, err := queue.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      BucketName,
		Description: "Herald rate-limit counters (token buckets per client and route group)",
		History:     1,
		TTL:         cfg.IdleTTL(),
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("ratelimit: ensure bucket %s: %w", BucketName, err)
	}
	return kv, nil
}

// store is what a Limiter needs of the key-value bucket;
// jetstream.KeyValue implements it.
type store interface {
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error)
}

var _ store = (jetstream.KeyValue)(nil)

// isConflict reports whether err is a lost compare-and-swap: the key changed,
// appeared or vanished since it was read.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// storeKey is the bucket key of a client's bucket in group: "<group>.<key>".
func storeKey(group, key string) string { return group + "." + key }

// validGroup reports whether g can name a group in a store key.
func validGroup(g string) bool {
	if g == "" || len(g) > 32 {
		return false
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validKey reports whether k can be a client key in a store key (a
// Client.Key, or any other token of letters, digits, '-', '_' and '=').
func validKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '=') {
			return false
		}
	}
	return true
}
