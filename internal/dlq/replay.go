package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// DefaultReplayRate is the replay pace, in letters per second, that `herald
// dlq replay` and the admin API use when none is given: fast enough for
// thousands of letters in a minute, slow enough not to flood the workers.
// The workers pace each destination on top of it.
const DefaultReplayRate = 50

// Replay bounds.
const (
	// replayPublishTimeout bounds one republish when ctx has a later deadline.
	replayPublishTimeout = 10 * time.Second
	// maxConsecutiveFailures stops a replay whose republishes all fail (the
	// jobs stream is gone, NATS is down) instead of trying every letter.
	maxConsecutiveFailures = 10
	// statusTimeout bounds one status write.
	statusTimeout = 5 * time.Second
)

// ErrReplayAborted is wrapped by the error Replay returns when it gave up
// after too many republishes in a row failed.
var ErrReplayAborted = errors.New("replay aborted: republishing keeps failing")

// ReplayOptions adjusts a Replay.
type ReplayOptions struct {
	// Rate is the pace in letters per second; 0 means as fast as possible.
	Rate float64
	// DryRun lists what would be replayed and changes nothing.
	DryRun bool
	// Progress, when set, is called after each letter with the number done
	// (replayed, failed or skipped) and the total; from the calling goroutine.
	Progress func(done, total int)
}

// ReplayResult says what a Replay did.
type ReplayResult struct {
	// Replayed counts letters republished and deleted (with DryRun: that
	// would be).
	Replayed int `json:"replayed"`
	// Failed counts letters whose republish failed; they are kept.
	Failed int `json:"failed"`
	// Skipped counts letters that do not hold a valid job; they are kept.
	Skipped int `json:"skipped"`
	// Gone counts letters deleted after the replay listed them (replayed,
	// purged or expired elsewhere meanwhile): nothing was republished.
	Gone int `json:"gone,omitempty"`
	// DryRun is set when nothing was changed.
	DryRun bool `json:"dry_run,omitempty"`
	// IDs lists the replayed letters' ids (see Letter.ID), in order.
	IDs []string `json:"ids"`
	// Problems explains each failed or skipped letter, and each replayed
	// letter that could not be deleted, or whose status record could not be
	// reset, afterwards.
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one letter Replay could not handle fully.
type Problem struct {
	Seq   uint64 `json:"seq"`
	JobID string `json:"job_id,omitempty"`
	// Error says what went wrong; it never holds a credential.
	Error string `json:"error"`
}

// Replay republishes the letters f matches to the jobs stream so they are
// tried again, then deletes them. It refuses a filter with no condition
// unless f.All (ErrEmptyFilter).
//
// Each letter is first claimed in ClaimsBucket, so that of replays running
// at once (two operators, the CLI and the admin API) exactly one sends it;
// the others count it Gone. Its body (Raw) goes unchanged to
// herald.JobSubject of its job's channel (a job without an id of its own gets
// its letter's job id, the only change ever made), with the Nats-Msg-Id
// "<job id>-replay-<letter seq>", one per letter (the job's old one may still
// be inside the jobs stream's duplicate window),
// HeaderBudgetStart = now so the consumer's attempt and age budget restart,
// and HeaderReplays one more than the letter's. With WithStatus the job's
// status record is set to queued first (and back to dead if the republish
// fails). The letter is deleted only after the republish is acknowledged:
// if it is not, the letter stays and counts as Failed. A letter that is not
// a valid job is Skipped and kept. Letters are paced at opts.Rate.
//
// The letters are those matching when Replay starts; a job that dies again
// during the replay is not replayed twice. Replay returns the result so far
// and an error when listing fails, ctx ends, or maxConsecutiveFailures
// republishes in a row fail (ErrReplayAborted).
func (s *Store) Replay(ctx context.Context, f Filter, opts ReplayOptions) (ReplayResult, error) {
	res := ReplayResult{DryRun: opts.DryRun, IDs: []string{}}
	if f.Empty() {
		return res, fmt.Errorf("dlq: replay: %w", ErrEmptyFilter)
	}
	if err := f.Validate(); err != nil {
		return res, err
	}
	if opts.Rate < 0 {
		return res, fmt.Errorf("dlq: replay: rate %g is negative", opts.Rate)
	}
	st, err := s.stream(ctx)
	if err != nil {
		return res, err
	}
	var letters []Letter
	if err := s.scan(ctx, st, f, func(l Letter) { letters = append(letters, l) }); err != nil {
		return res, err
	}
	var claims jetstream.KeyValue
	if !opts.DryRun && len(letters) > 0 {
		if claims, err = s.claims(ctx, st); err != nil {
			return res, err
		}
	}

	var limiter *rate.Limiter
	if opts.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(opts.Rate), 1)
	}
	total := len(letters)
	done := 0
	progress := func() {
		done++
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	failedInRow := 0
	for _, l := range letters {
		if !l.Decoded() {
			res.Skipped++
			res.Problems = append(res.Problems, Problem{Seq: l.Seq, JobID: l.JobID, Error: "not a valid job, kept: " + l.DecodeError})
			progress()
			continue
		}
		if opts.DryRun {
			res.Replayed++
			res.IDs = append(res.IDs, l.ID())
			progress()
			continue
		}
		if limiter != nil {
			if err := limiter.Wait(ctx); err != nil {
				return res, fmt.Errorf("dlq: replay: %w", ctx.Err())
			}
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("dlq: replay: %w", err)
		}
		warnings, err := s.replayOne(ctx, st, claims, l)
		if errors.Is(err, errGone) {
			res.Gone++
			progress()
			continue
		}
		if err != nil {
			res.Failed++
			res.Problems = append(res.Problems, Problem{Seq: l.Seq, JobID: l.JobID, Error: err.Error()})
			progress()
			if ctx.Err() != nil {
				return res, fmt.Errorf("dlq: replay: %w", ctx.Err())
			}
			failedInRow++
			if failedInRow >= s.maxFailuresInRow {
				return res, fmt.Errorf("dlq: %w: %d in a row, the last: %w", ErrReplayAborted, failedInRow, err)
			}
			continue
		}
		failedInRow = 0
		res.Replayed++
		res.IDs = append(res.IDs, l.ID())
		for _, w := range warnings {
			res.Problems = append(res.Problems, Problem{Seq: l.Seq, JobID: l.JobID, Error: "replayed, but " + w})
		}
		progress()
	}
	return res, nil
}

