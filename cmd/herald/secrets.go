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
// with other Herald processes, which must all hold the same keys: the ones it
// cannot find are one error naming every missing setting and why it must be
// shared, never a key of its own that would make the others' jobs
// undeliverable.
func ensureSecrets(cfg *Config, r role, generate bool) (created []newSecret, err error) {
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
		s, fresh, err := loadOrNewSecret(path, what, make)
		if err != nil {
			return nil, err
		}
		if fresh != nil {
			created = append(created, *fresh)
		}
		return []string{s}, nil
	}
	if cfg.Encryption.Keys, err = fill(cfg.Encryption.Keys, encryptionKeyFile, "encryption key", "ENCRYPTION_KEY (or encryption.keys)",
		"the key your clients seal credentials with (a Streaky Worker's ENCRYPTION_KEY); jobs sealed under another key cannot be delivered", randomSecret); err != nil {
		return nil, err
	}
	if r.ingest {
		configured := len(cfg.Ingest.APISecrets) > 0
		if cfg.Ingest.APISecrets, err = fill(cfg.Ingest.APISecrets, apiSecretFile, "API secret", "VPS_SECRET (or ingest.api_secrets)",
			"the X-API-Secret your clients send; a secret of this process's own would be known to no client, and every ingest behind one address must accept the same secrets", randomSecret); err != nil {
			return nil, err
		}
		if !configured && cfg.Ingest.APISecrets != nil {
			cfg.Ingest.sources = []string{filepath.Join(cfg.DataDir, apiSecretFile)}
		}
	}
	if cfg.Vault.Keys, err = fill(cfg.Vault.Keys, vaultKeyFile, "vault key", "HERALD_VAULT_KEYS (or vault.keys)",
		"seals stored credentials; every ingest and worker must hold the same keys to open them", vault.GenerateKey); err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing %s, which this process must share with the other Herald processes on its NATS (Herald generates keys into data_dir only for a single herald serve on its embedded NATS; `herald vault key --env` prints a fresh set):\n  %s",
			plural(len(missing), "setting"), strings.Join(missing, "\n  "))
	}
	return created, nil
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
