package queue

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald/internal/testkit"
)

// Every kind of credential and TLS reaches a real server configured for it,
// and JetStream works on the connection; a wrong credential is an
// *AuthError saying "authorization violation at <address>: check the NATS
// credentials", and a TLS failure a *TLSError, neither holding a password or
// a token, in the error or the log.
func TestConnectAuth(t *testing.T) {
	const (
		token    = "tok-3f9a-right-token"
		badToken = "tok-wrong-token-77"
		password = "pw-hunter2-right"
		badPass  = "pw-wrong-pass-99"
	)
	seed, pub := testkit.NKeyUser(t)
	otherSeed, _ := testkit.NKeyUser(t)
	credsOpt, creds := testkit.CredsUser(t)
	tlsFiles := testkit.NewTLSFiles(t)
	otherCA := testkit.NewTLSFiles(t).CA

	tokenSrv := testkit.NewServer(t, testkit.WithToken(token))
	userSrv := testkit.NewServer(t, testkit.WithUser("herald", password))
	nkeySrv := testkit.NewServer(t, testkit.WithNKeys(pub))
	credsSrv := testkit.NewServer(t, credsOpt)
	tlsSrv := testkit.NewServer(t, testkit.WithTLS(t, tlsFiles, true))
	tlsAuthSrv := testkit.NewServer(t, testkit.WithTLS(t, tlsFiles, false), testkit.WithToken(token))
	addr := func(s *testkit.Server) string { return "nats://" + testkit.Addr(s.Port()) }
	withUser := func(s *testkit.Server, pass string) string {
		return "nats://herald:" + pass + "@" + testkit.Addr(s.Port())
	}
	clientTLS := TLS{CAFile: tlsFiles.CA, CertFile: tlsFiles.ClientCert, KeyFile: tlsFiles.ClientKey}

	tests := []struct {
		name    string
		url     string
		auth    Auth
		wantErr string // "" connects; "auth" an *AuthError; "tls" a *TLSError
	}{
		{"token", addr(tokenSrv), Auth{Token: token}, ""},
		{"token in the URL", "nats://" + token + "@" + testkit.Addr(tokenSrv.Port()), Auth{}, ""},
		{"wrong token", addr(tokenSrv), Auth{Token: badToken}, "auth"},
		{"no token", addr(tokenSrv), Auth{}, "auth"},
		{"user and password", withUser(userSrv, password), Auth{}, ""},
		{"wrong password", withUser(userSrv, badPass), Auth{}, "auth"},
		{"nkey seed", addr(nkeySrv), Auth{NKeyFile: seed}, ""},
		{"another nkey", addr(nkeySrv), Auth{NKeyFile: otherSeed}, "auth"},
		{"credentials file", addr(credsSrv), Auth{CredsFile: creds}, ""},
		{"no credentials file", addr(credsSrv), Auth{}, "auth"},
		{"TLS with a client certificate", addr(tlsSrv), Auth{TLS: clientTLS}, ""},
		{"TLS without a client certificate", addr(tlsSrv), Auth{TLS: TLS{CAFile: tlsFiles.CA}}, "tls"},
		{"TLS, server signed by another CA", addr(tlsSrv), Auth{TLS: TLS{CAFile: otherCA, CertFile: tlsFiles.ClientCert, KeyFile: tlsFiles.ClientKey}}, "tls"},
		{"TLS and a token", addr(tlsAuthSrv), Auth{Token: token, TLS: TLS{CAFile: tlsFiles.CA}}, ""},
		{"TLS and a wrong token", addr(tlsAuthSrv), Auth{Token: badToken, TLS: TLS{CAFile: tlsFiles.CA}}, "auth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := newTestLogger(t)
			// Long enough that a connection never given up on shows as the
			// wrong error, not as a slow test.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			nc, err := ConnectAuth(ctx, tt.url, "auth-test", tt.auth, log)
			secrets := []string{token, badToken, password, badPass}
			if err != nil {
				testkit.AssertNoSecrets(t, "error", err.Error(), secrets...)
			}
			defer func() { testkit.AssertNoSecrets(t, "log", logs.String(), secrets...) }()
			switch tt.wantErr {
			case "":
				if err != nil {
					t.Fatalf("ConnectAuth: %v", err)
				}
				defer nc.Close()
				js, err := jetstream.New(nc)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := js.AccountInfo(ctx); err != nil {
					t.Fatalf("JetStream on the connection: %v", err)
				}
			case "auth":
				var authErr *AuthError
				if !errors.As(err, &authErr) {
					t.Fatalf("err = %v, want an authorization violation", err)
				}
				want := "authorization violation at " + RedactURLs(tt.url) + ": check the NATS credentials"
				if err.Error() != want {
					t.Errorf("err = %q, want %q", err, want)
				}
				if !errors.Is(err, nats.ErrAuthorization) {
					t.Errorf("err does not wrap nats.ErrAuthorization: %v", err)
				}
			case "tls":
				var tlsErr *TLSError
				if !errors.As(err, &tlsErr) || !strings.HasPrefix(err.Error(), "TLS with "+tt.url+" failed: ") {
					t.Fatalf("err = %v, want a TLS failure at %s", err, tt.url)
				}
			}
		})
	}
}

