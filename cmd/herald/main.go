// Command herald is Herald's single binary: `herald serve` runs the whole relay
// in one process (with an embedded NATS JetStream server unless nats.url is
// set); `herald ingest` and `herald worker` run its halves separately against
// a NATS cluster; `herald encrypt` seals a credential as a Worker would.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/heraldrelay/herald/internal/cgroup"
)

// version is set at build time with -ldflags "-X main.version=..." (the
// Dockerfile's VERSION argument); init falls back to what the Go toolchain
// stamped into the binary (the module version, or the commit it was built
// from).
var version = "dev"

func init() { version = stampedVersion(version) }

// stampedVersion returns v unless it is "dev", else the module version the
// binary was built at, else its VCS revision (12 characters, "-dirty" for
// uncommitted changes), else v.
func stampedVersion(v string) string {
	if v != "dev" {
		return v
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if mv := info.Main.Version; mv != "" && mv != "(devel)" {
		return mv
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return v
	}
	return "dev-" + rev[:min(12, len(rev))] + dirty
}

// runtimeTuned is what main fitted the Go runtime to; App.Open logs it.
var runtimeTuned cgroup.Tuned

func main() {
	// A misspelt HERALD_ variable would otherwise leave its setting at the
	// default without a word.
	if err := checkEnvironment(os.Environ()); err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
	// Before anything starts: GOMAXPROCS and the soft memory limit fitted
	// to the cgroup's CPU quota and memory limit (see internal/cgroup).
	runtimeTuned = cgroup.Tune(cgroup.Read(), os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Getenv, os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}

// newRootCmd builds the command tree. getenv and the writers are injected so
// tests run the real commands hermetically.
func newRootCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var configPath string
	root := &cobra.Command{
		Use:   "herald",
		Short: "Herald relays notifications to Discord and Telegram through NATS JetStream",
		Long: `Herald is a notification relay. Backends hand it a notification over HTTP (the
Streaky proxy contract or Herald's own API) or publish a job straight to NATS;
Herald stores it durably in JetStream and delivers it to Discord webhooks or the
Telegram Bot API, paced to each destination's limits and retried when the
destination says "later".

Start here:
  herald serve              everything in one process, with an embedded NATS
                            server storing its data under ./data

Configuration comes from config.yaml (or --config), then HERALD_<SECTION>_<KEY>
environment variables (e.g. HERALD_HTTP_ADDR, HERALD_NATS_URL), then Streaky's
ENCRYPTION_KEY, VPS_SECRET and PORT.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what `herald version` prints.
		Version: version,
	}
	root.SetVersionTemplate("herald {{.Version}}\n")
	// Cobra suggests misspelt commands, not flags: this does (it holds for
	// every subcommand, which inherit it).
	root.SetFlagErrorFunc(suggestFlag)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&configPath, "config", "", "config file (default ./config.yaml when present)")

	runRole := func(r role) func(cmd *cobra.Command, _ []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configPath, getenv)
			if err != nil {
				return err
			}
			app := &App{cfg: cfg, role: r, logger: newLogger(cfg.Log, stderr)}
			if err := app.Open(cmd.Context()); err != nil {
				return err
			}
			return app.Run(cmd.Context())
		}
	}

	root.AddCommand(
		&cobra.Command{
			Use:   "serve",
			Short: "Run ingest and workers in one process (embedded NATS unless nats.url is set)",
			Long: `Run the HTTP ingest and the delivery workers in one process.

With nats.url empty (the default) it starts an embedded NATS server with
JetStream, storing its data under data_dir, listening on nats.embedded.listen
(default 127.0.0.1:4222) so the CLI and other backends can reach it. With
nats.url set it joins that NATS server or cluster instead.

An encryption key, an API secret and a vault key that are not configured are
generated once into data_dir (encryption.key, api.secret, vault.key; mode
0600) and reused, and so is the token the embedded NATS asks of clients
(nats.token; nats.embedded.auth), which the CLI run with the same data_dir
uses by itself.`,
			Args: cobra.NoArgs,
			RunE: runRole(roleServe),
		},
		&cobra.Command{
			Use:   "ingest",
			Short: "Run only the HTTP ingest, publishing to nats.url",
			Long: `Run only the HTTP ingest. It publishes jobs to the NATS server at nats.url
(or, when that is empty, the one a local 'herald serve' runs at
nats.embedded.listen). Run as many as you like behind a load balancer.`,
			Args: cobra.NoArgs,
			RunE: runRole(roleIngest),
		},
		&cobra.Command{
			Use:   "worker",
			Short: "Run only the delivery workers, consuming from nats.url",
			Long: `Run only the delivery workers. Every worker process shares one durable
JetStream consumer, so jobs are spread across them. worker.http_addr serves
/metrics, /health and /readyz.`,
			Args: cobra.NoArgs,
			RunE: runRole(roleWorker),
		},
		newEncryptCmd(&configPath, getenv),
		newDLQCmd(&configPath, getenv),
		newVaultCmd(&configPath, getenv),
		newBenchCmd(&configPath, getenv),
		newFakeDiscordCmd(),
		newHealthCmd(),
		&cobra.Command{
			Use:   "version",
			Short: "Print Herald's version",
			Args:  cobra.NoArgs,
			Run: func(cmd *cobra.Command, _ []string) {
				fmt.Fprintln(cmd.OutOrStdout(), "herald", version)
			},
		},
	)
	return root
}

// errUsage marks errors that come from how a command was called.
var errUsage = errors.New("usage")

// suggestFlag adds the nearest flag of cmd to an unknown flag's error
// ("unknown flag: --confg (did you mean --config?)"), when one is near
// enough to be a typo of it.
func suggestFlag(cmd *cobra.Command, err error) error {
	msg := err.Error()
	var given string
	switch {
	case strings.HasPrefix(msg, "unknown flag: --"):
		given = strings.TrimPrefix(msg, "unknown flag: --")
	case strings.HasPrefix(msg, "unknown shorthand flag: "):
		// "unknown shorthand flag: 'c' in -confg": a long flag given with
		// one dash is the likelier mistake.
		if _, word, ok := strings.Cut(msg, " in -"); ok {
			given = word
		}
	}
	if given == "" {
		return err
	}
	given, _, _ = strings.Cut(given, "=")
	var names []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	cmd.InheritedFlags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && !slices.Contains(names, f.Name) {
			names = append(names, f.Name)
		}
	})
	slices.Sort(names)
	best := closest(given, names)
	// Near enough: a few edits, or the start of a flag's name.
	if best == "" || (editDistance(given, best) > max(2, len(given)/3) && !strings.HasPrefix(best, given)) {
		return err
	}
	return fmt.Errorf("%w (did you mean --%s?)", err, best)
}