// errGone says a letter was deleted after Replay listed it.
var errGone = errors.New("dead letter gone meanwhile")

// replayOne republishes l and then deletes it. err is set when the job was
// not republished (the letter is kept), errGone when the letter no longer
// exists; warnings say what went wrong after it was republished (the letter
// or the status record could not be updated).
func (s *Store) replayOne(ctx context.Context, st jetstream.Stream, claims jetstream.KeyValue, l Letter) (warnings []string, err error) {
	// Claim the letter first: two replays (two operators, the CLI and the
	// admin API, two processes) may have listed it, and only one may send
	// it. The claim expires, so a replay that died holding it does not keep
	// the letter from ever being replayed.
	claim := strconv.FormatUint(l.Seq, 10)
	if _, err := claims.Create(ctx, claim, []byte(s.now().UTC().Format(time.RFC3339Nano))); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, errGone
		}
		return nil, fmt.Errorf("claim the dead letter: %w", err)
	}
	release := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusTimeout)
		defer cancel()
		_ = claims.Delete(dctx, claim)
	}
	// A long, paced replay works from a list made at its start: a letter
	// another operator replayed or purged since must not be sent again.
	if _, err := st.GetMsg(ctx, l.Seq); errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, errGone
	}
	data := l.Raw
	if l.Job.ID == "" && herald.ValidID(l.JobID) {
		// The job had no id of its own: the consumer named it after its
		// Nats-Msg-Id, which changes now. Keep its name (and status record).
		job := l.Job
		job.ID = l.JobID
		if data, err = herald.EncodeJob(&job); err != nil {
			return nil, err
		}
	}
	id := l.JobID
	if id == "" {
		id = "dlq-seq-" + strconv.FormatUint(l.Seq, 10)
	}
	now := s.now().UTC()
	msg := &nats.Msg{
		Subject: herald.JobSubject(l.Job.Channel),
		Header: nats.Header{
			// One id per letter: should a claim lapse while its replay
			// still runs, the stream's duplicate window still stores the
			// job once.
			jetstream.MsgIDHeader: []string{replayMsgID(id, l.Seq)},
			HeaderBudgetStart:     []string{now.Format(time.RFC3339Nano)},
			HeaderReplays:         []string{strconv.Itoa(l.Replays + 1)},
		},
		Data: data,
	}

	// Queued before the publish: once published, a worker may write a later
	// state at any moment, which a late "queued" would overwrite.
	statusErr := s.putStatus(ctx, herald.Status{ID: l.JobID, Channel: l.Job.Channel, State: herald.StateQueued, CreatedAt: l.Job.CreatedAt})
	pctx, cancel := context.WithTimeout(ctx, replayPublishTimeout)
	ack, err := s.js.PublishMsg(pctx, msg)
	cancel()
	if err == nil && ack == nil {
		err = errors.New("no acknowledgement")
	}
	if err != nil {
		_ = s.putStatus(ctx, herald.Status{ID: l.JobID, Channel: l.Job.Channel, State: herald.StateDead,
			Attempts: l.Attempts, LastError: l.Reason, CreatedAt: l.Job.CreatedAt})
		release() // the letter stays: let the next replay have it at once
		return nil, fmt.Errorf("republish to %s: %w", msg.Subject, err)
	}
	if ack.Duplicate {
		// Another replay, whose claim lapsed, stored it already: the job is
		// queued once, and this replay did not do it.
		warnings, err = nil, errGone
	}
	// Acknowledged: the job is queued again, so the letter may go. A delete
	// cut short by ctx would leave it for a second replay; let it finish.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replayPublishTimeout)
	defer cancel()
	if err := st.DeleteMsg(dctx, l.Seq); err != nil && !deletedAlready(err) {
		warnings = append(warnings, "the dead letter could not be deleted (purge it, or it may be replayed twice): "+err.Error())
	}
	if statusErr != nil && err == nil {
		warnings = append(warnings, "its status record could not be reset: "+statusErr.Error())
	}
	return warnings, err
}

