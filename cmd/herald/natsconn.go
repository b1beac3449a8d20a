package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/heraldrelay/herald/internal/queue"
)

// natsTokenFile holds the token `herald serve` generates for its embedded
// NATS server (nats.embedded.auth: token, no nats.token configured).
const natsTokenFile = "nats.token"

// Values of nats.embedded.auth.
const (
	embeddedAuthToken = "token"
	embeddedAuthNone  = "none"
)

// check reports the nats section's credential problems through bad (see
// Config.validate). Files are checked when a process connects, so commands
// that never reach NATS (encrypt, vault key) run without them.
func (c NATSConfig) check(bad func(key, format string, args ...any)) {
	switch c.Embedded.Auth {
	case embeddedAuthToken, embeddedAuthNone:
	default:
		bad("nats.embedded.auth", "must be token or none, not %q", c.Embedded.Auth)
	}
	var given []string
	for key, v := range map[string]string{"nats.creds_file": c.CredsFile, "nats.nkey_file": c.NKeyFile, "nats.token": c.Token} {
		if v != "" {
			given = append(given, key)
		}
	}
	if len(given) > 1 {
		bad("nats.token", "give one of nats.creds_file, nats.nkey_file and nats.token, not several")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("nats.tls.cert_file", "a client certificate needs both nats.tls.cert_file and nats.tls.key_file")
	}
	if c.URL != "" {
		return
	}
	if c.CredsFile != "" {
		bad("nats.creds_file", "needs nats.url: the embedded server has no JWT accounts; give it nats.token or nats.nkey_file")
	}
	if c.auth().TLS.Enabled() {
		bad("nats.tls", "needs nats.url: the embedded server speaks no TLS (keep it on a loopback address)")
	}
	if c.Embedded.Auth == embeddedAuthNone && (c.Token != "" || c.NKeyFile != "") {
		bad("nats.embedded.auth", "is none, but nats.token or nats.nkey_file is set for the embedded server: set auth to token, or remove them")
	}
}

// auth is the configured credentials and TLS as queue.Auth.
func (c NATSConfig) auth() queue.Auth {
	return queue.Auth{
		CredsFile: c.CredsFile,
		NKeyFile:  c.NKeyFile,
		Token:     c.Token,
		TLS:       queue.TLS{CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile},
	}
}

// natsTarget is the NATS a process connects to and how it proves itself:
// the one place where the configuration becomes a URL and client options,
// for every process and CLI command.
type natsTarget struct {
	url  string
	auth queue.Auth
	// embedded: nats.url is empty, so url is the embedded server's listener
	// (of this process, or of a herald serve on this host).
	embedded bool
	// tokenFile is where the token came from when it was read from
	// data_dir rather than configured.
	tokenFile string
	// userInURL: nats.url carries a user (and password) or a token.
	userInURL bool
}

// natsTarget returns where cfg's processes find NATS. With nats.url empty
// and no credential configured, a token that `herald serve` generated into
// data_dir is used, so the CLI and processes sharing the data directory
// reach a protected embedded server without configuration.
func (cfg Config) natsTarget() (natsTarget, error) {
	t := natsTarget{url: cfg.NATS.URL, auth: cfg.NATS.auth()}
	if t.url != "" {
		for _, raw := range strings.Split(t.url, ",") {
			if u, err := url.Parse(strings.TrimSpace(raw)); err != nil || u.User != nil {
				t.userInURL = true
			}
		}
		return t, nil
	}
	t.url, t.embedded = "nats://"+cfg.NATS.Embedded.Listen, true
	if t.auth.Kind() != "" {
		return t, nil
	}
	path := filepath.Join(cfg.DataDir, natsTokenFile)
	tok, err := loadSecretFile(path, "NATS token")
	switch {
	case err == nil:
		t.auth.Token, t.tokenFile = tok, path
	case !errors.Is(err, fs.ErrNotExist):
		return t, err
	}
	return t, nil
}

