package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/heraldrelay/herald/crypto"
)

// newEncryptCmd seals a credential exactly as a Streaky Worker does, so users
// can build jobs for Herald's API or for NATS.
func newEncryptCmd(configPath *string, getenv func(string) string) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "encrypt [TEXT]",
		Short: "Seal a credential (webhook URL, bot token, chat id) as a Worker would",
		Long: `Seal a credential with AES-256-GCM in the Streaky Worker's format:
base64(IV(12) || ciphertext || tag(16)), keyed by the first 32 characters of
the encryption key. The text comes from the argument, or from standard input
when the argument is "-" or absent (which keeps it out of shell history).

The key is, in order: --key, ENCRYPTION_KEY, the first of encryption.keys in
the config, or the key 'herald serve' generated in data_dir.`,
		Example: `  herald encrypt https://discord.com/api/webhooks/123/abc
  printf %s "$BOT_TOKEN" | herald encrypt -`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text := ""
			if len(args) == 1 && args[0] != "-" {
				text = args[0]
			} else {
				sc := bufio.NewScanner(cmd.InOrStdin())
				sc.Buffer(make([]byte, 64*1024), 1<<20)
				if sc.Scan() {
					text = sc.Text()
				}
				if err := sc.Err(); err != nil {
					return fmt.Errorf("read standard input: %w", err)
				}
			}
			text = strings.TrimRight(text, "\r\n")
			if text == "" {
				return fmt.Errorf("%w: nothing to encrypt (give TEXT or pipe it on standard input)", errUsage)
			}
			k, err := encryptionKey(key, *configPath, getenv)
			if err != nil {
				return err
			}
			ring, err := crypto.NewKeyring(k)
			if err != nil {
				return err
			}
			sealed, err := ring.Seal(text)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), sealed)
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "encryption key (default: ENCRYPTION_KEY, config, or data_dir/encryption.key)")
	return cmd
}

func encryptionKey(flag, configPath string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	cfg, err := loadConfig(configPath, getenv)
	if err != nil {
		return "", err
	}
	if len(cfg.Encryption.Keys) > 0 {
		return cfg.Encryption.Keys[0], nil
	}
	path := filepath.Join(cfg.DataDir, encryptionKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("no encryption key: pass --key, set ENCRYPTION_KEY, or run 'herald serve' once to generate %s", path)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
