package queue

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// newTestLogger is a debug text logger (the tests match its lines) into a
// kit LogBuffer.
func newTestLogger(t *testing.T) (*slog.Logger, *testkit.LogBuffer) {
	t.Helper()
	var b testkit.LogBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// newEmbedded starts the production embedded server (StartEmbedded, what
// these tests are about) on listen ("127.0.0.1:-1" when empty) with its
// store in dir (a fresh temp dir when empty), and shuts it down at cleanup.
// Tests that only need a server use the kit's.
func newEmbedded(t *testing.T, listen, dir string) *server.Server {
	t.Helper()
	if listen == "" {
		listen = "127.0.0.1:-1"
	}
	if dir == "" {
		dir = t.TempDir()
	}
	log, _ := newTestLogger(t)
	s, err := StartEmbedded(EmbeddedConfig{Listen: listen, StoreDir: dir}, log)
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() { shutdown(s) })
	return s
}

// connectTest opens Herald's own connection (Connect, what these tests are
// about) to url, closed at cleanup. Tests that only need a connection use the
// kit's.
func connectTest(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log, _ := newTestLogger(t)
	nc, err := Connect(ctx, url, "test", log)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return nc, js
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	return testkit.Context(t, 20*time.Second)
}

func portOf(t *testing.T, s *server.Server) int {
	t.Helper()
	return s.Addr().(*net.TCPAddr).Port
}
