package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

// serverLogger adapts *slog.Logger to server.Logger. Debug and trace output is
// dropped: it is per-message noise at Herald's rates.
type serverLogger struct {
	log *slog.Logger

	mu       sync.Mutex
	fatalMsg string // first Fatalf message, so StartEmbedded can fail fast
}

var _ server.Logger = (*serverLogger)(nil)

func newServerLogger(l *slog.Logger) *serverLogger {
	return &serverLogger{log: l.With("component", "nats-server")}
}

func (l *serverLogger) logf(level slog.Level, format string, v []any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

// Noticef logs at Debug: the server's start-up banner and routine notices
// would otherwise drown Herald's own lines (Herald logs that the server started).
func (l *serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }

// Warnf logs at Warn.
func (l *serverLogger) Warnf(format string, v ...any) { l.logf(slog.LevelWarn, format, v) }

// Errorf logs at Error.
func (l *serverLogger) Errorf(format string, v ...any) { l.logf(slog.LevelError, format, v) }

// Fatalf logs at Error and remembers the message. Unlike the server's own
// logger it does not exit the process: the embedding program decides.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.fatalMsg == "" {
		l.fatalMsg = msg
	}
	l.mu.Unlock()
	l.log.Error(msg, "fatal", true)
}

// Debugf drops the message.
func (l *serverLogger) Debugf(string, ...any) {}

// Tracef drops the message.
func (l *serverLogger) Tracef(string, ...any) {}

func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalMsg
}
