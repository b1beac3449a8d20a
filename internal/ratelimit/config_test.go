package ratelimit

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero", Config{}, ""},
		{"full", Config{
			Default:      Bucket{MaxTokens: 10, RefillRate: 1, RefillTime: time.Second},
			Groups:       map[string]Bucket{GroupRegister: {MaxTokens: 3, RefillTime: time.Minute}},
			OnStoreError: OnStoreErrorDeny,
			KeyTTL:       time.Hour,
		}, ""},
		{"negative tokens", Config{Default: Bucket{MaxTokens: -1}}, "max tokens"},
		{"negative rate", Config{Default: Bucket{RefillRate: -1}}, "refill rate"},
		{"sub-ms refill", Config{Default: Bucket{RefillTime: time.Microsecond}}, "refill time"},
		{"unknown group", Config{Groups: map[string]Bucket{"regsiter": {}}}, `unknown group "regsiter"`},
		{"bad group bucket", Config{Groups: map[string]Bucket{GroupAPI: {MaxTokens: -5}}}, "group api"},
		{"bad policy", Config{OnStoreError: "ignore"}, "on store error"},
		{"negative ttl", Config{KeyTTL: -time.Second}, "negative"},
		{"ttl shorter than refill", Config{KeyTTL: 30 * time.Second}, "shorter than the 1m0s"},
		{"negative cache", Config{CacheSize: -1}, "cache size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{
		Default: Bucket{MaxTokens: 30},
		Groups:  map[string]Bucket{GroupRegister: {MaxTokens: 5, RefillTime: 10 * time.Minute}},
	}.withDefaults()
	if c.Default != (Bucket{MaxTokens: 30, RefillRate: DefaultRefillRate, RefillTime: DefaultRefillTime}) {
		t.Errorf("Default = %+v", c.Default)
	}
	if g := c.Groups[GroupRegister]; g != (Bucket{MaxTokens: 5, RefillRate: 1, RefillTime: 10 * time.Minute}) {
		t.Errorf("register = %+v", g)
	}
	if c.OnStoreError != OnStoreErrorAllow || c.CacheSize != DefaultCacheSize {
		t.Errorf("policy %q, cache %d", c.OnStoreError, c.CacheSize)
	}
	// register refills 5 tokens at one per 10 minutes: 50 minutes.
	if c.KeyTTL != 50*time.Minute {
		t.Errorf("KeyTTL = %s, want 50m", c.KeyTTL)
	}
	for _, tc := range []struct {
		cfg  Config
		want time.Duration
	}{
		{Config{}, MinKeyTTL},
		{Config{Default: Bucket{MaxTokens: 5, RefillRate: 2, RefillTime: 20 * time.Second}}, MinKeyTTL},
		{Config{Default: Bucket{MaxTokens: 5, RefillRate: 2, RefillTime: 25 * time.Second}}, 63 * time.Second},
		{Config{Default: Bucket{MaxTokens: 7, RefillRate: 1, RefillTime: 10*time.Second + 100*time.Millisecond}}, 71 * time.Second},
		{Config{KeyTTL: 3 * time.Hour}, 3 * time.Hour},
	} {
		if got := tc.cfg.IdleTTL(); got != tc.want {
			t.Errorf("IdleTTL(%+v) = %s, want %s", tc.cfg, got, tc.want)
		}
	}
}

func TestBucketFullIn(t *testing.T) {
	if got := (Bucket{MaxTokens: 60, RefillRate: 1, RefillTime: time.Second}).FullIn(); got != time.Minute {
		t.Errorf("FullIn = %s", got)
	}
	if got := (Bucket{MaxTokens: 10, RefillRate: 4, RefillTime: time.Second}).FullIn(); got != 2500*time.Millisecond {
		t.Errorf("FullIn = %s", got)
	}
}
