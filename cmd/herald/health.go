package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// DefaultHealthURL is what `herald health` asks by default: the readiness
// of an ingest on the default http.addr, from inside its container.
const DefaultHealthURL = "http://127.0.0.1:8000/readyz"

// newHealthCmd is `herald health`: a container health check for the
// image, which holds no shell, curl or wget (distroless). It exits 0 when
// the URL answers 2xx in time, and 1 otherwise, saying why in one line.
func newHealthCmd() *cobra.Command {
	var (
		target  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when a Herald process answers 2xx on its readiness URL (container health checks)",
		Long: `Ask a Herald process whether it is ready, for a container health check in
an image that has no shell, curl or wget. Exits 0 when --url answers 2xx
within --timeout, 1 otherwise, printing why.

/readyz answers 200 only when NATS and the jobs stream are reachable and have
room (docs/operations.md): the ingest serves it on http.addr (and
http.metrics_addr), a worker on worker.http_addr.`,
		Example: `  herald health                                        # an ingest on :8000
  herald health --url http://127.0.0.1:9090/readyz     # a worker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkHealth(cmd.Context(), target, timeout); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ready\n", target)
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "url", DefaultHealthURL, "the URL to ask (http or https)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

// checkHealth returns nil when target answers 2xx within timeout.
func checkHealth(ctx context.Context, target string, timeout time.Duration) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("health: --url %q is not an http(s) URL", target)
	}
	if timeout <= 0 {
		return fmt.Errorf("health: --timeout must be more than 0s")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	res, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("health: %s answered %s", u.Redacted(), res.Status)
	}
	return nil
}
