package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/dlq"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/publisher"
)

const dlqPlainWebhook = "https://discord.com/api/webhooks/123456789012345678/PLAINTEXT-dlq-cli-token"

// dlqEnv is an embedded NATS server holding what `herald serve` would have
// created (jobs stream, status bucket, dead-letter stream), and the
// environment that points the CLI at it.
type dlqEnv struct {
	env    map[string]string
	config string
	js     jetstream.JetStream
	jobs   jetstream.Consumer
	status *status.Store
	sealed []string
}

func newDLQEnv(t *testing.T) *dlqEnv {
	t.Helper()
	s, nc, js := testkit.JetStream(t)
	ctx := testkit.Context(t, 30*time.Second)
	if _, err := queue.EnsureJobsStream(ctx, js, queue.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	kv, err := queue.EnsureStatusBucket(ctx, js, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dlq.EnsureStream(ctx, js, dlq.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	jobs, err := js.CreateOrUpdateConsumer(ctx, herald.JobsStream, jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	return &dlqEnv{
		env:    map[string]string{"HERALD_NATS_URL": s.URL(), "HERALD_DATA_DIR": t.TempDir()},
		config: writeFile(t, "c.yaml", "{}\n"),
		js:     js, jobs: jobs, status: status.New(kv, nc),
	}
}

// kill dead-letters a new job as the consumer would.
func (e *dlqEnv) kill(t *testing.T, c herald.Channel, id, reason string, code int) {
	t.Helper()
	e.killWith(t, c, id, reason, code, nil)
}

// killWith is kill with edit changing the job before it is published.
func (e *dlqEnv) killWith(t *testing.T, c herald.Channel, id, reason string, code int, edit func(*herald.Job)) {
	t.Helper()
	ctx := testkit.Context(t, 30*time.Second)
	keys := testkit.Keyring(t)
	var job *herald.Job
	if c == herald.ChannelDiscord {
		job = testkit.DiscordJob(t, keys, dlqPlainWebhook, "done "+id)
	} else {
		job = testkit.TelegramJob(t, keys, dlqPlainWebhook, dlqPlainWebhook, "done "+id)
	}
	job.Version, job.ID, job.Source, job.Message.Title = herald.JobVersion, id, "", "Deploy"
	if edit != nil {
		edit(job)
	}
	for _, sealed := range []string{job.Credentials.Webhook, job.Credentials.BotToken, job.Credentials.ChatID} {
		if sealed != "" {
			e.sealed = append(e.sealed, sealed)
		}
	}
	if _, err := publisher.New(e.js).Publish(ctx, job); err != nil {
		t.Fatal(err)
	}
	m := e.next(t)
	meta, _ := m.Metadata()
	now := time.Now()
	if err := dlq.NewWriter(e.js).DeadLetter(ctx, m, consumer.DeadLetterInfo{
		JobID: id, Channel: c, Reason: reason, Cause: consumer.CausePermanent, StatusCode: code, Attempts: 1,
		FirstAttempt: now, LastAttempt: now, Subject: m.Subject(), Sequence: meta.Sequence.Stream,
	}); err != nil {
		t.Fatal(err)
	}
	_ = m.Ack()
	if err := e.status.Put(ctx, herald.Status{ID: id, Channel: c, State: herald.StateDead, Attempts: 1, LastError: reason}); err != nil {
		t.Fatal(err)
	}
}

func (e *dlqEnv) next(t *testing.T) jetstream.Msg {
	t.Helper()
	m, err := e.jobs.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("no job on the jobs stream: %v", err)
	}
	return m
}

type dlqRun struct {
	stdout, stderr string
	err            error
}

// run executes the real root command: herald --config <empty file> args...
func (e *dlqEnv) run(t *testing.T, args ...string) dlqRun {
	t.Helper()
	var r dlqRun
	r.stdout, r.stderr, r.err = execute(testkit.Context(t, 30*time.Second), newRootCmd(envMap(e.env), nil, nil), "", append([]string{"--config", e.config}, args...)...)
	e.noSecrets(t, r, args)
	return r
}

// runWith runs `dlq args...` with a fake terminal check and stdin.
func (e *dlqEnv) runWith(t *testing.T, terminal bool, stdin string, args ...string) dlqRun {
	t.Helper()
	cfg := e.config
	cmd := newDLQCmdWith(&cfg, envMap(e.env), func(any) bool { return terminal })
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var r dlqRun
	r.stdout, r.stderr, r.err = execute(testkit.Context(t, 30*time.Second), cmd, stdin, args...)
	e.noSecrets(t, r, args)
	return r
}

func (e *dlqEnv) noSecrets(t *testing.T, r dlqRun, args []string) {
	t.Helper()
	all := r.stdout + r.stderr
	if r.err != nil {
		all += r.err.Error()
	}
	testkit.AssertNoSecrets(t, fmt.Sprintf("herald %v", args), all, append([]string{dlqPlainWebhook, "PLAINTEXT"}, e.sealed...)...)
}

func TestDLQListTableAndJSON(t *testing.T) {
	e := newDLQEnv(t)
	e.kill(t, herald.ChannelDiscord, "d1", "Discord API error: 404 Not Found - Unknown Webhook (code 10015) "+strings.Repeat("x", 100), 404)
	e.kill(t, herald.ChannelTelegram, "t1", "Telegram API error: 403 Forbidden - bot was blocked by the user", 403)
	e.kill(t, herald.ChannelDiscord, "d2", "retry budget spent", 0)

	r := e.run(t, "dlq", "list")
	if r.err != nil {
		t.Fatalf("list: %v\n%s", r.err, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("list printed %d lines, want header + 3:\n%s", len(lines), r.stdout)
	}
	for _, col := range []string{"SEQ", "JOB ID", "CHANNEL", "CAUSE", "STATUS", "ATTEMPTS", "DEAD AT", "REASON"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header lacks %s: %q", col, lines[0])
		}
	}
	if f := strings.Fields(lines[1]); f[0] != "1" || f[1] != "d1" || f[2] != "discord" || f[3] != "permanent" || f[4] != "404" || f[5] != "1" {
		t.Errorf("row 1 = %q", lines[1])
	}
	if !strings.Contains(lines[1], "404 Not Found - Unknown Webhook") || strings.Contains(lines[1], strings.Repeat("x", 60)) || !strings.Contains(lines[1], "…") {
		t.Errorf("reason not shown truncated: %q", lines[1])
	}
	if f := strings.Fields(lines[3]); f[4] != "-" {
		t.Errorf("row without status code = %q", lines[3])
	}

	r = e.run(t, "dlq", "list", "--channel", "telegram")
	if !strings.Contains(r.stdout, "t1") || strings.Contains(r.stdout, "d1") {
		t.Errorf("list --channel telegram:\n%s", r.stdout)
	}
	r = e.run(t, "dlq", "list", "--reason", "BLOCKED", "--since", "1h")
	if !strings.Contains(r.stdout, "t1") || strings.Contains(r.stdout, "d2") {
		t.Errorf("list --reason BLOCKED:\n%s", r.stdout)
	}
	r = e.run(t, "dlq", "list", "--since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if r.err != nil || strings.TrimSpace(r.stdout) != "no dead letters" {
		t.Errorf("list --since future = %q, %v", r.stdout, r.err)
	}
	r = e.run(t, "dlq", "list", "--limit", "2")
	if strings.Contains(r.stdout, "d2") || !strings.Contains(r.stderr, "--limit 0") {
		t.Errorf("list --limit 2:\n%s\n%s", r.stdout, r.stderr)
	}
	if r := e.run(t, "dlq", "list", "--since", "last tuesday"); !errors.Is(r.err, errUsage) {
		t.Errorf("bad --since: err = %v", r.err)
	}

	r = e.run(t, "dlq", "list", "--json")
	if r.err != nil {
		t.Fatal(r.err)
	}
	var letters []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &letters); err != nil {
		t.Fatalf("--json output is not a JSON array: %v\n%s", err, r.stdout)
	}
	if len(letters) != 3 || letters[1]["job_id"] != "t1" || letters[1]["status_code"] != float64(403) {
		t.Errorf("JSON letters = %v", letters)
	}
	creds := letters[0]["job"].(map[string]any)["credentials"].(map[string]any)
	if !strings.HasPrefix(creds["webhook"].(string), "sealed (") {
		t.Errorf("credentials in JSON = %v", creds)
	}
	r = e.run(t, "dlq", "list", "--json", "--channel", "unknown")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty JSON list = %q", r.stdout)
	}
}

func TestDLQShow(t *testing.T) {
	e := newDLQEnv(t)
	e.kill(t, herald.ChannelDiscord, "d1", "Discord API error: 404 Not Found - Unknown Webhook (code 10015)", 404)
	e.kill(t, herald.ChannelTelegram, "t1", "blocked", 403)

	r := e.run(t, "dlq", "show", "d1")
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, want := range []string{"seq:1", "d1", "discord", "permanent", "Unknown Webhook", "404", "herald.jobs.discord", `"webhook": "sealed (`, `"title": "Deploy"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	r = e.run(t, "dlq", "show", "seq:2")
	if r.err != nil || !strings.Contains(r.stdout, "t1") || !strings.Contains(r.stdout, `"bot_token": "sealed (`) {
		t.Errorf("show seq:2 = %v\n%s", r.err, r.stdout)
	}
	r = e.run(t, "dlq", "show", "seq:2", "--json")
	var l map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || l["job_id"] != "t1" {
		t.Errorf("show --json = %v, %s", err, r.stdout)
	}
	if r := e.run(t, "dlq", "show", "nope"); r.err == nil || !strings.Contains(r.err.Error(), "no dead letter") {
		t.Errorf("show nope: err = %v", r.err)
	}
	if r := e.run(t, "dlq", "show"); r.err == nil {
		t.Error("show without an id succeeded")
	}
}

// A message's markup is shown as written, in the table's job and in JSON:
// <b>, not \u003cb\u003e.
func TestDLQShowKeepsMarkup(t *testing.T) {
	e := newDLQEnv(t)
	const title = "<b>Deploy</b> & <i>done</i>"
	e.killWith(t, herald.ChannelTelegram, "h1", "blocked", 403, func(j *herald.Job) { j.Message.Title = title })
	for _, args := range [][]string{{"dlq", "show", "h1"}, {"dlq", "show", "h1", "--json"}, {"dlq", "list", "--json"}} {
		r := e.run(t, args...)
		if r.err != nil {
			t.Fatalf("%v: %v", args, r.err)
		}
		if !strings.Contains(r.stdout, title) || strings.Contains(r.stdout, `\u003c`) || strings.Contains(r.stdout, `\u0026`) {
			t.Errorf("%v does not show %q as written:\n%s", args, title, r.stdout)
		}
	}
}

func TestDLQReplay(t *testing.T) {
	e := newDLQEnv(t)
	e.kill(t, herald.ChannelDiscord, "d1", "gone", 404)
	e.kill(t, herald.ChannelTelegram, "t1", "blocked", 403)
	e.kill(t, herald.ChannelTelegram, "t2", "blocked", 403)

	if r := e.run(t, "dlq", "replay"); !errors.Is(r.err, errUsage) || !strings.Contains(r.err.Error(), "--all") {
		t.Errorf("replay without a filter: err = %v", r.err)
	}
	if r := e.run(t, "dlq", "replay", "--limit", "1"); !errors.Is(r.err, errUsage) {
		t.Errorf("replay with only --limit: err = %v", r.err)
	}
	if r := e.run(t, "dlq", "replay", "--all", "--rate", "-1"); !errors.Is(r.err, errUsage) {
		t.Errorf("negative rate: err = %v", r.err)
	}

	r := e.run(t, "dlq", "replay", "--channel", "telegram", "--dry-run")
	if r.err != nil || !strings.Contains(r.stdout, "t1\nt2\n") || !strings.Contains(r.stdout, "would replay 2 dead letters") {
		t.Errorf("dry run = %v\n%s", r.err, r.stdout)
	}
	if n := testkit.StreamMsgs(t, e.js, herald.DeadLetterStream); n != 3 {
		t.Fatalf("dry run left %d letters", n)
	}

	r = e.run(t, "dlq", "replay", "--id", "d1", "--rate", "0")
	if r.err != nil || strings.TrimSpace(r.stdout) != "replayed 1 dead letter (0 failed)" {
		t.Fatalf("replay --id d1 = %v\n%s\n%s", r.err, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "[") {
		t.Errorf("progress bar drawn on a non-terminal: %q", r.stderr)
	}
	m := e.next(t)
	if m.Subject() != "herald.jobs.discord" || !strings.HasPrefix(m.Headers().Get(jetstream.MsgIDHeader), "d1-replay-") ||
		m.Headers().Get(dlq.HeaderBudgetStart) == "" {
		t.Errorf("replayed job on %s with headers %v", m.Subject(), m.Headers())
	}
	if st, err := e.status.Get(testkit.Context(t, 30*time.Second), "d1"); err != nil || st.State != herald.StateQueued || st.Attempts != 0 {
		t.Errorf("status after replay = %+v, %v; want queued", st, err)
	}

	r = e.run(t, "dlq", "replay", "--all")
	if r.err != nil || !strings.Contains(r.stdout, "replayed 2 dead letters (0 failed)") {
		t.Errorf("replay --all = %v\n%s", r.err, r.stdout)
	}
	if n := testkit.StreamMsgs(t, e.js, herald.DeadLetterStream); n != 0 {
		t.Errorf("%d letters left", n)
	}
}

func TestDLQReplayProgressAndFailure(t *testing.T) {
	e := newDLQEnv(t)
	e.kill(t, herald.ChannelDiscord, "d1", "gone", 404)
	r := e.runWith(t, true, "", "replay", "--all", "--rate", "0")
	if r.err != nil || !strings.Contains(r.stderr, "\r[") || !strings.Contains(r.stderr, "] 1/1") {
		t.Errorf("progress on a terminal: %v, stderr %q", r.err, r.stderr)
	}

	e.kill(t, herald.ChannelDiscord, "d2", "gone", 404)
	if err := e.js.DeleteStream(testkit.Context(t, 30*time.Second), herald.JobsStream); err != nil {
		t.Fatal(err)
	}
	r = e.run(t, "dlq", "replay", "--all", "--rate", "0")
	if r.err == nil || !strings.Contains(r.stdout, "replayed 0 dead letters (1 failed)") || !strings.Contains(r.stderr, "seq:2 (job d2)") {
		t.Errorf("failed replay = %v\n%s\n%s", r.err, r.stdout, r.stderr)
	}
	if n := testkit.StreamMsgs(t, e.js, herald.DeadLetterStream); n != 1 {
		t.Errorf("%d letters after a failed replay, want 1 kept", n)
	}
}

func TestDLQPurge(t *testing.T) {
	e := newDLQEnv(t)
	e.kill(t, herald.ChannelDiscord, "d1", "gone", 404)
	e.kill(t, herald.ChannelTelegram, "t1", "blocked", 403)
	e.kill(t, herald.ChannelTelegram, "t2", "blocked", 403)

	if r := e.run(t, "dlq", "purge"); !errors.Is(r.err, errUsage) {
		t.Errorf("purge without a filter: err = %v", r.err)
	}
	r := e.run(t, "dlq", "purge", "--channel", "telegram")
	if !errors.Is(r.err, errUsage) || !strings.Contains(r.err.Error(), "2 dead letters") || !strings.Contains(r.err.Error(), "--yes") {
		t.Errorf("non-interactive purge without --yes: err = %v", r.err)
	}
	if r := e.runWith(t, true, "n\n", "purge", "--channel", "telegram"); r.err != nil || !strings.Contains(r.stdout, "nothing purged") ||
		!strings.Contains(r.stderr, "Purge 2 dead letters?") {
		t.Errorf("declined purge = %v\n%s\n%s", r.err, r.stdout, r.stderr)
	}
	if n := testkit.StreamMsgs(t, e.js, herald.DeadLetterStream); n != 3 {
		t.Fatalf("%d letters after a refused purge, want 3", n)
	}
	if r := e.runWith(t, true, "y\n", "purge", "--channel", "telegram"); r.err != nil || strings.TrimSpace(r.stdout) != "purged 2 dead letters" {
		t.Errorf("confirmed purge = %v\n%s", r.err, r.stdout)
	}
	if r := e.run(t, "dlq", "purge", "--channel", "telegram"); r.err != nil || !strings.Contains(r.stdout, "nothing to purge") {
		t.Errorf("purge of nothing = %v\n%s", r.err, r.stdout)
	}
	if r := e.run(t, "dlq", "purge", "--all", "--yes"); r.err != nil || strings.TrimSpace(r.stdout) != "purged 1 dead letter" {
		t.Errorf("purge --all --yes = %v\n%s", r.err, r.stdout)
	}
	if n := testkit.StreamMsgs(t, e.js, herald.DeadLetterStream); n != 0 {
		t.Errorf("%d letters left", n)
	}
}

func TestDLQUnreachableNATS(t *testing.T) {
	addr := testkit.Addr(testkit.FreePort(t))
	e := &dlqEnv{
		env:    map[string]string{"HERALD_NATS_URL": "nats://ops:hunter2-pw@" + addr, "HERALD_DATA_DIR": t.TempDir()},
		config: writeFile(t, "c.yaml", "{}\n"),
	}
	start := time.Now()
	r := e.run(t, "dlq", "list", "--timeout", "300ms")
	if r.err == nil || !strings.Contains(r.err.Error(), "cannot reach NATS at nats://xxxxx@"+addr+": is herald serve running?") {
		t.Errorf("err = %v", r.err)
	}
	if r.err != nil && strings.Contains(r.err.Error(), "hunter2") {
		t.Errorf("error leaks the NATS password: %v", r.err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("gave up after %s", time.Since(start))
	}

	// With nats.url empty the CLI goes to the embedded server's address.
	e.env = map[string]string{"HERALD_NATS_EMBEDDED_LISTEN": addr, "HERALD_DATA_DIR": t.TempDir()}
	if r := e.run(t, "dlq", "list", "--timeout", "300ms"); r.err == nil || !strings.Contains(r.err.Error(), "nats://"+addr) {
		t.Errorf("embedded default: err = %v", r.err)
	}
}

func TestDLQNoStream(t *testing.T) {
	e := newDLQEnv(t)
	if err := e.js.DeleteStream(testkit.Context(t, 30*time.Second), herald.DeadLetterStream); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, "dlq", "list")
	if !errors.Is(r.err, dlq.ErrNoStream) || !strings.Contains(r.err.Error(), "herald serve") {
		t.Errorf("err = %v", r.err)
	}
}

func TestDLQHelp(t *testing.T) {
	out, _, err := execute(context.Background(), newRootCmd(envMap(nil), nil, nil), "", "dlq", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"list", "show", "replay", "purge"} {
		if !strings.Contains(out, sub) {
			t.Errorf("help lacks %s:\n%s", sub, out)
		}
	}
	var _ *cobra.Command = newDLQCmd(new(string), envMap(nil))
}

// /dev/null is a character device, not a terminal: `herald dlq purge --all
// </dev/null` must not read its empty answer as a person's.
func TestIsTerminalRefusesDevNull(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("isTerminal(/dev/null) = true")
	}
	if isTerminal(strings.NewReader("y\n")) {
		t.Error("isTerminal(a reader) = true")
	}
}

// TestDLQListGroup: `dlq list --group` prints the groups Store.Groups gives
// the console (same masker, same keys), filtered like list, and without the
// keys shows destinations as sealed.
func TestDLQListGroup(t *testing.T) {
	e := newDLQEnv(t)
	e.kill(t, herald.ChannelDiscord, "d1", "404 Unknown Webhook", 404)
	e.kill(t, herald.ChannelDiscord, "d2", "404 Unknown Webhook again", 404)
	e.killWith(t, herald.ChannelDiscord, "d3", "401 Unauthorized", 401, func(j *herald.Job) {
		j.Credentials.Webhook = testkit.Seal(t, testkit.Keyring(t), "https://discord.com/api/webhooks/999/PLAINTEXT-other")
	})
	e.kill(t, herald.ChannelTelegram, "t1", "chat not found", 400)
	e.env["ENCRYPTION_KEY"] = testkit.Key

	r := e.run(t, "dlq", "list", "--group", "--json")
	if r.err != nil {
		t.Fatalf("list --group: %v\n%s", r.err, r.stderr)
	}
	var got []dlq.Group
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	masker, err := destinationMasker([]string{testkit.Key})
	if err != nil {
		t.Fatal(err)
	}
	want, err := dlq.NewStore(e.js).Groups(testkit.Context(t, 30*time.Second), dlq.Filter{}, masker)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || len(want) != 3 {
		t.Fatalf("got %d groups, the store %d, want 3:\n%s", len(got), len(want), r.stdout)
	}
	for i := range want {
		if got[i].GroupKey != want[i].GroupKey || got[i].Count != want[i].Count || got[i].LastError != want[i].LastError {
			t.Errorf("group %d: CLI %+v, store %+v", i, got[i], want[i])
		}
	}
	if got[0].Count != 2 || !strings.HasPrefix(got[0].Destination, "webhook 123456789012345678 #") {
		t.Errorf("largest group %+v, want d1 and d2's webhook", got[0])
	}

	table := e.run(t, "dlq", "list", "--group", "--channel", "discord", "--cause", "permanent")
	if table.err != nil {
		t.Fatal(table.err)
	}
	lines := strings.Split(strings.TrimSpace(table.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "COUNT") || !strings.HasPrefix(lines[1], "2 ") || !strings.Contains(lines[1], got[0].Destination) {
		t.Errorf("table:\n%s", table.stdout)
	}

	delete(e.env, "ENCRYPTION_KEY")
	sealed := e.run(t, "dlq", "list", "--group", "--json")
	if sealed.err != nil || !strings.Contains(sealed.stderr, "sealed") {
		t.Fatalf("without keys: %v %s", sealed.err, sealed.stderr)
	}
	var bare []dlq.Group
	if err := json.Unmarshal([]byte(sealed.stdout), &bare); err != nil || len(bare) != 2 || bare[0].Destination != dlq.DestinationSealed || bare[0].Count != 3 {
		t.Errorf("without keys: %+v, %v", bare, err)
	}
}
