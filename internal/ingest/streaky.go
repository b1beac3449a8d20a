package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/metrics"
	"github.com/heraldrelay/herald/internal/status"
	"github.com/heraldrelay/herald/publisher"
)

// SourceStreaky is the Source of jobs built from /send-notification requests.
const SourceStreaky = "streaky"

// What Streaky's proxy puts in every message; see its discord.rs and
// telegram.rs.
const (
	streakyTitle    = "⚠️ GitHub Streak Alert"
	streakyColor    = 16739947 // 0xFF6B6B
	streakyFooter   = "Streaky - Never lose your GitHub streak"
	streakyUsername = "Streaky Bot"
)

// The Streaky proxy's texts for missing credentials, kept exactly: the
// Worker stores them and shows them on the user's dashboard.
const (
	textInvalidType    = "Invalid notification type"
	textMissingWebhook = "Missing encrypted_webhook for Discord notification"
	textMissingToken   = "Missing encrypted_token for Telegram notification"
	textMissingChatID  = "Missing encrypted_chat_id for Telegram notification"
)

// streakyReply is the proxy's JSON reply. Queued and ID are Herald's
// additions, present only when the delivery result was not known in time;
// Duplicate, too, is Herald's: present when an Idempotency-Key's earlier
// request stored the job. The Worker ignores unknown fields.
type streakyReply struct {
	Success   bool    `json:"success"`
	Error     *string `json:"error"`
	Queued    bool    `json:"queued,omitempty"`
	ID        string  `json:"id,omitempty"`
	Duplicate bool    `json:"duplicate,omitempty"`
}

// handleStreaky serves POST /send-notification as Streaky's proxy does
// (CONTRACT.md §3), except that it stores the job and, for up to
// StreakyWait, waits for the delivery result instead of sending inline.
// With Deps.First (a process that also delivers) a waiting request's job is
// tried first and stored only when it was not delivered at once. By
// default (FailureStatusError) no failure is a 2xx, so that a Worker reading
// only response.ok sees it:
//
//	401 empty                      missing or wrong X-API-Secret
//	415 / 413 / 400 / 422 text     not JSON / too big / malformed / wrong shape
//	400 {"success":false,...}      unknown type, missing or bad credentials,
//	                               destination not allowed
//	502 {"success":false,...}      the destination refused: failed or
//	                               dead-lettered within the wait
//	200 {"success":true,...}       delivered
//	202 {"success":true,"queued"}  stored, outcome not known within the wait
//	503 + Retry-After              not stored (never a false success)
//
// With FailureStatusOK the 400, 502 and 202 answers are 200, as the proxy's.
//
// An Idempotency-Key (the Worker sends none) holds as on POST
// /v1/notifications: a retry stores nothing, and is answered with the first
// job's outcome when it is known, else as that job's wait is.
func (s *Server) handleStreaky(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	ctx := r.Context()
	sec, ok := s.authStreaky(r)
	if !ok {
		s.streakyFail(w, r, reject(errUnauthorized, "missing or wrong X-API-Secret"))
		return
	}
	key, err := idempotencyKey(r, sec)
	if err != nil {
		s.streakyFail(w, r, err)
		return
	}
	if err := checkContentType(r); err != nil {
		s.streakyFail(w, r, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.streakyFail(w, r, err)
		return
	}
	req, err := decodeStreaky(body)
	if err != nil {
		s.streakyFail(w, r, err)
		return
	}
	job, err := s.streakyJob(&req, start)
	if err != nil {
		s.streakyFail(w, r, err)
		return
	}
	claim := keyClaim{publish: true}
	if key != nil {
		key.fingerprint = fingerprint(routeStreaky, req)
		if claim, err = s.claimKey(ctx, sec, key, job); err != nil {
			s.streakyFail(w, r, err)
			return
		}
	}
	duplicate := !claim.publish

	// Wait before publishing, so a fast worker's result is not missed.
	var watch *status.Wait
	if s.cfg.StreakyWait > 0 && sec.waiting.Add(1) > int64(s.cfg.MaxWaitingPerSecret) {
		// This secret's requests hold its whole share of the waiting slots:
		// answer as a wait that timed out. The other secrets' shares are
		// theirs, whatever this one sends.
		sec.waiting.Add(-1)
		s.metrics.StreakyUnwaited.WithLabelValues(metrics.UnwaitedShareSpent).Inc()
		s.log.DebugContext(ctx, "this API secret's share of waiting requests is in use; answering without waiting", "id", job.ID)
	} else if s.cfg.StreakyWait > 0 {
		s.metrics.StreakyWaiting.Inc()
		defer func() {
			sec.waiting.Add(-1)
			s.metrics.StreakyWaiting.Dec()
		}()
		wt, err := s.outcomes.Wait(job.ID)
		if err != nil {
			s.log.WarnContext(ctx, "cannot wait for the job's result; answering without waiting", "id", job.ID, "err", err.Error())
		} else {
			defer wt.Stop()
			watch = wt
		}
	}
	if claim.publish {
		var opts []publisher.Option
		if watch != nil && key == nil && s.first != nil {
			// The request waits for the outcome anyway: a worker of this
			// process tries the job before it is stored, and a job the
			// destination takes at once is never stored. One that is not
			// is stored below with what the attempt learned, and waited
			// for as any other. The attempt is not cut short when the
			// client leaves (a send cut halfway may have been delivered),
			// but it ends within the wait: pacing holds it no later, and
			// the send has what is left of the wait at most (the process
			// sends first only when the wait covers a whole send).
			fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), start.Add(s.cfg.StreakyWait))
			delivered, carry := s.first.SendFirst(fctx, job)
			cancel()
			if delivered {
				s.accepted(ctx, job, false)
				s.streakyFinal(w, herald.Status{ID: job.ID, State: herald.StateDelivered}, false)
				return
			}
			if carry != nil {
				opts = append(opts, publisher.WithHeader(carry))
			}
		}
		res, err := s.publish(ctx, job, opts...)
		if err != nil {
			s.releaseKey(ctx, claim)
			s.streakyFail(w, r, err)
			return
		}
		if key != nil {
			s.settleKey(ctx, claim)
		}
		duplicate = res.Duplicate
	} else if st, done := s.streakyEarlier(ctx, job.ID); done {
		s.streakyFinal(w, st, true)
		return
	}
	s.accepted(ctx, job, duplicate)

	queued := streakyReply{Success: true, Queued: true, ID: job.ID, Duplicate: duplicate}
	queuedStatus := s.streakyStatus(streakyQueued)
	if watch == nil {
		writeJSON(w, queuedStatus, queued)
		return
	}
	wctx, cancel := context.WithDeadline(ctx, start.Add(s.cfg.StreakyWait))
	defer cancel()
	st, err := watch.Final(wctx)
	switch {
	case err == nil:
		s.streakyFinal(w, st, duplicate)
	case ctx.Err() != nil:
		// The Worker went away; the job is stored and will be delivered.
		s.log.DebugContext(ctx, "client left before the delivery result", "id", job.ID)
		writeJSON(w, queuedStatus, queued)
	default:
		if !errors.Is(err, context.DeadlineExceeded) {
			s.log.WarnContext(ctx, "waiting for the job's result failed", "id", job.ID, "err", err.Error())
		}
		s.metrics.StreakyUnwaited.WithLabelValues(metrics.UnwaitedTimeout).Inc()
		writeJSON(w, queuedStatus, queued)
	}
}

