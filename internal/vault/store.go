package vault

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldrelay/herald/internal/queue"
	"github.com/nats-io/nats.go/jetstream"
)

// Buckets of the vault. Their names are part of Herald's contract with
// operators (backups, monitoring).
const (
	// CredentialsBucket holds sealed credentials, keyed "c.<id>".
	CredentialsBucket = "herald_vault"
	// SecretsBucket holds read-once secrets, keyed "s.<id>", each expiring
	// with its own TTL.
	SecretsBucket = "herald_secrets"
)

// markerTTL is how long a deleted key's marker is kept (per-key TTLs and
// purge markers with a TTL need the bucket's LimitMarkerTTL).
const markerTTL = time.Minute

// BucketConfig configures EnsureBuckets.
type BucketConfig struct {
	// Replicas is the number of copies of each bucket; 1 when 0.
	Replicas int
	// SecretMaxTTL is the longest a secret may live (Config.SecretMaxTTL);
	// DefaultSecretMaxTTL when 0. The secrets bucket drops anything older,
	// behind each secret's own TTL.
	SecretMaxTTL time.Duration
}

// EnsureBuckets creates the CredentialsBucket and SecretsBucket key-value
// buckets, or updates them if they exist: one revision of history, file
// storage, cfg.Replicas copies; the credentials bucket keeps its records
// until they are deleted, the secrets bucket expires each secret with its own
// TTL. It is idempotent.
func EnsureBuckets(ctx context.Context, js jetstream.JetStream, cfg BucketConfig) (credentials, secrets jetstream.KeyValue, err error) {
	if cfg.Replicas < 0 || cfg.Replicas > 5 {
		return nil, nil, fmt.Errorf("vault: buckets: replicas %d out of range 0..5", cfg.Replicas)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.SecretMaxTTL < 0 {
		return nil, nil, fmt.Errorf("vault: buckets: secret max TTL %s is negative", cfg.SecretMaxTTL)
	}
	if cfg.SecretMaxTTL == 0 {
		cfg.SecretMaxTTL = DefaultSecretMaxTTL
	}
	credentials, err = queue.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:         CredentialsBucket,
		Description:    "Herald credential vault (sealed destinations)",
		History:        1,
		LimitMarkerTTL: markerTTL,
		Storage:        jetstream.FileStorage,
		Replicas:       cfg.Replicas,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("vault: ensure bucket %s: %w", CredentialsBucket, err)
	}
	secrets, err = queue.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:      SecretsBucket,
		Description: "Herald read-once secrets (sealed)",
		History:     1,
		// A safety net behind each secret's own TTL.
		TTL:            cfg.SecretMaxTTL + time.Minute,
		LimitMarkerTTL: markerTTL,
		Storage:        jetstream.FileStorage,
		Replicas:       cfg.Replicas,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("vault: ensure bucket %s: %w", SecretsBucket, err)
	}
	return credentials, secrets, nil
}