// credentials names what t gives NATS, for an authorization error.
func (t natsTarget) credentials() string {
	switch {
	case t.tokenFile != "":
		return "the token in " + t.tokenFile + " does not open this server: run where data_dir holds the nats.token of the herald serve that runs it, or set nats.token"
	case t.auth.CredsFile != "":
		return "nats.creds_file"
	case t.auth.NKeyFile != "":
		return "nats.nkey_file"
	case t.auth.Token != "":
		return "nats.token (HERALD_NATS_TOKEN)"
	case t.userInURL:
		return "the user and password in nats.url"
	case t.embedded:
		return "none given: the embedded server of herald serve asks for the token in its data_dir/nats.token; run where data_dir holds it, or set nats.token"
	}
	return "none given: set nats.token, nats.nkey_file, nats.creds_file, or a user:password in nats.url"
}

// connectNATS connects to t as client name within ctx. A server that refuses
// the credentials, or a TLS set-up that fails, gives an error saying so;
// any other failure to connect before ctx ends gives unreachable(address).
// No error holds a password or a token.
func connectNATS(ctx context.Context, t natsTarget, name string, logger *slog.Logger, unreachable func(addr string) error, opts ...nats.Option) (*nats.Conn, error) {
	nc, err := queue.ConnectAuth(ctx, t.url, name, t.auth, logger, opts...)
	if err == nil {
		return nc, nil
	}
	var authErr *queue.AuthError
	var tlsErr *queue.TLSError
	switch {
	case errors.As(err, &authErr):
		return nil, fmt.Errorf("%s (%s)", authErr.Error(), t.credentials())
	case errors.As(err, &tlsErr):
		return nil, fmt.Errorf("%s: check nats.tls.ca_file, nats.tls.cert_file and nats.tls.key_file", tlsErr.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil, unreachable(queue.RedactURLs(t.url))
	}
	return nil, fmt.Errorf("config: nats: %w", err)
}

// embeddedAuth is what this process's embedded server requires of clients,
// and the credentials this process then connects with. It generates the
// token for data_dir on the first start (nats.embedded.auth: token, no
// nats.token or nats.nkey_file configured).
func (a *App) embeddedAuth() (queue.EmbeddedConfig, error) {
	var ec queue.EmbeddedConfig
	n := a.cfg.NATS
	switch {
	case n.Embedded.Auth == embeddedAuthNone:
	case n.Token != "":
		ec.Token = n.Token
	case n.NKeyFile != "":
		pub, err := nkeyPublic(n.NKeyFile)
		if err != nil {
			return ec, err
		}
		ec.NKeys = []string{pub}
	default:
		// Written with the other generated secrets, once start-up got
		// through.
		tok, fresh, err := loadOrNewSecret(filepath.Join(a.cfg.DataDir, natsTokenFile), "NATS token", randomSecret)
		if err != nil {
			return ec, err
		}
		if fresh != nil {
			a.newSecrets = append(a.newSecrets, *fresh)
		}
		ec.Token = tok
	}
	return ec, nil
}

// nkeyPublic is the public key of the user nkey seed in file.
func nkeyPublic(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("config: nats.nkey_file: %w", err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return "", errors.New("config: nats.nkey_file: no user nkey seed (SU...) in " + file)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("config: nats.nkey_file: %w", err)
	}
	return pub, nil
}

// embeddedAuthSummary says, for the start-up log, what the embedded server
// asks of clients (never the token).
func embeddedAuthSummary(ec queue.EmbeddedConfig) string {
	switch {
	case ec.Token != "":
		return "token"
	case len(ec.NKeys) > 0:
		return "nkey"
	}
	return "none: any process that reaches the listener may read and change every stream and bucket"
}

// cliUnreachable is the CLI's message when no NATS answered at addr.
func cliUnreachable(addr string) error {
	return fmt.Errorf("cannot reach NATS at %s: is herald serve running? (%w)", addr, context.DeadlineExceeded)
}
