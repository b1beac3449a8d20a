package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/register"
	"github.com/heraldrelay/herald/internal/vault"
	"github.com/heraldrelay/herald/publisher"
)

// VaultConfig is the credential vault's section.
type VaultConfig struct {
	Keys                []string      `mapstructure:"keys"`
	RequireVerification bool          `mapstructure:"require_verification"`
	SecretMaxTTL        time.Duration `mapstructure:"secret_max_ttl"`
	CodeTTL             time.Duration `mapstructure:"code_ttl"`
}

// check reports the section's problems through bad (see Config.validate).
func (c VaultConfig) check(bad func(key, format string, args ...any)) {
	for i, k := range c.Keys {
		if _, err := vault.ParseKey(k); err != nil {
			bad("vault.keys", "key %d: %v", i+1, err)
		}
	}
	if c.SecretMaxTTL < vault.MinSecretTTL {
		bad("vault.secret_max_ttl", "must be at least %s", vault.MinSecretTTL)
	}
	if c.CodeTTL < time.Minute || c.CodeTTL > vault.DefaultPendingTTL {
		bad("vault.code_ttl", "must be between 1m and %s", vault.DefaultPendingTTL)
	}
}

// vaultConfig is the vault.Config the section describes.
func (c VaultConfig) vaultConfig() vault.Config {
	return vault.Config{
		Keys:                c.Keys,
		RequireVerification: c.RequireVerification,
		SecretMaxTTL:        c.SecretMaxTTL,
		CodeTTL:             c.CodeTTL,
	}
}

// openVault ensures the vault's buckets and builds the vault. Verification
// codes travel as ordinary jobs, sealed with the job keyring.
func (a *App) openVault(ctx context.Context, checkers map[herald.Channel]vault.TargetChecker) (*vault.Vault, error) {
	creds, secrets, err := vault.EnsureBuckets(ctx, a.js, vault.BucketConfig{
		Replicas:     a.cfg.NATS.Stream.Replicas,
		SecretMaxTTL: a.cfg.Vault.SecretMaxTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("vault buckets: %w", err)
	}
	v, err := vault.New(a.cfg.Vault.vaultConfig(), vault.Deps{
		Credentials: creds,
		Secrets:     secrets,
		Checkers:    checkers,
		Notifier:    &vault.JobNotifier{Keys: a.keys, Publisher: publisher.New(a.js)},
		Metrics:     a.metrics,
		Logger:      a.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("config: vault.keys (or data_dir/%s): %w", vaultKeyFile, err)
	}
	return v, nil
}

// mountRegister serves the registration page on mux, its forms signed with
// keys derived from the vault keys (the same on every replica).
// verificationWait, when not nil, refuses registrations while verification
// messages cannot be sent (the pacer's share for them is spent).
func mountRegister(mux *http.ServeMux, v *vault.Vault, logger *slog.Logger, verificationWait func() time.Duration) error {
	page, err := register.New(register.Config{CSRFKeys: v.DeriveKeys(register.CSRFPurpose)},
		register.Deps{Vault: v, Logger: logger, VerificationWait: verificationWait})
	if err != nil {
		return fmt.Errorf("register page: %w", err)
	}
	h := page.Handler()
	mux.Handle(register.Path, h)
	mux.Handle(register.Path+"/", h)
	return nil
}

// vaultConnectTimeout bounds reaching NATS from the vault commands.
const vaultConnectTimeout = 5 * time.Second

// newVaultCmd is `herald vault`: key generation and rotation.
func newVaultCmd(configPath *string, getenv func(string) string) *cobra.Command {
	return newVaultCmdWith(configPath, getenv, isTerminal)
}

// newVaultCmdWith is newVaultCmd with the terminal check injected.
func newVaultCmdWith(configPath *string, getenv func(string) string, terminal func(any) bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "Manage the credential vault's keys",
		Long: `The credential vault keeps destinations registered with POST /v1/credentials or
the /register page sealed (AES-256-GCM) under vault.keys, newest first: the
first seals, all open.

To rotate: generate a key (herald vault key), put it first in vault.keys on
every Herald process and restart them, then run 'herald vault rotate', which
re-seals every credential under it. Remove an old key only once rotate reports
no failures, and not before vault.secret_max_ttl has passed (read-once secrets
are not re-sealed; they expire instead).`,
		Args: cobra.NoArgs,
	}
	var timeout time.Duration
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Re-seal every credential under the newest vault key",
		Long: `Re-seal every stored credential that is not under the first key of vault.keys.
Each record is re-sealed with a compare-and-set on the revision it was read at,
so concurrent changes are never overwritten, and every record stays readable by
one of the configured keys throughout: jobs keep flowing. If it stops half-way,
run it again: records already under the newest key are skipped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVaultRotate(cmd, *configPath, getenv, terminal, timeout)
		},
	}
	rotate.Flags().DurationVar(&timeout, "timeout", vaultConnectTimeout, "how long to wait for NATS")
	var env bool
	key := &cobra.Command{
		Use:   "key",
		Short: "Print a new vault key (kid:base64 of 32 random bytes), or with --env every secret a split deployment shares",
		Long: `Print a new vault key (kid:base64 of 32 random bytes), for vault.keys
(HERALD_VAULT_KEYS) or, in the same form, challenge.keys.

With --env, print a fresh set of every secret the Herald processes sharing one
NATS must agree on, as an environment file (NAME=value lines, which a shell's
'set -a; . ./file', docker --env-file and Compose's .env all read):
ENCRYPTION_KEY, VPS_SECRET, HERALD_VAULT_KEYS, and HERALD_NATS_TOKEN for the
NATS server to require. Keep the file private. A Streaky Worker's deployment
replaces ENCRYPTION_KEY and VPS_SECRET with the Worker's own.`,
		Example: `  herald vault key
  herald vault key --env > herald.env
  docker run --rm herald:latest vault key --env > herald.env`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := vault.GenerateKey()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !env {
				fmt.Fprintln(out, k)
				return nil
			}
			return writeSharedEnv(out, k)
		},
	}
	key.Flags().BoolVar(&env, "env", false, "print every secret processes sharing one NATS need, as an environment file")
	cmd.AddCommand(key, rotate)
	return cmd
}

