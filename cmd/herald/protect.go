package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald/internal/challenge"
	"github.com/heraldrelay/herald/internal/ratelimit"
)

// challengeKeyFile holds the generated clearance signing key.
const challengeKeyFile = "challenge.key"

// generatedChallengeKID is the key id of a generated signing key.
const generatedChallengeKID = "local"

// protection is the abuse protection in front of the public endpoints: the
// token buckets and the proof-of-work challenge a limited client may solve.
type protection struct {
	limiter   *ratelimit.Limiter
	challenge *challenge.Service
	wrap      func(http.Handler) http.Handler
}

// limiterConfig maps the ratelimit section onto the package's Config.
func (c RateLimitConfig) limiterConfig() ratelimit.Config {
	b := func(g BucketConfig) ratelimit.Bucket {
		return ratelimit.Bucket{MaxTokens: g.MaxTokens, RefillRate: g.RefillRate, RefillTime: g.RefillTime}
	}
	return ratelimit.Config{
		Default:      ratelimit.Bucket{MaxTokens: c.MaxTokens, RefillRate: c.RefillRate, RefillTime: c.RefillTime},
		OnStoreError: c.OnStoreError,
		Groups: map[string]ratelimit.Bucket{
			ratelimit.GroupStreaky:   b(c.Groups.Streaky),
			ratelimit.GroupAPI:       b(c.Groups.API),
			ratelimit.GroupRegister:  b(c.Groups.Register),
			ratelimit.GroupChallenge: b(c.Groups.Challenge),
		},
	}
}

// serviceConfig maps the challenge section onto the package's Config.
func (c ChallengeConfig) serviceConfig() challenge.Config {
	return challenge.Config{
		Difficulty:          c.Difficulty,
		MaxDifficulty:       c.MaxDifficulty,
		EscalateAfterSolves: c.EscalateAfterSolves,
		TTL:                 c.TTL,
		ClearanceTTL:        c.ClearanceTTL,
		Keys:                c.Keys,
	}
}

// parseTrustedProxies reads ingest.trusted_proxies: networks in CIDR
// notation or single addresses.
func parseTrustedProxies(in []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, s := range in {
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or a network (CIDR)", s)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or a network (CIDR)", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// openProtection builds the limiter and the challenge service on js.
// apiClient tells the id of the API secret a request carries (never the
// secret). It returns nil when ratelimit.enabled is false.
//
// Without challenge.keys (or data_dir/challenge.key) a process joining a
// shared NATS signs with keys derived from the vault keys (derive is
// vault.Vault.DeriveKeys), which every ingest holds alike.
func (a *App) openProtection(ctx context.Context, js jetstream.JetStream, apiClient func(*http.Request) (string, bool), derive func(purpose string) [][]byte) (*protection, error) {
	if !a.cfg.RateLimit.Enabled {
		return nil, nil
	}
	proxies, err := parseTrustedProxies(a.cfg.Ingest.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("config: ingest.trusted_proxies: %w", err)
	}
	lcfg := a.cfg.RateLimit.limiterConfig()
	kv, err := ratelimit.EnsureBucket(ctx, js, lcfg, a.cfg.NATS.Stream.Replicas)
	if err != nil {
		return nil, fmt.Errorf("rate limit bucket: %w", err)
	}
	lim, err := ratelimit.New(lcfg, kv, a.metrics, a.logger)
	if err != nil {
		return nil, fmt.Errorf("config: ratelimit: %w", err)
	}

	keys := a.cfg.Challenge.Keys
	if len(keys) == 0 {
		path := filepath.Join(a.cfg.DataDir, challengeKeyFile)
		var k string
		if a.generatesSecrets() {
			var fresh *newSecret
			if k, fresh, err = loadOrNewSecret(path, "challenge signing key", randomSecret); fresh != nil {
				a.newSecrets = append(a.newSecrets, *fresh) // written at the end of Open
			}
		} else if k, err = loadSecretFile(path, "challenge signing key"); errors.Is(err, fs.ErrNotExist) {
			// Every ingest must sign and check clearances with the same
			// keys, or a clearance from one is refused by the next: keys
			// derived from the vault keys, which they all share, are.
			k, err = "", nil
			keys = derivedChallengeKeys(derive)
		}
		if err != nil {
			return nil, err
		}
		if k != "" {
			keys = []string{generatedChallengeKID + ":" + k}
		}
	}
	id := &ratelimit.Identifier{TrustedProxies: proxies, IPv6Prefix: a.cfg.HTTP.IPv6ClientPrefix, APIClient: apiClient}
	ccfg := a.cfg.Challenge.serviceConfig()
	ccfg.Keys = keys
	ccfg.ClientIP = id.ClientIP
	ccfg.OnSolved = func(ctx context.Context, group, bucketKey string) {
		if group == ratelimit.GroupChallenge {
			return // never: a solve would pay for the next challenges
		}
		if err := lim.Reset(ctx, group, bucketKey); err != nil {
			a.logger.Warn("could not reset a solved client's bucket", "group", group, "err", err.Error())
		}
	}
	ckv, err := challenge.EnsureBucket(ctx, js, a.cfg.NATS.Stream.Replicas)
	if err != nil {
		return nil, fmt.Errorf("challenge bucket: %w", err)
	}
	svc, err := challenge.New(ccfg, ckv, a.metrics, a.logger)
	if err != nil {
		return nil, fmt.Errorf("config: challenge: %w", err)
	}
	id.Clearance = svc.Clearance
	onLimited := func(w http.ResponseWriter, r *http.Request, c ratelimit.Client, group string, d ratelimit.Decision) {
		if group == ratelimit.GroupChallenge {
			// Over its budget of solution checks, a client waits: a
			// challenge here would let solving buy more solving.
			ratelimit.WriteLimited(w, d)
			return
		}
		svc.Respond(w, r, c.IP, group, c.KeyFor(group), d.RetryAfter)
	}
	return &protection{limiter: lim, challenge: svc, wrap: lim.Middleware(id, nil, onLimited)}, nil
}

// challengePurpose names the clearance signing keys derived from the vault
// keys.
const challengePurpose = "challenge clearance"

// derivedChallengeKeys are challenge.keys derived from the vault keys,
// newest first, so they rotate with them. A key's id is a hash of the key,
// the same on every process.
func derivedChallengeKeys(derive func(purpose string) [][]byte) []string {
	var out []string
	for _, k := range derive(challengePurpose) {
		sum := sha256.Sum256(k)
		out = append(out, "v"+hex.EncodeToString(sum[:6])+":"+base64.RawURLEncoding.EncodeToString(k))
	}
	return out
}
