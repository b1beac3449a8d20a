package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// WithToken makes the server refuse clients that do not give token.
func WithToken(token string) Option {
	return func(o *server.Options) { o.Authorization = token }
}

// WithUser makes the server refuse clients that do not log in as user with
// password.
func WithUser(user, password string) Option {
	return func(o *server.Options) {
		o.Users = append(o.Users, &server.User{Username: user, Password: password})
	}
}

// WithNKeys makes the server admit only the nkey users with these public
// keys (see NKeyUser).
func WithNKeys(publicKeys ...string) Option {
	return func(o *server.Options) {
		for _, pk := range publicKeys {
			o.Nkeys = append(o.Nkeys, &server.NkeyUser{Nkey: pk})
		}
	}
}

// NKeyUser makes a user nkey and writes its seed to a file (mode 0600) in a
// temporary directory: the file a client gives as its nkey seed, and the
// public key the server admits.
func NKeyUser(t testing.TB) (seedFile, publicKey string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	publicKey, _ = kp.PublicKey()
	seedFile = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return seedFile, publicKey
}

// CredsUser puts the server in operator (JWT) mode with one account, which
// may use JetStream, and returns the option and the path of a credentials
// file (a user JWT and its nkey seed, as `nsc` writes one) of a user of that
// account.
func CredsUser(t testing.TB) (Option, string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	op, err := nkeys.CreateOperator()
	must(err)
	opPub, _ := op.PublicKey()
	acc, err := nkeys.CreateAccount()
	must(err)
	accPub, _ := acc.PublicKey()
	sys, err := nkeys.CreateAccount()
	must(err)
	sysPub, _ := sys.PublicKey()
	user, err := nkeys.CreateUser()
	must(err)
	userPub, _ := user.PublicKey()
	userSeed, _ := user.Seed()

	ac := jwt.NewAccountClaims(accPub)
	ac.Name = "HERALD"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accJWT, err := ac.Encode(op)
	must(err)
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(op)
	must(err)
	uc := jwt.NewUserClaims(userPub)
	uc.Name = "herald"
	uc.IssuerAccount = accPub
	userJWT, err := uc.Encode(acc)
	must(err)
	creds, err := jwt.FormatUserConfig(userJWT, userSeed)
	must(err)
	file := filepath.Join(t.TempDir(), "herald.creds")
	must(os.WriteFile(file, creds, 0o600))

	resolver := &server.MemAccResolver{}
	must(resolver.Store(accPub, accJWT))
	must(resolver.Store(sysPub, sysJWT))
	return func(o *server.Options) {
		o.TrustedKeys = []string{opPub}
		o.AccountResolver = resolver
		o.SystemAccount = sysPub
	}, file
}

// TLSFiles are PEM files made for one test: a CA, a server certificate for
// 127.0.0.1 and localhost, and a client certificate, each signed by the CA.
type TLSFiles struct {
	CA                    string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
}

// NewTLSFiles generates a CA and the certificates it signs into a temporary
// directory (nothing is committed to the repository).
func NewTLSFiles(t testing.TB) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert, caDER := newCert(t, "herald test CA", nil, nil, nil)
	files := TLSFiles{
		CA:         writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
	for _, c := range []struct {
		name, cert, key string
		usage           x509.ExtKeyUsage
	}{
		{"127.0.0.1", files.ServerCert, files.ServerKey, x509.ExtKeyUsageServerAuth},
		{"herald", files.ClientCert, files.ClientKey, x509.ExtKeyUsageClientAuth},
	} {
		key, _, der := newCert(t, c.name, caCert, caKey, []x509.ExtKeyUsage{c.usage})
		writePEM(t, filepath.Dir(c.cert), filepath.Base(c.cert), "CERTIFICATE", der)
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, filepath.Dir(c.key), filepath.Base(c.key), "EC PRIVATE KEY", kder)
	}
	return files
}

// WithTLS makes the server speak TLS with files' server certificate; with
// verifyClients it also requires a client certificate signed by files' CA.
func WithTLS(t testing.TB, files TLSFiles, verifyClients bool) Option {
	t.Helper()
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: files.ServerCert, KeyFile: files.ServerKey, CaFile: files.CA, Verify: verifyClients,
	})
	if err != nil {
		t.Fatal(err)
	}
	return func(o *server.Options) {
		o.TLS = true
		o.TLSVerify = verifyClients
		o.TLSConfig = cfg
		o.TLSTimeout = 2
	}
}

// newCert makes a P-256 key and a certificate for name, signed by parent
// (self-signed, as a CA, when parent is nil).
func newCert(t testing.TB, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, usage []x509.ExtKeyUsage) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
