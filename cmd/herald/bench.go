package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/bench"
)

// benchScenarios are flag presets of `herald bench --scenario`; flags given
// on the command line win over them.
var benchScenarios = map[string]map[string]string{
	"max":         {"rate": "0", "jobs": "20000"},
	"steady":      {"rate": "1000", "duration": "20s"},
	"ratelimited": {"rate-limit": "5/2s", "webhooks": "4", "jobs": "100"},
	// The box Streaky's proxy was built for: 0.1 vCPU and 512 MB, requests
	// one at a time as the Worker sends them, to 1,000 webhooks. With
	// --rate 50 --duration 20s it is Discord's pace instead.
	"free-tier": {"cpus": "0.1", "memory": "512MiB", "webhooks": "1000", "concurrency": "1", "jobs": "300", "idle": "20s"},
}

func newBenchCmd(configPath *string, getenv func(string) string) *cobra.Command {
	var (
		cfg         bench.Config
		scenario    string
		via         string
		rateLimit   string
		memoryLimit string
		baseline    bool
		jsonOut     bool
		outFile     string
		quiet       bool
		executable  string
		heraldLog   string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput, latency, memory and CPU against a fake Discord",
		Long: `Run a load test of Herald on this machine and report what it sustained.

By default it runs a suite of three runs under the same load, each against a
fresh child process on free loopback ports with a temporary data directory
and generated secrets, and a fake Discord in its own process: 'herald serve'
(this binary) through the Streaky endpoint waiting for the outcome
(ingest.streaky.wait 10s, the production default), the same without the
wait, and a bare relay that does only what Streaky's Rust proxy does
(decrypt, POST to Discord, answer). It prints each run, a summary line per
run and the ratios between them.

With --via, --streaky-wait or --url it runs Herald once instead, sending jobs
through Herald's API (--via api, the default of a single run), the Streaky
endpoint (--via streaky) or straight to NATS (--via nats).
Every job is accounted for by id: the report gives jobs/s accepted and
delivered, delivery latency (request sent -> delivered at the fake), HTTP
latency, 429s received, losses and duplicates, Herald's idle and peak memory
and the CPU time it used, and the ratio of its ingest throughput to a bare
handler that only decodes the body and publishes it to the same JetStream.

With --ingest-only it measures the ingest alone, against the baseline under
the same conditions: the harness runs NATS JetStream in its own process (file
storage in a temporary directory, a free loopback port), starts 'herald
ingest' publishing to it, and sends --jobs in --rounds rounds, each a Herald
phase and a baseline phase of the same size (in alternating order), as fast as
possible, via streaky unless --via says otherwise. Nothing is delivered:
instead of the delivery figures it checks that the jobs stream holds every
accepted job.

With --url it drives a running Herald instead (its key and secret come from
the configuration, as for 'herald serve'); that Herald must reach the fake at
--fake-listen, allowed by channels.discord.allowed_hosts and allow_http.

It exits non-zero when an accepted job was not delivered within
--drain-timeout (with --ingest-only: is not in the jobs stream). See
docs/performance.md.`,
		Example: `  herald bench                                  # the suite: wait, no wait, bare relay; 10,000 jobs each
  herald bench --scenario steady                # the suite at 1,000 jobs/s for 20 s
  herald bench --scenario free-tier --repeat 3  # the suite three times; each ratio's median and range
  herald bench --via api                        # one run through POST /v1/notifications
  herald bench --rate-limit 5/2s --webhooks 4 --jobs 100
  herald bench --via streaky --latency 50ms --json > result.json
  herald bench --ingest-only --jobs 30000       # the ingest alone vs the baseline`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyScenario(cmd.Flags(), scenario); err != nil {
				return err
			}
			cfg.Via = bench.Via(via)
			flags := cmd.Flags()
			suite := !flags.Changed("via") && !flags.Changed("streaky-wait") && !cfg.IngestOnly && cfg.URL == ""
			cfg.Via = benchVia(cfg.Via, flags.Changed("via"), flags.Changed("streaky-wait"), cfg.IngestOnly)
			cfg.NoBaseline = !baseline
			rl, err := bench.ParseRateLimit(rateLimit)
			if err != nil {
				return fmt.Errorf("%w: --rate-limit: %w", errUsage, err)
			}
			cfg.RateLimit = rl
			if cfg.Limits.Memory, err = bench.ParseMemory(memoryLimit); err != nil {
				return fmt.Errorf("%w: --memory: %w", errUsage, err)
			}
			if cfg.URL == "" {
				cfg.Executable = executable
				if cfg.Executable == "" {
					if cfg.Executable, err = os.Executable(); err != nil {
						return fmt.Errorf("find the herald binary: %w", err)
					}
				}
				cfg.ConfigFile = *configPath
			} else if cfg.Key, cfg.Secret, err = runningSecrets(*configPath, getenv); err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			if !quiet {
				cfg.Output = bench.Output{Progress: stderr, ProgressTTY: isTerminal(stderr)}
			}
			if heraldLog != "" {
				f, err := os.Create(heraldLog)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.Output.HeraldLog = f
			}

			if suite {
				return runSuite(cmd, cfg, outFile, jsonOut)
			}
			if cfg.Repeat > 1 {
				return fmt.Errorf("%w: --repeat runs the suite again: not with --via, --streaky-wait, --url or --ingest-only", errUsage)
			}
			report, runErr := bench.Run(cmd.Context(), cfg)
			if report == nil {
				return runErr
			}
			report.Version = version
			return printBench(cmd, report, runErr, outFile, jsonOut)
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenario, "scenario", "", "preset: max (20,000 jobs as fast as possible), steady (1,000 jobs/s for 20 s), ratelimited (100 jobs to 4 webhooks limited to 5 per 2 s), free-tier (300 jobs one at a time to 1,000 webhooks, each child under 0.1 CPU and 512 MiB, idle measured for 20 s first)")
	// No default in the flag: which one applies depends on the mode, and
	// without any of these flags the suite runs (three runs, none of them
	// chosen by --via).
	f.StringVar(&via, "via", "", "run Herald once, with jobs going in through api (POST /v1/notifications), streaky (POST /send-notification) or nats (publish to the jobs stream); a single run goes through streaky with --streaky-wait, else through "+string(bench.DefaultVia)+", unless --via says otherwise, --ingest-only through "+string(bench.DefaultIngestOnlyVia)+"; with none of --via, --streaky-wait, --url and --ingest-only the suite runs")
	f.Float64Var(&cfg.Rate, "rate", 0, "jobs per second, open loop; 0 sends as fast as --concurrency clients can")
	f.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "concurrent clients (connections)")
	f.IntVar(&cfg.Jobs, "jobs", 0, "jobs to send (default 10,000 unless --duration is set; with --rate and --duration, rate × duration)")
	f.DurationVar(&cfg.Duration, "duration", 0, "how long to send (instead of, or as well as, --jobs)")
	f.IntVar(&cfg.Webhooks, "webhooks", bench.DefaultWebhooks, "distinct fake webhooks the jobs are spread over")
	f.DurationVar(&cfg.Latency, "latency", 0, "fixed delay before the fake Discord answers")
	f.StringVar(&rateLimit, "rate-limit", "", "per-webhook limit the fake enforces with 429s, N/window (e.g. 5/2s, Discord's usual)")
	f.IntVar(&cfg.GlobalLimit, "global-limit", 0, "global requests per second the fake allows over all webhooks (Discord: 50); also the child's channels.discord.global_rate")
	f.DurationVar(&cfg.StreakyWait, "streaky-wait", 0, "run Herald once with this ingest.streaky.wait: how long /send-notification waits for the delivery; jobs go in --via streaky unless --via says otherwise (the suite's first run waits 10s)")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", bench.DefaultDrainTimeout, "how long to wait for deliveries after the last job was accepted; undelivered jobs then count as lost")
	f.BoolVar(&cfg.IngestOnly, "ingest-only", false, "measure the ingest alone: 'herald ingest' against NATS run by the harness, no delivery, rounds of Herald and baseline phases")
	f.IntVar(&cfg.Rounds, "rounds", bench.DefaultRounds, "with --ingest-only, rounds the jobs are split into (each a Herald and a baseline phase)")
	f.IntVar(&cfg.Repeat, "repeat", 1, "run the suite this many times, every other round in the reverse order, and report each ratio's median over the rounds and their range (a busy machine's figures move between runs: 3 or more steadies them); only the suite")
	f.BoolVar(&baseline, "baseline", true, "also measure the bare decode-and-publish handler (--baseline=false skips it)")
	f.StringArrayVar(&cfg.Env, "env", nil, "KEY=VALUE for the child Herald, e.g. --env HERALD_CONSUMER_WORKERS=64 (repeatable)")
	f.StringVar(&executable, "herald", "", "herald binary to start as the child (default: this one)")
	f.StringVar(&heraldLog, "herald-log", "", "write the child's log (warn and above) to this file")
	f.StringVar(&cfg.URL, "url", "", "drive the Herald at this base URL instead of starting one")
	f.StringVar(&cfg.NATSURL, "nats-url", "", "that Herald's NATS server (for --via nats and the baseline)")
	f.IntVar(&cfg.PID, "pid", 0, "that Herald's process id, to measure its memory and CPU")
	f.StringVar(&cfg.FakeListen, "fake-listen", bench.DefaultFakeListen, "listen address of the fake Discord")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON instead of a table")
	f.StringVar(&outFile, "out", "", "also write the report as JSON to this file")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress display on standard error")
	f.Float64Var(&cfg.Limits.CPUs, "cpus", 0, "run each child (Herald, the bare relay) under this CPU quota, in CPUs (0.1: 10 ms per 100 ms), in a cgroup of its own (v2, or v1); the fake Discord and the harness stay outside")
	f.DurationVar(&cfg.Idle, "idle", 0, "first measure Herald's CPU with no load for this long (e.g. 20s), in percent of a core")
	f.StringVar(&memoryLimit, "memory", "", "run each child under this memory limit (e.g. 512MiB), in the same cgroup as --cpus")
	cmd.AddCommand(newBenchRelayCmd(getenv))
	return cmd
}

