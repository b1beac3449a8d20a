package testkit

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is an embedded JetStream server started for one test. It can be
// shut down and started again on the same address and store directory.
type Server struct {
	t    testing.TB
	opts server.Options

	mu sync.Mutex
	s  *server.Server
}

// Option changes how NewServer configures the server.
type Option func(*server.Options)

// WithStoreDir keeps the JetStream store in dir instead of a fresh temporary
// directory (to restart a server on the store of an earlier one).
func WithStoreDir(dir string) Option { return func(o *server.Options) { o.StoreDir = dir } }

// WithPort listens on the given loopback port instead of a random one.
func WithPort(port int) Option { return func(o *server.Options) { o.Port = port } }

// WithOptions lets a test set any other server option.
func WithOptions(fn func(*server.Options)) Option { return Option(fn) }

// NewServer starts a JetStream server on a loopback port with its store in a
// temporary directory, and shuts it down when the test ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := natsserver.DefaultTestOptions
	o.Host = "127.0.0.1"
	o.Port = -1
	o.JetStream = true
	o.StoreDir = t.TempDir()
	for _, fn := range opts {
		fn(&o)
	}
	s := &Server{t: t, opts: o}
	s.Start()
	t.Cleanup(s.Shutdown)
	return s
}

// Start starts the server if it is not running. After the first start it
// listens on the port it had then, so clients can reconnect.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s != nil && s.s.Running() {
		return
	}
	o := s.opts
	srv := runServer(s.t, &o)
	if s.opts.Port <= 0 {
		s.opts.Port = srv.Addr().(*net.TCPAddr).Port
	}
	s.s = srv
}

// serverReadyWait is how long a started server may take to accept
// connections. The nats-server test helper allows 10 s, which a cluster's
// nodes starting together under -race on a loaded 2-core machine have
// overrun.
const serverReadyWait = 60 * time.Second

// runServer starts a server with o as the nats-server test helper does (no
// route pooling, no compression), waiting up to serverReadyWait for it.
// It may be called from any goroutine: options the server refuses panic,
// as in the helper; a server not ready in time is reported with Errorf,
// and returned all the same.
func runServer(t testing.TB, o *server.Options) *server.Server {
	o.NoLog, o.Trace, o.Debug = true, false, false
	o.Cluster.PoolSize = -1
	o.Cluster.Compression.Mode = server.CompressionOff
	o.LeafNode.Compression.Mode = server.CompressionOff
	srv, err := server.NewServer(o)
	if err != nil {
		panic(fmt.Sprintf("testkit: NATS server: %v", err))
	}
	go srv.Start()
	if !srv.ReadyForConnections(serverReadyWait) {
		t.Errorf("testkit: NATS server not ready after %s", serverReadyWait)
	}
	return srv
}

// Shutdown stops the server and waits until it has stopped. It may be
// called more than once.
func (s *Server) Shutdown() {
	s.mu.Lock()
	srv := s.s
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart shuts the server down and starts it again on the same port and
// store.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	s.Start()
}

// NATS returns the running nats-server.
func (s *Server) NATS() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.s
}

// URL is the server's client URL.
func (s *Server) URL() string { return "nats://" + Addr(s.Port()) }

// Port is the server's client port.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.Port
}

// StoreDir is where the server keeps its JetStream store.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// Connect opens a connection to the server, closed when the test ends.
func (s *Server) Connect() (*nats.Conn, jetstream.JetStream) {
	s.t.Helper()
	return Connect(s.t, s.URL())
}

// JetStream starts a server and connects to it: the common start of a test
// that needs NATS.
func JetStream(t testing.TB, opts ...Option) (*Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	s := NewServer(t, opts...)
	nc, js := s.Connect()
	return s, nc, js
}

// Connect opens a connection to url that keeps reconnecting, closed when the
// test ends.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("testkit: connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("testkit: jetstream: %v", err)
	}
	return nc, js
}

// StreamMsgs returns how many messages stream holds.
func StreamMsgs(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("testkit: stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("testkit: stream %s info: %v", stream, err)
	}
	return info.State.Msgs
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is the loopback host:port for port.
func Addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