// streakyFinal answers with st, a final record: delivered, or failed or
// dead-lettered (the destination refused, or kept failing).
func (s *Server) streakyFinal(w http.ResponseWriter, st herald.Status, duplicate bool) {
	if st.State == herald.StateDelivered {
		writeJSON(w, http.StatusOK, streakyReply{Success: true, Duplicate: duplicate})
		return
	}
	msg := st.LastError
	if msg == "" {
		msg = "Delivery failed"
	}
	writeJSON(w, s.streakyStatus(streakyFailed), streakyReply{Success: false, Error: &msg, Duplicate: duplicate})
}

// streakyEarlier looks up the job id an Idempotency-Key's earlier request
// stored, and returns its final record when it has one (done true). A job
// neither in the stream nor recorded was delivered to a request that took
// its outcome (which leaves no record), or its record expired: it reads
// delivered. A job still queued or delivering is not done; nor is one that
// cannot be looked up now (the wait, or the queued answer, follows).
func (s *Server) streakyEarlier(ctx context.Context, id string) (herald.Status, bool) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	st, err := s.status.Lookup(ctx, id)
	switch {
	case err == nil:
		return st, st.State.Final()
	case isNotFound(err):
		return herald.Status{ID: id, State: herald.StateDelivered}, true
	}
	s.log.WarnContext(ctx, "cannot look up the job of an Idempotency-Key", "id", id, "err", err.Error())
	return herald.Status{}, false
}

// streakyOutcome is what a JSON answer of /send-notification other than
// delivered reports.
type streakyOutcome int

const (
	// streakyRefused: the request cannot be opened or validated; nothing
	// was stored.
	streakyRefused streakyOutcome = iota
	// streakyFailed: the job failed for good (the destination refused it,
	// or it was dead-lettered) within the wait.
	streakyFailed
	// streakyQueued: the job is stored and will be delivered, but its
	// outcome was not known within the wait.
	streakyQueued
)

// streakyStatus is the HTTP status of outcome under the configured
// FailureStatus. 400 is what the proxy of the original write-up answered
// for a credential that does not open. A refusal by the destination is 502,
// not that proxy's 500: Herald worked and the upstream did not, which a 500
// (Herald's own fault, on every other route) would hide from monitoring.
// Queued is 202: stored, not done; still a 2xx, since it is no failure.
func (s *Server) streakyStatus(o streakyOutcome) int {
	if s.cfg.StreakyFailureStatus == FailureStatusOK {
		return http.StatusOK
	}
	switch o {
	case streakyRefused:
		return http.StatusBadRequest
	case streakyFailed:
		return http.StatusBadGateway
	default:
		return http.StatusAccepted
	}
}

