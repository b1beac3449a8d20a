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

// Connect dials servers (one NATS URL or a comma-separated list) as client name
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
func Connect(ctx context.Context, servers, name string, logger *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	return ConnectAuth(ctx, servers, name, Auth{}, logger, opts...)
}

// ConnectAuth is Connect with credentials and TLS (see Auth). A server that
// refuses the credentials ends the attempt at once with an *AuthError; a
// TLS set-up that keeps failing until ctx ends gives a *TLSError. Neither
// error, nor any log line, holds the token or a URL password.
func ConnectAuth(ctx context.Context, servers, name string, auth Auth, logger *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if strings.TrimSpace(servers) == "" {
		return nil, errors.New("queue: connect: no NATS URL")
	}
	authOpts, err := auth.Options()
	if err != nil {
		return nil, err
	}
	redact := func(err error) error { return redactErr(err, servers, auth.secrets()...) }
	log := logger.With("component", "nats", "client", name)
	connected := make(chan struct{})
	var once sync.Once
	markConnected := func() { once.Do(func() { close(connected) }) }
	// The connection forgets its server once disconnected; remember it for
	// the disconnect log line.
	closed := make(chan struct{})
	var lastServer atomic.Value
	lastServer.Store("")
	server := func(nc *nats.Conn) string {
		if u := nc.ConnectedUrl(); u != "" {
			// ConnectedUrlRedacted hides a password (and keeps the user
			// name) but not a token, which is user info without one.
			if p, err := url.Parse(u); err == nil && p.User != nil {
				if _, ok := p.User.Password(); ok {
					u = nc.ConnectedUrlRedacted()
				} else {
					u = RedactURLs(u)
				}
			}
			lastServer.Store(u)
			return u
		}
		return lastServer.Load().(string)
	}

	nc, err := nats.Connect(servers, append(append([]nats.Option{
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
				log.Warn("NATS disconnected", "server", server(nc), "err", redact(err))
			} else {
				log.Info("NATS disconnected", "server", server(nc))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "server", server(nc))
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Warn("NATS connection closed", "err", redact(err))
			} else {
				log.Info("NATS connection closed")
			}
			close(closed)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{"err", redact(err)}
			if sub != nil {
				attrs = append(attrs, "subject", sub.Subject)
			}
			log.Error("NATS async error", attrs...)
		}),
	}, authOpts...), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("queue: connect: %w", redact(err))
	}
	if nc.IsConnected() {
		// Connected synchronously; the connect handler also fires, which is
		// harmless.
		return nc, nil
	}
	log.Info("NATS not reachable yet, retrying in the background")
	// The client keeps the error of its last attempt only until the next
	// one; remember the last, to say why the server did not take us.
	var lastErr error
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	where := RedactURLs(servers)
	for {
		select {
		case <-connected:
			return nc, nil
		case <-closed:
			// The client gives up on its own only when the server refused
			// the credentials (twice in a row).
			err := nc.LastError()
			if err == nil {
				err = lastErr
			}
			if err != nil && isAuthErr(err) {
				return nil, &AuthError{Server: where, Err: err}
			}
			return nil, fmt.Errorf("queue: connect: connection closed before it was up: %w", redact(err))
		case <-poll.C:
			if err := nc.LastError(); err != nil {
				lastErr = err
			}
		case <-ctx.Done():
			if err := nc.LastError(); err != nil {
				lastErr = err
			}
			nc.Close()
			switch {
			case lastErr != nil && isAuthErr(lastErr):
				return nil, &AuthError{Server: where, Err: lastErr}
			case lastErr != nil && isTLSErr(lastErr):
				return nil, &TLSError{Server: where, Err: redact(lastErr)}
			}
			return nil, fmt.Errorf("queue: connect: no connection before the context ended: %w", ctx.Err())
		}
	}
}

// RedactURLs is urls (one NATS URL or a comma-separated list) with every
// URL's user info replaced by "xxxxx", for messages.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, raw := range parts {
		raw = strings.TrimSpace(raw)
		u, err := url.Parse(raw)
		switch {
		case err != nil && strings.Contains(raw, "@"):
			parts[i] = "(unparsable URL)"
		case err != nil:
			parts[i] = raw
		case u.User != nil:
			u.User = url.User("xxxxx")
			parts[i] = u.String()
		default:
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
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
func redactErr(err error, urls string, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
			changed = true
		}
	}
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