// benchVia is the way in of a run: via when --via was given; streaky when
// --streaky-wait was (a wait applies only to the Streaky endpoint, so asking
// for one asks for jobs to go in there), except with --ingest-only; else ""
// (the default of the mode).
func benchVia(via bench.Via, viaGiven, waitGiven, ingestOnly bool) bench.Via {
	switch {
	case viaGiven:
		return via
	case waitGiven && !ingestOnly:
		return bench.ViaStreaky
	}
	return ""
}

// runSuite runs the suite (bench.RunSuite) and prints it.
func runSuite(cmd *cobra.Command, cfg bench.Config, outFile string, jsonOut bool) error {
	if cmd.Flags().Changed("via") || cfg.Via == "" {
		cfg.Via = bench.ViaStreaky
	}
	suite, runErr := bench.RunSuite(cmd.Context(), cfg)
	if suite == nil {
		return runErr
	}
	suite.Version = version
	return printBench(cmd, suite, runErr, outFile, jsonOut)
}

// benchResult is a bench.Report or a bench.Suite.
type benchResult interface {
	WriteJSON(io.Writer) error
	WriteTable(io.Writer) error
	LostError() error
}

// printBench writes r to outFile (JSON) when set and prints it, as JSON or a
// table; it returns runErr, a write error, or r's lost jobs as an error.
func printBench(cmd *cobra.Command, r benchResult, runErr error, outFile string, jsonOut bool) error {
	if outFile != "" {
		if err := writeReportFile(outFile, r); err != nil {
			return errors.Join(runErr, err)
		}
	}
	var err error
	if jsonOut {
		err = r.WriteJSON(cmd.OutOrStdout())
	} else {
		err = r.WriteTable(cmd.OutOrStdout())
	}
	if err := errors.Join(runErr, err); err != nil {
		return err
	}
	return r.LostError()
}

