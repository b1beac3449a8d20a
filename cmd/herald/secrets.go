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
// is generated once and reused on later starts: it is returned among
// created, for writeSecrets to write into data_dir once start-up has got so
// far that the configuration cannot fail it any more (a bad key, a port in
// use must leave no file behind). Without generate the process shares NATS
// with other Herald processes, which must all hold the same keys: one it
// cannot find is an error naming the setting, never a key of its own that
// would make the others' jobs undeliverable.
func ensureSecrets(cfg *Config, r role, generate bool) (created []newSecret, err error) {
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
		s, fresh, err := loadOrNewSecret(path, what, make)
		if err != nil {
			return nil, err
		}
		if fresh != nil {
			created = append(created, *fresh)
		}
		return []string{s}, nil
	}
	if cfg.Encryption.Keys, err = fill(cfg.Encryption.Keys, encryptionKeyFile, "encryption key", "encryption.keys (or ENCRYPTION_KEY)", "", randomSecret); err != nil {
		return nil, err
	}
	if r.ingest {
		configured := len(cfg.Ingest.APISecrets) > 0
		if cfg.Ingest.APISecrets, err = fill(cfg.Ingest.APISecrets, apiSecretFile, "API secret", "ingest.api_secrets (or VPS_SECRET)", "", randomSecret); err != nil {
			return nil, err
		}
		if !configured {
			cfg.Ingest.sources = []string{filepath.Join(cfg.DataDir, apiSecretFile)}
		}
	}
	if cfg.Vault.Keys, err = fill(cfg.Vault.Keys, vaultKeyFile, "vault key", "vault.keys (HERALD_VAULT_KEYS)", ": `herald vault key` prints one", vault.GenerateKey); err != nil {
		return nil, err
	}
	return created, nil
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

// randomSecret is 32 random bytes as unpadded base64url (43 ASCII
// characters, so its first 32 make a valid key).
func randomSecret() (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

// newSecret is a secret generated at start-up, not yet in its file.
type newSecret struct {
	path, what, value string
}

// loadOrNewSecret reads the secret in path, or, when there is no such file,
// generates one with generate and returns it also as fresh, for
// writeSecrets.
func loadOrNewSecret(path, what string, generate func() (string, error)) (s string, fresh *newSecret, err error) {
	if s, err := loadSecretFile(path, what); !errors.Is(err, fs.ErrNotExist) {
		return s, nil, err
	}
	if s, err = generate(); err != nil {
		return "", nil, fmt.Errorf("generate %s: %w", what, err)
	}
	return s, &newSecret{path: path, what: what, value: s}, nil
}

// writeSecrets writes each generated secret into its file (mode 0600, the
// directory 0700) and logs the file, never the value. A file that appeared
// meanwhile is not overwritten: it is an error, since this process already
// uses the secret it generated. (Only a herald serve generates secrets, and
// it holds data_dir's lock, so no other Herald writes them.)
func writeSecrets(created []newSecret, logger *slog.Logger) error {
	for _, n := range created {
		if err := os.MkdirAll(filepath.Dir(n.path), 0o700); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		f, err := os.OpenFile(n.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write %s: %s appeared while Herald started (another process wrote it): start again to use it", n.what, n.path)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", n.what, err)
		}
		if _, err := f.WriteString(n.value + "\n"); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", n.what, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", n.what, err)
		}
		logger.Info("generated "+n.what+" (configure your own to replace it)", "file", n.path)
	}
	return nil
}
