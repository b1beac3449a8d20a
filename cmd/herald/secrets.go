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

// ensureSecrets fills in an encryption key, an API secret and a vault key
// that the configuration left out: generated once into the data directory
// (mode 0600) and reused on later starts. It logs the file, never the value.
func ensureSecrets(cfg *Config, logger *slog.Logger) error {
	if len(cfg.Encryption.Keys) == 0 {
		k, err := loadOrCreateSecret(filepath.Join(cfg.DataDir, encryptionKeyFile), "encryption key", logger)
		if err != nil {
			return err
		}
		cfg.Encryption.Keys = []string{k}
	}
	if len(cfg.Ingest.APISecrets) == 0 {
		s, err := loadOrCreateSecret(filepath.Join(cfg.DataDir, apiSecretFile), "API secret", logger)
		if err != nil {
			return err
		}
		cfg.Ingest.APISecrets = []string{s}
	}
	if len(cfg.Vault.Keys) == 0 {
		k, err := loadOrCreateFile(filepath.Join(cfg.DataDir, vaultKeyFile), "vault key", vault.GenerateKey, logger)
		if err != nil {
			return err
		}
		cfg.Vault.Keys = []string{k}
	}
	return nil
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
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s file %s is empty: delete it to generate a new one", what, path)
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", what, err)
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