// newBenchRelayCmd is `herald bench relay`: the bare relay the suite
// measures Herald against, served until SIGTERM. It is started by the
// harness, with ENCRYPTION_KEY and VPS_SECRET in its environment as
// Streaky's proxy has them.
func newBenchRelayCmd(getenv func(string) string) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:    "relay",
		Short:  "Serve the bare relay the bench suite compares Herald with",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, err := crypto.NewKeyring(getenv("ENCRYPTION_KEY"))
			if err != nil {
				return fmt.Errorf("ENCRYPTION_KEY: %w", err)
			}
			secret := getenv("VPS_SECRET")
			if secret == "" {
				return errors.New("VPS_SECRET is required")
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			return bench.NewBareRelay(keys, secret).Serve(cmd.Context(), ln)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "listen address")
	return cmd
}

// flagSetter is the part of a cobra flag set applyScenario needs.
type flagSetter interface {
	Changed(name string) bool
	Set(name, value string) error
}

// applyScenario sets the flags of the named preset that were not given on
// the command line. A run's length is one setting: with --jobs or
// --duration given, the preset sets neither (free-tier's 300 jobs would
// otherwise cut a --duration 20s run short).
func applyScenario(flags flagSetter, name string) error {
	if name == "" {
		return nil
	}
	preset, ok := benchScenarios[name]
	if !ok {
		names := make([]string, 0, len(benchScenarios))
		for n := range benchScenarios {
			names = append(names, n)
		}
		slices.Sort(names)
		return fmt.Errorf("%w: --scenario must be one of %s", errUsage, strings.Join(names, ", "))
	}
	lengthGiven := flags.Changed("jobs") || flags.Changed("duration")
	for flag, value := range preset {
		if flags.Changed(flag) || (lengthGiven && (flag == "jobs" || flag == "duration")) {
			continue
		}
		if err := flags.Set(flag, value); err != nil {
			return err
		}
	}
	return nil
}

// runningSecrets returns the encryption key and API secret of the Herald
// configured by configPath and the environment, as `herald serve` reads
// them (its generated files in data_dir included).
func runningSecrets(configPath string, getenv func(string) string) (key, secret string, err error) {
	key, err = encryptionKey("", configPath, getenv)
	if err != nil {
		return "", "", err
	}
	cfg, err := loadConfig(configPath, getenv)
	if err != nil {
		return "", "", err
	}
	if len(cfg.Ingest.APISecrets) > 0 {
		return key, cfg.Ingest.APISecrets[0], nil
	}
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, apiSecretFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", errors.New("no API secret for the running Herald: set VPS_SECRET or ingest.api_secrets")
	}
	if err != nil {
		return "", "", err
	}
	return key, strings.TrimSpace(string(b)), nil
}

func writeReportFile(path string, r benchResult) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
