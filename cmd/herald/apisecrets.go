package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// apiSecretSources names where each of n API secrets (ingest.api_secrets
// as loaded, before VPS_SECRET) was set: "HERALD_INGEST_API_SECRETS #2",
// "ingest.api_secrets #1 in config.yaml:12".
func apiSecretSources(n int, path string, getenv func(string) string) []string {
	const key = "ingest.api_secrets"
	name := func(i int) string { return fmt.Sprintf("%s #%d", key, i) }
	if env := envName(key); getenv(env) != "" {
		name = func(i int) string { return fmt.Sprintf("%s #%d", env, i) }
	} else if line := yamlKeyLines(path)[key]; line > 0 {
		name = func(i int) string { return fmt.Sprintf("%s #%d in %s:%d", key, i, path, line) }
	}
	out := make([]string, n)
	for i := range out {
		out[i] = name(i + 1)
	}
	return out
}

// compactNamed is compact over values, keeping names[i] beside values[i].
func compactNamed(values, names []string) ([]string, []string) {
	var vs, ns []string
	for i, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			vs = append(vs, v)
			name := ""
			if i < len(names) {
				name = names[i]
			}
			ns = append(ns, name)
		}
	}
	return vs, ns
}

// fingerprintPurpose separates API secret fingerprints from other keyed
// hashes.
const fingerprintPurpose = "herald api secret fingerprint\x00"

// secretFingerprint is a short keyed hash of an API secret, for logs: the
// first 4 bytes of HMAC-SHA256 under key (the first encryption key), in hex.
// It tells secrets apart and is the same on every process with the same
// keys, and without the key it is no help in guessing the secret.
func secretFingerprint(key, secret string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(fingerprintPurpose))
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil)[:4])
}

// logAPISecrets logs the API secrets the ingest accepts, each by where it
// was set and its fingerprint, never its value; and warns when data_dir
// holds an api.secret that is not among them (a configured secret, such as
// VPS_SECRET, means the file is not read).
func (a *App) logAPISecrets() {
	cfg := a.cfg.Ingest
	key := a.cfg.Encryption.Keys[0]
	inForce := make([]string, len(cfg.APISecrets))
	for i, s := range cfg.APISecrets {
		name := "ingest.api_secrets"
		if i < len(cfg.sources) && cfg.sources[i] != "" {
			name = cfg.sources[i]
		}
		inForce[i] = name + " (fingerprint " + secretFingerprint(key, s) + ")"
	}
	a.logger.Info("API secrets in force", "count", len(inForce), "secrets", strings.Join(inForce, ", "))

	path := filepath.Join(a.cfg.DataDir, apiSecretFile)
	if slices.Contains(cfg.sources, path) {
		return
	}
	if s, err := loadSecretFile(path, "API secret"); err == nil && !slices.Contains(cfg.APISecrets, s) {
		a.logger.Warn("the API secret in data_dir is not accepted: API secrets are configured, so it is not read; add it to ingest.api_secrets to accept it, or delete the file",
			"file", path, "fingerprint", secretFingerprint(key, s), "configured", strings.Join(inForce, ", "))
	}
}
