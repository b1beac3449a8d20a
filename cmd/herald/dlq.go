package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/destmask"
	"github.com/heraldrelay/herald/internal/dlq"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
)

// Defaults of the dlq commands.
const (
	// dlqConnectTimeout bounds reaching NATS: the CLI talks to a server that
	// is either up or not, and must not hang waiting for one.
	dlqConnectTimeout = 5 * time.Second
	// dlqListLimit is list's page size; --limit 0 lists everything.
	dlqListLimit = 100
	// dlqReasonWidth is how much of a reason the list table shows.
	dlqReasonWidth = 60
)

// newDLQCmd is `herald dlq`: the operator's view of the dead letters.
func newDLQCmd(configPath *string, getenv func(string) string) *cobra.Command {
	return newDLQCmdWith(configPath, getenv, isTerminal)
}

// dlqCLI holds what the dlq subcommands share.
type dlqCLI struct {
	configPath *string
	getenv     func(string) string
	// terminal reports whether a stream (standard input or error) is an
	// interactive terminal; tests replace it.
	terminal func(any) bool
	timeout  time.Duration
}

// newDLQCmdWith is newDLQCmd with the terminal check injected.
func newDLQCmdWith(configPath *string, getenv func(string) string, terminal func(any) bool) *cobra.Command {
	c := &dlqCLI{configPath: configPath, getenv: getenv, terminal: terminal}
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, replay and purge dead letters",
		Long: `Work with the dead letters: jobs Herald gave up on (a destination that said
"never", a spent retry budget, a job that cannot be decoded). They are kept in
the HERALD_DLQ stream, credentials still sealed, for dlq.max_age (30 days by
default).

The commands reach the same NATS as 'herald serve': nats.url, or when that is
empty the embedded server at nats.embedded.listen. Sealed values are shown as
"sealed (N bytes)"; only 'list --group' opens credentials, in memory, to show
each destination as a mask (an id and keyed hashes, never a secret).

IDs are job ids, or seq:<n> for the letter at stream sequence n.
--since takes a duration (2h, 7d: that long ago) or a time (RFC 3339 or
2006-01-02).`,
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().DurationVar(&c.timeout, "timeout", dlqConnectTimeout, "how long to wait for NATS")
	cmd.AddCommand(c.listCmd(), c.showCmd(), c.replayCmd(), c.purgeCmd())
	return cmd
}

// filterFlags are the flags that select letters.
type filterFlags struct {
	all     bool
	ids     []string
	channel string
	since   string
	until   string
	cause   string
	reason  string
	limit   int
}

func (f *filterFlags) register(cmd *cobra.Command, withAll bool, limit int) {
	fl := cmd.Flags()
	if withAll {
		fl.BoolVar(&f.all, "all", false, "every dead letter")
		fl.StringSliceVar(&f.ids, "id", nil, "job id or seq:<n> (repeat, or separate with commas)")
	}
	fl.StringVar(&f.channel, "channel", "", "only this channel (discord, telegram, unknown)")
	fl.StringVar(&f.since, "since", "", "only letters dead since this time or for at most this long (2h, 7d, RFC 3339)")
	fl.StringVar(&f.until, "until", "", "only letters dead before this time, or more than this long ago (2h, 7d, RFC 3339)")
	fl.StringVar(&f.cause, "cause", "", "only letters of this cause (permanent, budget_exhausted, max_age, undecodable, credentials, ...)")
	fl.StringVar(&f.reason, "reason", "", "only letters whose reason or cause contains this (any case)")
	fl.IntVar(&f.limit, "limit", limit, "at most this many letters (0: no limit)")
}