// replayMsgID is the Nats-Msg-Id of the job replayed from letter seq.
func replayMsgID(jobID string, seq uint64) string {
	return jobID + "-replay-" + strconv.FormatUint(seq, 10)
}

// deletedAlready reports whether a DeleteMsg error says the message was
// gone already: not found, or the server's "no message found" (10057).
func deletedAlready(err error) bool {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true
	}
	msg := err.Error()
	return errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) &&
		(strings.Contains(msg, "err_code=10057") || strings.Contains(msg, "no message found"))
}

// putStatus writes rec when a StatusWriter is configured. It is best effort:
// the record only informs, and the job's fate does not depend on it.
func (s *Store) putStatus(ctx context.Context, rec herald.Status) error {
	if s.status == nil || !herald.ValidID(rec.ID) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusTimeout)
	defer cancel()
	return s.status.Put(ctx, rec)
}

// ClaimsBucket is the key-value bucket where a replay claims each dead letter
// (key: its sequence) before it republishes it. Claims expire after
// ClaimTTL.
const ClaimsBucket = "herald_dlq_claims"

// ClaimTTL is how long a claim keeps other replays off a letter: far longer
// than one republish takes, short enough that a letter whose replay died is
// replayable again soon.
const ClaimTTL = 10 * time.Minute

// claims returns the claims bucket, creating it (with the dead-letter
// stream's replicas) if needed.
func (s *Store) claims(ctx context.Context, st jetstream.Stream) (jetstream.KeyValue, error) {
	kv, err := s.js.KeyValue(ctx, ClaimsBucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("dlq: claims bucket: %w", err)
	}
	kv, err = queue.EnsureKeyValue(ctx, s.js, jetstream.KeyValueConfig{
		Bucket:      ClaimsBucket,
		Description: "Herald dead-letter replay claims",
		History:     1,
		TTL:         ClaimTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    st.CachedInfo().Config.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("dlq: claims bucket: %w", err)
	}
	return kv, nil
}