func TestAuthValidate(t *testing.T) {
	seed, _ := testkit.NKeyUser(t)
	tests := []struct {
		name    string
		auth    Auth
		wantErr string
	}{
		{"none", Auth{}, ""},
		{"nkey", Auth{NKeyFile: seed}, ""},
		{"two credentials", Auth{NKeyFile: seed, Token: "t"}, "not several"},
		{"missing file", Auth{CredsFile: "/nonexistent/herald.creds"}, "credentials file"},
		{"certificate without key", Auth{TLS: TLS{CertFile: seed}}, "both"},
		{"token with a newline", Auth{Token: "secret-tok\n"}, "white space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.auth.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
			testkit.AssertNoSecrets(t, "error", err.Error(), "secret-tok")
		})
	}
}

// The embedded server with a token or an nkey refuses clients without it,
// and takes those with it, in process as over its socket.
func TestEmbeddedAuth(t *testing.T) {
	seed, pub := testkit.NKeyUser(t)
	for _, tt := range []struct {
		name string
		cfg  EmbeddedConfig
		good Auth
	}{
		{"token", EmbeddedConfig{Token: "embedded-token-1234"}, Auth{Token: "embedded-token-1234"}},
		{"nkey", EmbeddedConfig{NKeys: []string{pub}}, Auth{NKeyFile: seed}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log, _ := newTestLogger(t)
			cfg := tt.cfg
			cfg.Listen, cfg.StoreDir = "127.0.0.1:-1", t.TempDir()
			s, err := StartEmbedded(cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { shutdown(s) })
			for _, inProcess := range []bool{false, true} {
				var opts []nats.Option
				if inProcess {
					opts = append(opts, nats.InProcessServer(s))
				}
				if !inProcess {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					_, err := ConnectAuth(ctx, s.ClientURL(), "anonymous", Auth{}, log)
					cancel()
					var authErr *AuthError
					if !errors.As(err, &authErr) {
						t.Errorf("a client without credentials: %v, want an authorization violation", err)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				nc, err := ConnectAuth(ctx, s.ClientURL(), "herald", tt.good, log, opts...)
				cancel()
				if err != nil {
					t.Fatalf("in process %v: with the credential: %v", inProcess, err)
				}
				nc.Close()
			}
		})
	}
	if err := (EmbeddedConfig{StoreDir: "/tmp/x", Token: "t", NKeys: []string{pub}}).Validate(); err == nil {
		t.Error("a token and nkeys together are accepted")
	}
	if err := (EmbeddedConfig{StoreDir: "/tmp/x", NKeys: []string{"SUAAAA"}}).Validate(); err == nil {
		t.Error("a seed is accepted as a public key")
	}
}
