package queue

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// Auth is how a client proves who it is to NATS, and how it checks the
// server. At most one of CredsFile, NKeyFile and Token is set; a user and
// password travel in the URL instead (nats://user:pass@host:4222). The zero
// Auth connects as an anonymous client without TLS (unless the server asks
// for TLS and its certificate is trusted by the system).
type Auth struct {
	// CredsFile is a credentials file (a user JWT and its nkey seed, as
	// `nsc` or the NATS account server writes them), for servers in operator
	// (decentralised JWT) mode.
	CredsFile string
	// NKeyFile is a file holding a user nkey seed ("SU..."); the server
	// lists the matching public key ("U...") among its nkey users.
	NKeyFile string
	// Token is a bearer token the server is configured with
	// (authorization { token: ... }).
	Token string
	// TLS configures a TLS connection: the CA that signed the server's
	// certificate, and a client certificate for servers that verify clients.
	TLS TLS
}

// TLS names PEM files. CAFile alone turns TLS on and trusts only that CA
// (plus nothing else); CertFile and KeyFile, given together, present a client
// certificate.
type TLS struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// Enabled reports whether any TLS file is set.
func (t TLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// Kind names the credential Auth carries, for messages: "credentials file",
// "nkey seed", "token" or "" when there is none.
func (a Auth) Kind() string {
	switch {
	case a.CredsFile != "":
		return "credentials file"
	case a.NKeyFile != "":
		return "nkey seed"
	case a.Token != "":
		return "token"
	}
	return ""
}

// Validate checks that at most one credential is given and that every file
// named can be read. Errors name the field, never a token.
func (a Auth) Validate() error {
	var errs []error
	n := 0
	for _, set := range []bool{a.CredsFile != "", a.NKeyFile != "", a.Token != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, errors.New("queue: auth: give one of a credentials file, an nkey seed file and a token, not several"))
	}
	if a.Token != "" && strings.TrimSpace(a.Token) != a.Token {
		errs = append(errs, errors.New("queue: auth: the token has leading or trailing white space"))
	}
	if (a.TLS.CertFile == "") != (a.TLS.KeyFile == "") {
		errs = append(errs, errors.New("queue: auth: a TLS client certificate needs both its certificate and its key file"))
	}
	for _, f := range []struct{ what, path string }{
		{"credentials file", a.CredsFile},
		{"nkey seed file", a.NKeyFile},
		{"TLS CA file", a.TLS.CAFile},
		{"TLS certificate file", a.TLS.CertFile},
		{"TLS key file", a.TLS.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("queue: auth: %s: %w", f.what, err))
		}
	}
	return errors.Join(errs...)
}

// Options returns the client options that carry a. It validates a first.
func (a Auth) Options() ([]nats.Option, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NKeyFile)
		if err != nil {
			// The nkeys parser's errors never quote the seed.
			return nil, fmt.Errorf("queue: auth: nkey seed file %s: %w", a.NKeyFile, err)
		}
		opts = append(opts, o)
	case a.Token != "":
		opts = append(opts, nats.Token(a.Token))
	}
	if a.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(a.TLS.CAFile))
	}
	if a.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(a.TLS.CertFile, a.TLS.KeyFile))
	}
	if a.TLS.Enabled() {
		opts = append(opts, nats.Secure())
	}
	return opts, nil
}

// secrets lists what must never appear in a message about a.
func (a Auth) secrets() []string {
	if a.Token == "" {
		return nil
	}
	return []string{a.Token}
}

// AuthError is Connect's error when the server refused the client's
// credentials: retrying with the same ones cannot succeed.
type AuthError struct {
	// Server is the address tried, without credentials.
	Server string
	Err    error
}

func (e *AuthError) Error() string {
	return "authorization violation at " + e.Server + ": check the NATS credentials"
}

func (e *AuthError) Unwrap() error { return e.Err }

// TLSError is Connect's error when no TLS connection could be set up with
// the server (a certificate not trusted, no client certificate, TLS wanted on
// one side only).
type TLSError struct {
	Server string
	Err    error
}

func (e *TLSError) Error() string {
	return "TLS with " + e.Server + " failed: " + e.Err.Error()
}

func (e *TLSError) Unwrap() error { return e.Err }

// isAuthErr reports whether err is the server refusing the credentials.
func isAuthErr(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired) ||
		errors.Is(err, nats.ErrNkeysNotSupported)
}

// isTLSErr reports whether err is a failure to set up TLS.
func isTLSErr(err error) bool {
	if errors.Is(err, nats.ErrTLS) || errors.Is(err, nats.ErrSecureConnRequired) || errors.Is(err, nats.ErrSecureConnWanted) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "tls:") || strings.Contains(s, "x509:")
}