func (f *filterFlags) filter() (dlq.Filter, error) {
	since, err := dlq.ParseSince(f.since, time.Now())
	if err != nil {
		return dlq.Filter{}, fmt.Errorf("%w: --since: %w", errUsage, err)
	}
	until, err := dlq.ParseSince(f.until, time.Now())
	if err != nil {
		return dlq.Filter{}, fmt.Errorf("%w: --until: %w", errUsage, err)
	}
	if f.limit < 0 {
		return dlq.Filter{}, fmt.Errorf("%w: --limit must not be negative", errUsage)
	}
	out := dlq.Filter{All: f.all, IDs: f.ids, Channel: herald.Channel(f.channel), Since: since, Until: until,
		Cause: f.cause, Reason: f.reason, Limit: f.limit}
	if err := out.Validate(); err != nil {
		return dlq.Filter{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	return out, nil
}

// selection returns the filter of replay and purge, which must name letters.
func (f *filterFlags) selection(verb string) (dlq.Filter, error) {
	out, err := f.filter()
	if err != nil {
		return out, err
	}
	if out.Empty() {
		return out, fmt.Errorf("%w: say which dead letters to %s: --all, --id, --channel, --since, --until, --cause or --reason", errUsage, verb)
	}
	return out, nil
}

// open connects to Herald's NATS and returns the dead-letter store. close
// ends the connection.
func (c *dlqCLI) open(ctx context.Context) (store *dlq.Store, closeFn func(), err error) {
	cfg, err := loadConfig(*c.configPath, c.getenv)
	if err != nil {
		return nil, nil, err
	}
	target, err := cfg.natsTarget()
	if err != nil {
		return nil, nil, err
	}
	addr := target.url
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// The CLI's own output says what matters; connection chatter would only
	// get in the way.
	nc, err := connectNATS(cctx, target, cfg.NATS.Name+"-dlq", slog.New(slog.DiscardHandler), cliUnreachable)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	var opts []dlq.Option
	// Reset the status of replayed jobs when there are status records; a
	// missing bucket is not created from here.
	if kv, err := js.KeyValue(cctx, herald.StatusBucket); err == nil {
		opts = append(opts, dlq.WithStatus(status.New(kv, nc)))
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		nc.Close()
		return nil, nil, fmt.Errorf("cannot reach JetStream at %s: %w", queue.RedactURLs(addr), err)
	}
	return dlq.NewStore(js, opts...), nc.Close, nil
}

// storeErr turns a store error into what the operator should read.
func storeErr(err error) error {
	if errors.Is(err, dlq.ErrNoStream) {
		return fmt.Errorf("%w: no dead letters were ever stored on this NATS (start herald serve, or check nats.url)", err)
	}
	return err
}

func (c *dlqCLI) listCmd() *cobra.Command {
	var (
		f      filterFlags
		asJSON bool
		group  bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, oldest first",
		Long: `List dead letters, oldest first; with --group, the groups of cause x channel x
destination that the console shows, largest first, counting every letter that
matches (--limit applies only when given). A destination is shown as a mask:
a Discord webhook's id and a short keyed hash of its token, keyed hashes of a
Telegram bot and chat. Masks need the encryption keys (encryption.keys,
ENCRYPTION_KEY or data_dir/encryption.key); without them destinations show as
"sealed".`,
		Example: `  herald dlq list
  herald dlq list --channel discord --since 24h
  herald dlq list --reason "unknown webhook" --json
  herald dlq list --group --since 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := f.filter()
			if err != nil {
				return err
			}
			store, closeFn, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			if group {
				if !cmd.Flags().Changed("limit") {
					filter.Limit = 0
				}
				return c.listGroups(cmd, store, filter, asJSON)
			}
			limit := filter.Limit
			if limit > 0 {
				filter.Limit++ // one more says whether there are more
			}
			letters, err := store.List(cmd.Context(), filter)
			if err != nil {
				return storeErr(err)
			}
			more := limit > 0 && len(letters) > limit
			if more {
				letters = letters[:limit]
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if letters == nil {
					letters = []dlq.Letter{}
				}
				if err := writeIndentedJSON(out, letters); err != nil {
					return err
				}
			} else if len(letters) == 0 {
				fmt.Fprintln(out, "no dead letters")
			} else {
				printLetterTable(out, letters)
			}
			if more {
				fmt.Fprintf(cmd.ErrOrStderr(), "showing the first %s; more match (use --limit 0 for all)\n", nLetters(limit))
			}
			return nil
		},
	}
	f.register(cmd, false, dlqListLimit)
	cmd.Flags().StringSliceVar(&f.ids, "id", nil, "only these job ids or seq:<n>")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (credentials masked)")
	cmd.Flags().BoolVar(&group, "group", false, "print groups of cause x channel x destination (as the console does)")
	return cmd
}

// listGroups prints the groups of the letters filter matches.
func (c *dlqCLI) listGroups(cmd *cobra.Command, store *dlq.Store, filter dlq.Filter, asJSON bool) error {
	masker, err := c.masker()
	if err != nil {
		return err
	}
	if masker == nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "no encryption keys configured: destinations are shown as \"sealed\"")
	}
	groups, err := store.Groups(cmd.Context(), filter, masker)
	if err != nil {
		return storeErr(err)
	}
	out := cmd.OutOrStdout()
	if asJSON {
		if groups == nil {
			groups = []dlq.Group{}
		}
		return writeIndentedJSON(out, groups)
	}
	if len(groups) == 0 {
		fmt.Fprintln(out, "no dead letters")
		return nil
	}
	printGroupTable(out, groups)
	return nil
}

// masker returns the destination masker of the configured encryption keys
// (as herald serve's console uses), or nil when there are none.
func (c *dlqCLI) masker() (dlq.Masker, error) {
	cfg, err := loadConfig(*c.configPath, c.getenv)
	if err != nil {
		return nil, err
	}
	keys := cfg.Encryption.Keys
	if len(keys) == 0 {
		k, err := loadSecretFile(filepath.Join(cfg.DataDir, encryptionKeyFile), "encryption key")
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		keys = []string{k}
	}
	return destinationMasker(keys)
}

// destinationMasker is the masker of the console and `dlq list --group`.
func destinationMasker(keys []string) (*destmask.Masker, error) {
	ring, err := crypto.NewKeyring(keys...)
	if err != nil {
		return nil, fmt.Errorf("config: encryption.keys (or ENCRYPTION_KEY): %w", err)
	}
	return destmask.New(ring, destmask.DeriveKey(keys[0])), nil
}

func printGroupTable(w io.Writer, groups []dlq.Group) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tCAUSE\tCHANNEL\tDESTINATION\tFIRST SEEN\tLAST SEEN\tLAST ERROR")
	for _, g := range groups {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Count, orDash(g.Cause), orDash(string(g.Channel)), g.Destination,
			g.FirstSeen.UTC().Format(time.DateTime), g.LastSeen.UTC().Format(time.DateTime), clip(g.LastError, dlqReasonWidth))
	}
	_ = tw.Flush()
}

func printLetterTable(w io.Writer, letters []dlq.Letter) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tJOB ID\tCHANNEL\tCAUSE\tSTATUS\tATTEMPTS\tDEAD AT\tREASON")
	for _, l := range letters {
		code := "-"
		if l.StatusCode != 0 {
			code = fmt.Sprint(l.StatusCode)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", l.Seq, orDash(l.JobID), orDash(string(l.Channel)),
			orDash(l.Cause), code, l.Attempts, l.DeadAt.UTC().Format(time.DateTime), clip(l.Reason, dlqReasonWidth))
	}
	_ = tw.Flush()
}

func (c *dlqCLI) showCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show ID",
		Short:   "Show one dead letter (job id or seq:<n>)",
		Example: "  herald dlq show 4x7kq2...\n  herald dlq show seq:42",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, closeFn, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			l, err := store.Get(cmd.Context(), args[0])
			if errors.Is(err, dlq.ErrNotFound) {
				return fmt.Errorf("no dead letter %q (see herald dlq list)", clip(args[0], 70))
			}
			if err != nil {
				return storeErr(err)
			}
			if asJSON {
				return writeIndentedJSON(cmd.OutOrStdout(), l)
			}
			return printLetter(cmd.OutOrStdout(), l)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (credentials masked)")
	return cmd
}

func printLetter(w io.Writer, l dlq.Letter) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	row("Dead letter", dlq.SeqID(l.Seq))
	row("Job ID", orDash(l.JobID))
	row("Channel", orDash(string(l.Channel)))
	row("Cause", orDash(l.Cause))
	row("Reason", orDash(l.Reason))
	if l.StatusCode != 0 {
		row("Status code", l.StatusCode)
	}
	row("Attempts", l.Attempts)
	if l.Replays > 0 {
		row("Replays", l.Replays)
	}
	row("First attempt", when(l.FirstAttempt))
	row("Last attempt", when(l.LastAttempt))
	row("Dead at", when(l.DeadAt))
	if l.OriginalSubject != "" {
		row("Original", fmt.Sprintf("%s, sequence %d", l.OriginalSubject, l.OriginalSeq))
	}
	if !l.Decoded() {
		row("Body", fmt.Sprintf("%d bytes, not a valid job (%s); it cannot be replayed", len(l.Raw), l.DecodeError))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !l.Decoded() {
		return nil
	}
	fmt.Fprintln(w, "Job:")
	// As written: a message's <b> is shown as <b>, not \u003cb\u003e.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("  ", "  ")
	if err := enc.Encode(l.MaskedJob()); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "  %s", b.Bytes())
	return err
}

func (c *dlqCLI) replayCmd() *cobra.Command {
	var (
		f      filterFlags
		rate   float64
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "replay (--all | --id ID... | --channel C | --since D)",
		Short: "Send dead letters back to the jobs stream for another try",
		Long: `Republish dead letters to the jobs stream, each with a fresh deduplication id
and its retry budget restarted (attempts and age count from now), paced at
--rate letters per second. A letter is deleted only once its republish is
acknowledged; one that fails stays and can be replayed again. Letters that are
not valid jobs are skipped and kept.`,
		Example: `  herald dlq replay --id 4x7kq2... --id seq:42
  herald dlq replay --channel discord --since 2h --dry-run
  herald dlq replay --all --rate 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := f.selection("replay")
			if err != nil {
				return err
			}
			if rate < 0 {
				return fmt.Errorf("%w: --rate must not be negative", errUsage)
			}
			store, closeFn, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			stderr := cmd.ErrOrStderr()
			opts := dlq.ReplayOptions{Rate: rate, DryRun: dryRun}
			var bar *progressBar
			if !dryRun && c.terminal(stderr) {
				bar = &progressBar{w: stderr}
				opts.Progress = bar.update
			}
			res, err := store.Replay(cmd.Context(), filter, opts)
			bar.finish()
			out := cmd.OutOrStdout()
			for _, p := range res.Problems {
				fmt.Fprintf(stderr, "%s (job %s): %s\n", dlq.SeqID(p.Seq), orDash(p.JobID), p.Error)
			}
			if dryRun {
				for _, id := range res.IDs {
					fmt.Fprintln(out, id)
				}
				fmt.Fprintf(out, "would replay %s (dry run: nothing changed%s)\n", nLetters(res.Replayed), replayNotes(res))
			} else {
				fmt.Fprintf(out, "replayed %s (%d failed%s)\n", nLetters(res.Replayed), res.Failed, replayNotes(res))
			}
			if err != nil {
				return storeErr(err)
			}
			if res.Failed > 0 {
				return fmt.Errorf("%s could not be replayed and %s kept; run the same command again later", nLetters(res.Failed), pronoun(res.Failed))
			}
			return nil
		},
	}
	f.register(cmd, true, 0)
	cmd.Flags().Float64Var(&rate, "rate", dlq.DefaultReplayRate, "letters per second (0: as fast as possible)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be replayed, change nothing")
	return cmd
}

func (c *dlqCLI) purgeCmd() *cobra.Command {
	var (
		f   filterFlags
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "purge (--all | --id ID... | --channel C | --since D) [--yes]",
		Short: "Delete dead letters for good",
		Long: `Delete the dead letters the filter selects. Without --yes it says how many
match and asks for confirmation on a terminal; when not run from a terminal it
refuses unless --yes is given.`,
		Example: `  herald dlq purge --channel telegram --reason "bot was blocked"
  herald dlq purge --all --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := f.selection("purge")
			if err != nil {
				return err
			}
			store, closeFn, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			out := cmd.OutOrStdout()
			if !yes {
				matching, err := store.List(cmd.Context(), filter)
				if err != nil {
					return storeErr(err)
				}
				if len(matching) == 0 {
					fmt.Fprintln(out, "no dead letters match; nothing to purge")
					return nil
				}
				if !c.terminal(cmd.InOrStdin()) {
					return fmt.Errorf("%w: refusing to purge %s without confirmation: run again with --yes", errUsage, nLetters(len(matching)))
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Purge %s? This cannot be undone. [y/N] ", nLetters(len(matching)))
				answer, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					fmt.Fprintln(out, "nothing purged")
					return nil
				}
				// Exactly the letters counted: not one that died meanwhile.
				filter = dlq.Filter{}
				for _, l := range matching {
					filter.IDs = append(filter.IDs, dlq.SeqID(l.Seq))
				}
			}
			n, err := store.Purge(cmd.Context(), filter)
			fmt.Fprintf(out, "purged %s\n", nLetters(n))
			if err != nil {
				return storeErr(err)
			}
			return nil
		},
	}
	f.register(cmd, true, 0)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

// progressBar draws replay progress on a terminal.
type progressBar struct {
	w     io.Writer
	drawn bool
}

const progressWidth = 30

func (p *progressBar) update(done, total int) {
	if total == 0 {
		return
	}
	filled := done * progressWidth / total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(" ", progressWidth-filled), done, total)
	p.drawn = true
}

func (p *progressBar) finish() {
	if p != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}

// isTerminal reports whether v is an interactive terminal. A character
// device is not enough: /dev/null is one, and a purge must not read its
// empty answer as a person's.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func nLetters(n int) string {
	if n == 1 {
		return "1 dead letter"
	}
	return fmt.Sprintf("%d dead letters", n)
}

func pronoun(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// replayNotes lists the replay's less common counts for its summary line.
func replayNotes(res dlq.ReplayResult) string {
	var s string
	if res.Skipped > 0 {
		s += fmt.Sprintf(", %d skipped: not valid jobs, kept", res.Skipped)
	}
	if res.Gone > 0 {
		s += fmt.Sprintf(", %d gone meanwhile", res.Gone)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clip shortens s to at most n runes for a table cell.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