// streakyJob checks the request's business rules in the proxy's order and
// builds the job. Credentials are opened only to check them; the job carries
// the sealed strings as received.
func (s *Server) streakyJob(req *streakyRequest, now time.Time) (*herald.Job, error) {
	job := &herald.Job{Source: SourceStreaky}
	switch req.Type {
	case "discord":
		if req.EncryptedWebhook == nil {
			return nil, reject(errMissingCredentials, textMissingWebhook)
		}
		webhook, err := s.streakyOpen(*req.EncryptedWebhook, "encrypted_webhook")
		if err != nil {
			return nil, err
		}
		if err := s.checkTarget(herald.ChannelDiscord, herald.Target{WebhookURL: webhook}); err != nil {
			return nil, capitalized(err)
		}
		job.Channel = herald.ChannelDiscord
		job.Credentials.Webhook = *req.EncryptedWebhook
	case "telegram":
		if req.EncryptedToken == nil {
			return nil, reject(errMissingCredentials, textMissingToken)
		}
		if req.EncryptedChatID == nil {
			return nil, reject(errMissingCredentials, textMissingChatID)
		}
		token, err := s.streakyOpen(*req.EncryptedToken, "encrypted_token")
		if err != nil {
			return nil, err
		}
		chatID, err := s.streakyOpen(*req.EncryptedChatID, "encrypted_chat_id")
		if err != nil {
			return nil, err
		}
		if err := s.checkTarget(herald.ChannelTelegram, herald.Target{BotToken: token, ChatID: chatID}); err != nil {
			return nil, capitalized(err)
		}
		job.Channel = herald.ChannelTelegram
		job.Credentials.BotToken = *req.EncryptedToken
		job.Credentials.ChatID = *req.EncryptedChatID
	default:
		return nil, reject(errUnknownType, textInvalidType)
	}

	color := streakyColor
	ts := now.UTC()
	job.ID = herald.NewID()
	job.Version = herald.JobVersion
	job.Message = herald.Message{
		Title: streakyTitle,
		Text:  req.Message.Message,
		Color: &color,
		Fields: []herald.Field{
			{Name: "GitHub Username", Value: req.Message.Username, Inline: true, Icon: "👤"},
			{Name: "Current Streak", Value: fmt.Sprintf("%d days", req.Message.CurrentStreak), Inline: true, Icon: "🔥"},
		},
		Footer:    streakyFooter,
		Username:  streakyUsername,
		Timestamp: &ts,
	}
	// Reported as success:false, like the destination's refusal of such a
	// message would have been on the proxy.
	if err := job.Validate(); err != nil {
		return nil, capitalized(err)
	}
	return job, nil
}

// streakyOpen opens one sealed field, for checking only. Its error text is
// the keyring's (which says what is wrong and nothing of the value) in the
// proxy's capitalized style, naming the field.
func (s *Server) streakyOpen(sealed, field string) (string, error) {
	plain, err := s.keys.Open(sealed)
	if err != nil {
		return "", reject(errBadCredentials, "%s (%s)", upperFirst(err.Error()), field)
	}
	return plain, nil
}

// capitalized returns a rejection of the same kind as err with its text's
// first letter upper-cased, the proxy's style.
func capitalized(err error) error {
	kind := err
	var rj *rejection
	if errors.As(err, &rj) {
		kind = rj.kind
	}
	return &rejection{kind: kind, msg: upperFirst(err.Error())}
}

func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// streakyFail answers a refused or failed /send-notification request the way
// the proxy would, choosing the status from errorTable; its business
// failures get streakyStatus(streakyRefused) and the JSON body.
func (s *Server) streakyFail(w http.ResponseWriter, r *http.Request, err error) {
	row, text := classify(err)
	if row.business {
		code := s.streakyStatus(streakyRefused)
		s.rejected(r.Context(), routeStreaky, row, code, err)
		writeJSON(w, code, streakyReply{Success: false, Error: &text})
		return
	}
	s.rejected(r.Context(), routeStreaky, row, row.status, err)
	switch {
	case row.status == http.StatusUnauthorized:
		w.WriteHeader(http.StatusUnauthorized) // the proxy's empty 401
	case row.status == http.StatusServiceUnavailable:
		// Not stored: the Worker records "VPS proxy error: 503 <body>".
		w.Header().Set("Retry-After", retryAfter(err))
		msg := "Herald could not store the notification; retry later"
		writeJSON(w, row.status, streakyReply{Success: false, Error: &msg})
	case row.status == http.StatusTooManyRequests:
		// Not stored either; never a 2xx, whatever FailureStatus says.
		w.Header().Set("Retry-After", retryAfter(err))
		writeJSON(w, row.status, streakyReply{Success: false, Error: &text})
	default:
		if strings.TrimSpace(text) == "" {
			text = http.StatusText(row.status)
		}
		writePlain(w, row.status, text)
	}
}
