package main

import (
	"fmt"
	"net/http"

	"github.com/heraldrelay/herald/internal/breaker"
	"github.com/heraldrelay/herald/internal/console"
	"github.com/heraldrelay/herald/internal/pacing"
	"github.com/heraldrelay/herald/internal/status"
)

// mountConsole mounts the operator console at /console/: it is on when
// admin.secret is set (else every /console/ path answers 404). The breakers
// and the pacer are this process's workers' (nil in an ingest-only process:
// the pages then say so).
func (a *App) mountConsole(mux *http.ServeMux, statuses *status.Store, breakers *breaker.Set, pacer *pacing.Pacer) error {
	proxies, err := parseTrustedProxies(a.cfg.Ingest.TrustedProxies)
	if err != nil {
		return fmt.Errorf("config: ingest.trusted_proxies: %w", err)
	}
	deps := console.Deps{Store: a.letters, JS: a.js, Status: statuses, Gatherer: a.reg, Logger: a.logger}
	if a.cfg.Admin.Secret != "" {
		masker, err := destinationMasker(a.cfg.Encryption.Keys)
		if err != nil {
			return err
		}
		deps.Masker = masker
	}
	if a.role.worker {
		deps.Breakers = breakers
		deps.Discord = pacer.DiscordState
	}
	c, err := console.New(console.Config{Secrets: compact([]string{a.cfg.Admin.Secret}), SessionTTL: a.cfg.Admin.ConsoleSessionTTL, TrustedProxies: proxies}, deps)
	if err != nil {
		return fmt.Errorf("config: admin.secret: %w", err)
	}
	a.console = c
	mux.Handle(console.Prefix, c.Handler())
	return nil
}
