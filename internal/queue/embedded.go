// Package queue is Herald's NATS plumbing: an embedded JetStream server for
// single-process deployments, a reconnecting client connection, and the jobs
// stream and status bucket every other package relies on.
package queue

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Defaults of EmbeddedConfig.
const (
	// DefaultListen is where the embedded server listens for clients: loopback
	// only, so a single-process deployment exposes nothing by accident.
	DefaultListen = "127.0.0.1:4222"
	// DefaultServerName names the embedded server in logs and cluster info.
	DefaultServerName = "herald"
	// readyTimeout bounds how long StartEmbedded waits for the server to accept
	// connections.
	readyTimeout = 10 * time.Second
)

// EmbeddedConfig configures the in-process NATS server StartEmbedded runs.
type EmbeddedConfig struct {
	// Listen is host:port for clients; DefaultListen when empty. Port 0 or -1
	// picks a free port (read it back with Server.ClientURL).
	Listen string
	// StoreDir is the JetStream store directory (required). Reuse it across
	// restarts: it holds every accepted job.
	StoreDir string
	// ServerName is the server's name; DefaultServerName when empty.
	ServerName string
	// SyncInterval is how often the file store fsyncs; 0 keeps the server
	// default (2 minutes). Between two syncs an acknowledged publish sits in
	// the OS page cache: it survives a crash of this process but not a power
	// cut or kernel crash. Shorter intervals narrow that window at the cost of
	// disk writes.
	SyncInterval time.Duration
	// SyncAlways fsyncs every write before acknowledging it: an acked job then
	// survives a power cut, at roughly a sixth of the publish rate on one node.
	// Replicas on separate machines are the usual alternative.
	SyncAlways bool
	// MaxMemory and MaxStore cap JetStream's memory and file storage in bytes;
	// 0 keeps the server defaults (a share of the machine's memory and disk).
	MaxMemory, MaxStore int64
	// Token, when set, is required of every client, in-process ones
	// included. Without Token and NKeys any client that reaches Listen may
	// connect and read or change every stream and bucket.
	Token string
	// NKeys, when set, are the public keys ("U...") of the only nkey users
	// admitted. At most one of Token and NKeys is set.
	NKeys []string
}

// Validate checks the configuration; StartEmbedded calls it.
func (c EmbeddedConfig) Validate() error {
	if c.StoreDir == "" {
		return errors.New("queue: embedded: store dir is required")
	}
	if _, _, err := c.hostPort(); err != nil {
		return err
	}
	if c.SyncInterval < 0 {
		return fmt.Errorf("queue: embedded: sync interval %s is negative", c.SyncInterval)
	}
	if c.MaxMemory < 0 {
		return fmt.Errorf("queue: embedded: max memory %d is negative", c.MaxMemory)
	}
	if c.MaxStore < 0 {
		return fmt.Errorf("queue: embedded: max store %d is negative", c.MaxStore)
	}
	if c.Token != "" && len(c.NKeys) > 0 {
		return errors.New("queue: embedded: give a token or nkeys, not both")
	}
	for _, k := range c.NKeys {
		if !nkeys.IsValidPublicUserKey(k) {
			return errors.New("queue: embedded: an nkey is not a user's public key (U...)")
		}
	}
	return nil
}

// hostPort splits Listen and maps ports 0 and -1 to the server's "random
// port" (the server itself would read 0 as its default 4222).
func (c EmbeddedConfig) hostPort() (string, int, error) {
	listen := c.Listen
	if listen == "" {
		listen = DefaultListen
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("queue: embedded: listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("queue: embedded: listen address %q: port must be -1..65535", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// StartEmbedded starts an in-process nats-server with JetStream enabled, waits
// until it accepts connections (at most 10 s) and returns it. The server's own
// log goes to logger (nil means slog.Default()): notices at Info, warnings at
// Warn, errors at Error; debug and trace output is dropped. The server never
// installs signal handlers or exits the process.
//
// The caller owns the server and stops it with Shutdown followed by
// WaitForShutdown. On error nothing is left running.
func StartEmbedded(cfg EmbeddedConfig, logger *slog.Logger) (*server.Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	host, port, _ := cfg.hostPort()
	name := cfg.ServerName
	if name == "" {
		name = DefaultServerName
	}
	opts := &server.Options{
		ServerName:         name,
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           cfg.StoreDir,
		SyncInterval:       cfg.SyncInterval,
		SyncAlways:         cfg.SyncAlways,
		JetStreamMaxMemory: cfg.MaxMemory,
		JetStreamMaxStore:  cfg.MaxStore,
		NoSigs:             true,
		Authorization:      cfg.Token,
	}
	for _, k := range cfg.NKeys {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: k})
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("queue: embedded: %w", err)
	}
	adapter := newServerLogger(logger)
	s.SetLogger(adapter, false, false)
	s.Start()

	// The server reports startup failures (store dir unusable, port taken)
	// through Fatalf and then stops starting; watch for that instead of
	// waiting out the whole timeout.
	deadline := time.Now().Add(readyTimeout)
	for {
		if msg := adapter.fatal(); msg != "" {
			shutdown(s)
			return nil, fmt.Errorf("queue: embedded: start server: %s", msg)
		}
		if s.ReadyForConnections(100 * time.Millisecond) {
			break
		}
		if time.Now().After(deadline) {
			shutdown(s)
			return nil, fmt.Errorf("queue: embedded: server not ready for connections after %s", readyTimeout)
		}
	}
	if !s.JetStreamEnabled() {
		shutdown(s)
		return nil, errors.New("queue: embedded: JetStream did not start")
	}
	return s, nil
}

func shutdown(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}
