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
// the same keys: the ones it cannot find are one error naming every missing
// setting and why it must be shared, never a key of its own. It logs the
// file, never the value.
func ensureSecrets(cfg *Config, r role, generate bool, logger *slog.Logger) error {
	var missing []string
	fill := func(have []string, file, what, setting, why string, make func() (string, error)) ([]string, error) {
		if len(have) > 0 {
			return have, nil
		}
		path := filepath.Join(cfg.DataDir, file)
		if !generate {
			s, err := loadSecretFile(path, what)
			if errors.Is(err, fs.ErrNotExist) {
				missing = append(missing, setting+": "+why)
				return nil, nil
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
	if cfg.Encryption.Keys, err = fill(cfg.Encryption.Keys, encryptionKeyFile, "encryption key", "ENCRYPTION_KEY (or encryption.keys)",
		"the key your clients seal credentials with (a Streaky Worker's ENCRYPTION_KEY); jobs sealed under another key cannot be delivered", randomSecret); err != nil {
		return err
	}
	if r.ingest {
		if cfg.Ingest.APISecrets, err = fill(cfg.Ingest.APISecrets, apiSecretFile, "API secret", "VPS_SECRET (or ingest.api_secrets)",
			"the X-API-Secret your clients send; a secret of this process's own would be known to no client, and every ingest behind one address must accept the same secrets", randomSecret); err != nil {
			return err
		}
	}
	if cfg.Vault.Keys, err = fill(cfg.Vault.Keys, vaultKeyFile, "vault key", "HERALD_VAULT_KEYS (or vault.keys)",
		"seals stored credentials; every ingest and worker must hold the same keys to open them", vault.GenerateKey); err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s, which this process must share with the other Herald processes on its NATS (Herald generates keys into data_dir only for a single herald serve on its embedded NATS; `herald vault key --env` prints a fresh set):\n  %s",
			plural(len(missing), "setting"), strings.Join(missing, "\n  "))
	}
	return nil
}

// plural is "1 setting" or "n settings".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
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