// writeSharedEnv writes a fresh set of the secrets every Herald process on
// one NATS shares, vaultKey among them, as an environment file.
func writeSharedEnv(w io.Writer, vaultKey string) error {
	vals := map[string]string{"HERALD_VAULT_KEYS": vaultKey}
	for _, name := range []string{"ENCRYPTION_KEY", "VPS_SECRET", "HERALD_NATS_TOKEN"} {
		v, err := randomSecret()
		if err != nil {
			return err
		}
		vals[name] = v
	}
	_, err := fmt.Fprintf(w, `# Secrets every Herald process sharing one NATS must agree on. Keep private.
# A Streaky Worker's deployment: replace ENCRYPTION_KEY and VPS_SECRET with the Worker's.
ENCRYPTION_KEY=%s
VPS_SECRET=%s
HERALD_VAULT_KEYS=%s
# The token the NATS server requires (nats-server --auth "$HERALD_NATS_TOKEN").
HERALD_NATS_TOKEN=%s
`, vals["ENCRYPTION_KEY"], vals["VPS_SECRET"], vals["HERALD_VAULT_KEYS"], vals["HERALD_NATS_TOKEN"])
	return err
}

func runVaultRotate(cmd *cobra.Command, configPath string, getenv func(string) string, terminal func(any) bool, timeout time.Duration) error {
	cfg, err := loadConfig(configPath, getenv)
	if err != nil {
		return err
	}
	keys, err := cliVaultKeys(cfg)
	if err != nil {
		return err
	}
	target, err := cfg.natsTarget()
	if err != nil {
		return err
	}
	addr := target.url
	ctx := cmd.Context()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := connectNATS(cctx, target, cfg.NATS.Name+"-vault", slog.New(slog.DiscardHandler), cliUnreachable)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	out, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	kv, err := js.KeyValue(cctx, vault.CredentialsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		fmt.Fprintln(out, "no credentials were ever stored on this NATS: nothing to re-seal")
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot reach JetStream at %s: %w", queue.RedactURLs(addr), err)
	}
	cfg.Vault.Keys = keys
	v, err := vault.New(cfg.Vault.vaultConfig(), vault.Deps{Credentials: kv})
	if err != nil {
		return err
	}
	var bar *progressBar
	var progress func(done, total int)
	if terminal(stderr) {
		bar = &progressBar{w: stderr}
		progress = bar.update
	}
	res, err := v.Rotate(ctx, progress)
	bar.finish()
	for _, p := range res.Problems {
		fmt.Fprintf(stderr, "credential %s: %s\n", p.ID, p.Error)
	}
	fmt.Fprintf(out, "re-sealed %s under key %s (%d already under it, %d deleted meanwhile, %d failed)\n",
		nCredentials(res.Resealed), res.KeyID, res.Current, res.Gone, res.Failed)
	if err != nil {
		return fmt.Errorf("%w; run the same command again to continue (every credential is still readable)", err)
	}
	if res.Failed > 0 {
		return fmt.Errorf("%s could not be re-sealed: keep every old key in vault.keys, fix the cause and run it again", nCredentials(res.Failed))
	}
	return nil
}

// cliVaultKeys returns the configured vault keys, else the one `herald
// serve` generated into data_dir. Unlike the server, the CLI never generates
// a key: a new one would open nothing.
func cliVaultKeys(cfg Config) ([]string, error) {
	if len(cfg.Vault.Keys) > 0 {
		return cfg.Vault.Keys, nil
	}
	path := filepath.Join(cfg.DataDir, vaultKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no vault key: set vault.keys (HERALD_VAULT_KEYS) or run where data_dir holds the %s herald serve generated", errUsage, vaultKeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("read vault key: %w", err)
	}
	return []string{strings.TrimSpace(string(b))}, nil
}

func nCredentials(n int) string {
	if n == 1 {
		return "1 credential"
	}
	return fmt.Sprintf("%d credentials", n)
}
