package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/heraldrelay/herald/internal/vault"
)

// Files in the data directory holding generated secrets.
const (
	encryptionKeyFile = "encryption.key"
	apiSecretFile     = "api.secret"
	vaultKeyFile      = "vault.key"
)

// ensureSecrets fills in an encryption key, an API secret (ingest only) and
// a vault key that the configuration left out, from the data directory.
// With generate (a single `herald serve` on its embedded NATS) a missing one
// is generated there once (mode 0600) and reused on later starts. Without it
// the process shares NATS with other Herald processes, which must all hold
// the same keys: one it cannot find is an error naming the setting, never a
// key of its own that would make the others' jobs undeliverable. It logs the
// file, never the value.
func ensureSecrets(cfg *Config, r role, generate bool, logger *slog.Logger) error {
	fill := func(have []string, file, what, setting, hint string, make func() (string, error)) ([]string, error) {
		if len(have) > 0 {
			return have, nil
		}
		path := filepath.Join(cfg.DataDir, file)
		if !generate {
			s, err := loadSecretFile(path, what)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s is required: this process joins NATS with other Herald processes, which must all use the same %s; a key of its own would leave theirs unreadable (Herald generates one into data_dir only for a single herald serve on its embedded NATS)%s", setting, what, hint)
			}
			if err != nil {
				return nil, err
			}
			return []string{s}, nil
		}
		s, err := loadOrCreateFile(path, what, make, logger)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	var err error
	if cfg.Encryption.Keys, err = fill(cfg.Encryption.Keys, encryptionKeyFile, "encryption key", "encryption.keys (or ENCRYPTION_KEY)", "", randomSecret); err != nil {
		return err
	}
	if r.ingest {
		if cfg.Ingest.APISecrets, err = fill(cfg.Ingest.APISecrets, apiSecretFile, "API secret", "ingest.api_secrets (or VPS_SECRET)", "", randomSecret); err != nil {
			return err
		}
	}
	if cfg.Vault.Keys, err = fill(cfg.Vault.Keys, vaultKeyFile, "vault key", "vault.keys (HERALD_VAULT_KEYS)", ": `herald vault key` prints one", vault.GenerateKey); err != nil {
		return err
	}
	return nil
}

// loadSecretFile reads the secret in path; an error wrapping fs.ErrNotExist
// when there is none.
func loadSecretFile(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s file %s is empty: delete it to generate a new one", what, path)
	}
	return s, nil
}

// loadOrCreateSecret reads path, or writes 32 random bytes there as unpadded
// base64url (43 ASCII characters, so its first 32 make a valid key).
func loadOrCreateSecret(path, what string, logger *slog.Logger) (string, error) {
	return loadOrCreateFile(path, what, randomSecret, logger)
}

// randomSecret is 32 random bytes as unpadded base64url.
func randomSecret() (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

// loadOrCreateFile reads the secret in path, or writes one made by generate
// there (mode 0600) when the file does not exist.
func loadOrCreateFile(path, what string, generate func() (string, error), logger *slog.Logger) (string, error) {
	if s, err := loadSecretFile(path, what); !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	s, err := generate()
	if err != nil {
		return "", err
	}
	// O_EXCL: two processes starting at once must not both write a key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateFile(path, what, generate, logger)
	}
	if err != nil {
		return "", fmt.Errorf("write %s: %w", what, err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", what, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", what, err)
	}
	logger.Info("generated "+what+" (configure your own to replace it)", "file", path)
	return s, nil
}
