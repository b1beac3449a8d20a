package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Reconnect pacing of Connect.
const (
	reconnectWait   = 250 * time.Millisecond
	reconnectJitter = 100 * time.Millisecond
)

// Connect dials url (one NATS URL or a comma-separated list) as client name
// and returns once the first connection is up. The connection reconnects
// forever (every ~250 ms, jittered); while it is disconnected, publishes fail
// at once (nothing is buffered to be sent later). A first dial that fails keeps being retried in the background, so Herald
// may start before NATS does. If ctx ends before the first connection,
// Connect closes the connection and returns an error wrapping ctx.Err().
//
// Disconnects, reconnects, asynchronous errors and the final close are logged
// to logger (nil means slog.Default()) with redacted server URLs; no error
// Connect returns contains URL credentials. The caller closes (or drains) the
// connection.
//
// opts are applied after Connect's own (for example nats.InProcessServer to
// reach an embedded server without a socket).
func Connect(ctx context.Context, url, name string, logger *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if strings.TrimSpace(url) == "" {
		return nil, errors.New("queue: connect: no NATS URL")
	}
	log := logger.With("component", "nats", "client", name)
	connected := make(chan struct{})
	var once sync.Once
	markConnected := func() { once.Do(func() { close(connected) }) }
	// The connection forgets its server once disconnected; remember it for
	// the disconnect log line.
	var lastServer atomic.Value
	lastServer.Store("")
	server := func(nc *nats.Conn) string {
		if u := nc.ConnectedUrlRedacted(); u != "" {
			lastServer.Store(u)
			return u
		}
		return lastServer.Load().(string)
	}

	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectJitter(reconnectJitter, reconnectJitter),
		nats.RetryOnFailedConnect(true),
		// No reconnect buffer: a publish while disconnected fails at once
		// instead of waiting in memory. Otherwise a job whose publish timed
		// out (and was answered 503) could still be stored on reconnect.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(nc *nats.Conn) {
			markConnected()
			log.Info("NATS connected", "server", server(nc))
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "server", server(nc), "err", redactErr(err, url))
			} else {
				log.Info("NATS disconnected", "server", server(nc))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "server", server(nc))
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Warn("NATS connection closed", "err", redactErr(err, url))
			} else {
				log.Info("NATS connection closed")
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{"err", redactErr(err, url)}
			if sub != nil {
				attrs = append(attrs, "subject", sub.Subject)
			}
			log.Error("NATS async error", attrs...)
		}),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("queue: connect: %w", redactErr(err, url))
	}
	if nc.IsConnected() {
		// Connected synchronously; the connect handler also fires, which is
		// harmless.
		return nc, nil
	}
	log.Info("NATS not reachable yet, retrying in the background")
	select {
	case <-connected:
		return nc, nil
	case <-ctx.Done():
		nc.Close()
		return nil, fmt.Errorf("queue: connect: no connection before the context ended: %w", ctx.Err())
	}
}

// redactedError keeps the original error reachable (errors.Is/As) while its
// text has every URL password and user replaced.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr returns err with any userinfo of the URLs in urls removed from its
// text. Client errors rarely echo URLs, but a parse error does.
func redactErr(err error, urls string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, raw := range strings.Split(urls, ",") {
		raw = strings.TrimSpace(raw)
		at := strings.LastIndex(raw, "@")
		if at < 0 {
			continue
		}
		// Whatever sits between the scheme and the last '@' is userinfo,
		// parseable or not.
		start := 0
		if i := strings.Index(raw, "://"); i >= 0 && i < at {
			start = i + 3
		}
		userinfo := raw[start:at]
		if userinfo == "" {
			continue
		}
		for _, secret := range secretsOf(userinfo) {
			if strings.Contains(msg, secret) {
				msg = strings.ReplaceAll(msg, secret, "xxxxx")
				changed = true
			}
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

// secretsOf lists the spellings of userinfo that may appear in an error text,
// longest first so the whole is replaced before its parts.
func secretsOf(userinfo string) []string {
	out := []string{userinfo}
	if dec, err := url.PathUnescape(userinfo); err == nil && dec != userinfo {
		out = append(out, dec)
	}
	// A user name is no secret, but a password is; userinfo without a colon
	// is a token, replaced whole above.
	if _, pass, ok := strings.Cut(userinfo, ":"); ok && pass != "" {
		out = append(out, pass)
		if dec, err := url.PathUnescape(pass); err == nil && dec != pass {
			out = append(out, dec)
		}
	}
	return out
}
