package challenge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"

	"github.com/heraldrelay/herald/internal/queue"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket holding issued challenges and the markers of
// used ones, shared by every replica.
const Bucket = "herald_challenges"

const (
	// expiredGrace keeps a challenge's record this long after it expired, so
	// a late solution is told "expired" rather than "unknown".
	expiredGrace = time.Minute
	// limitMarkerTTL is how long the bucket keeps the marker of a key that
	// expired (per-key TTLs need markers enabled).
	limitMarkerTTL = time.Minute
	// bucketMaxAge is a safety net behind the per-key TTLs: no record is
	// needed longer than the longest challenge plus its grace.
	bucketMaxAge = MaxTTL + expiredGrace
	// storeTimeout bounds one KV operation made while answering a request.
	storeTimeout = 3 * time.Second
)

// EnsureBucket creates the Bucket key-value bucket, or updates it if it
// exists: per-key TTLs (each challenge expires shortly after its own
// lifetime), one revision of history, replicas copies (1 when 0), file
// storage. It is idempotent.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	if replicas < 0 || replicas > 5 {
		return nil, fmt.Errorf("challenge: bucket: replicas %d out of range 0..5", replicas)
	}
	if replicas == 0 {
		replicas = 1
	}
	kv, err := queue.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:         Bucket,
		Description:    "Herald proof-of-work challenges and used-challenge markers",
		History:        1,
		TTL:            bucketMaxAge,
		LimitMarkerTTL: limitMarkerTTL,
		Storage:        jetstream.FileStorage,
		Replicas:       replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("challenge: ensure bucket %s: %w", Bucket, err)
	}
	return kv, nil
}

// record is a challenge as stored under recordKey(id). It holds no address:
// only a hash of the client's IP, enough to check that the solution comes
// from the client the challenge was issued to.
type record struct {
	Seed       string    `json:"seed"`
	Difficulty int       `json:"difficulty"`
	IPHash     string    `json:"ip_hash"`
	Group      string    `json:"group"`
	BucketKey  string    `json:"bucket_key"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// recordKey is the KV key of challenge id's record.
func recordKey(id string) string { return "c." + id }

// usedKey is the KV key of the marker created, exactly once, when challenge
// id is solved.
func usedKey(id string) string { return "u." + id }

// ipHash is the stored form of a client address.
func ipHash(ip string) string {
	sum := sha256.Sum256([]byte("herald challenge ip\x00" + canonicalIP(ip)))
	return hex.EncodeToString(sum[:16])
}

// canonicalIP spells an address one way (IPv4-mapped IPv6 as IPv4, zones
// kept), so the same client always compares equal; anything unparsable is
// kept as it is.
func canonicalIP(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	return a.Unmap().String()
}
