package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/dlq"
)

// List limits of GET /admin/dlq.
const (
	// DefaultListLimit is the page size when the request gives no limit.
	DefaultListLimit = 100
	// MaxListLimit bounds one page.
	MaxListLimit = 10000
)

// maxBodyBytes bounds a replay or purge request body.
const maxBodyBytes = 64 << 10

// listResponse is the body of GET /admin/dlq.
type listResponse struct {
	Letters []dlq.Letter `json:"letters"`
	Count   int          `json:"count"`
	// Truncated says more letters match than Limit: ask again with a
	// larger limit or a narrower filter (since, channel).
	Truncated bool `json:"truncated"`
	Limit     int  `json:"limit"`
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := dlq.Filter{
		IDs:     q["id"],
		Channel: herald.Channel(q.Get("channel")),
		Cause:   q.Get("cause"),
		Reason:  q.Get("reason"),
		Limit:   DefaultListLimit,
	}
	var err error
	if f.Since, f.Until, err = timeBounds(q.Get("since"), q.Get("until"), time.Now()); err != nil {
		s.fail(w, r, err)
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			writeError(w, http.StatusBadRequest, "invalid_filter", fmt.Sprintf("limit must be a number from 1 to %d", MaxListLimit))
			return
		}
		f.Limit = n
	}
	limit := f.Limit
	f.Limit++ // one more says whether the page is complete
	letters, err := s.store.List(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res := listResponse{Letters: letters, Limit: limit}
	if len(letters) > limit {
		res.Letters, res.Truncated = letters[:limit], true
	}
	if res.Letters == nil {
		res.Letters = []dlq.Letter{}
	}
	res.Count = len(res.Letters)
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleShow(w http.ResponseWriter, r *http.Request) {
	l, err := s.store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

// filterRequest is the body of POST /admin/dlq/replay and /purge.
type filterRequest struct {
	All     bool     `json:"all"`
	IDs     []string `json:"ids"`
	Channel string   `json:"channel"`
	Since   string   `json:"since"`
	Until   string   `json:"until"`
	Cause   string   `json:"cause"`
	Reason  string   `json:"reason"`
	Limit   int      `json:"limit"`
	// Rate is letters per second (replay only): absent means
	// dlq.DefaultReplayRate, 0 as fast as possible.
	Rate   *float64 `json:"rate"`
	DryRun bool     `json:"dry_run"`
}

func (req filterRequest) filter() (dlq.Filter, error) {
	since, until, err := timeBounds(req.Since, req.Until, time.Now())
	if err != nil {
		return dlq.Filter{}, err
	}
	return dlq.Filter{All: req.All, IDs: req.IDs, Channel: herald.Channel(req.Channel), Since: since, Until: until,
		Cause: req.Cause, Reason: req.Reason, Limit: req.Limit}, nil
}

// timeBounds parses since and until as `herald dlq --since/--until` does: a
// duration before now, or a time.
func timeBounds(since, until string, now time.Time) (time.Time, time.Time, error) {
	s, err := dlq.ParseSince(since, now)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	u, err := dlq.ParseSince(until, now)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), dlq.ErrInvalidFilter.Error()+": ")
		return time.Time{}, time.Time{}, fmt.Errorf("%w: %s", dlq.ErrInvalidFilter, strings.Replace(msg, "since", "until", 1))
	}
	return s, u, nil
}

// replayResponse is the body of POST /admin/dlq/replay: the result, plus an
// error when the replay stopped early.
type replayResponse struct {
	dlq.ReplayResult
	Error *errorBody `json:"error,omitempty"`
}

func (s *Server) handleReplay(w http.ResponseWriter, r *http.Request) {
	req, ok := s.readFilter(w, r)
	if !ok {
		return
	}
	f, err := req.filter()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	opts := dlq.ReplayOptions{Rate: dlq.DefaultReplayRate, DryRun: req.DryRun}
	if req.Rate != nil {
		opts.Rate = *req.Rate
	}
	if opts.Rate < 0 {
		writeError(w, http.StatusBadRequest, "invalid_filter", "rate must not be negative")
		return
	}
	res, err := s.store.Replay(r.Context(), f, opts)
	s.log.LogAttrs(r.Context(), levelFor(err), "admin dlq replay",
		filterAttrs(f, r, "dry_run", req.DryRun, "rate", opts.Rate,
			"replayed", res.Replayed, "failed", res.Failed, "skipped", res.Skipped, "err", errText(err))...)
	if err != nil && (res.Replayed > 0 || res.Failed > 0 || res.Skipped > 0) {
		// Stopped part way: say what was done, and why it stopped.
		status, code, msg := classify(err)
		writeJSON(w, status, replayResponse{ReplayResult: res, Error: &errorBody{Code: code, Message: msg}})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, replayResponse{ReplayResult: res})
}

func (s *Server) handlePurge(w http.ResponseWriter, r *http.Request) {
	req, ok := s.readFilter(w, r)
	if !ok {
		return
	}
	if req.Rate != nil || req.DryRun {
		writeError(w, http.StatusBadRequest, "invalid_body", "rate and dry_run apply to replay only")
		return
	}
	f, err := req.filter()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := s.store.Purge(r.Context(), f)
	s.log.LogAttrs(r.Context(), levelFor(err), "admin dlq purge", filterAttrs(f, r, "purged", n, "err", errText(err))...)
	if err != nil && n == 0 {
		s.fail(w, r, err)
		return
	}
	if err != nil {
		status, code, msg := classify(err)
		writeJSON(w, status, struct {
			Purged int        `json:"purged"`
			Error  *errorBody `json:"error"`
		}{n, &errorBody{Code: code, Message: msg}})
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Purged int `json:"purged"`
	}{n})
}

// readFilter decodes a replay or purge body; on failure it has answered.
func (s *Server) readFilter(w http.ResponseWriter, r *http.Request) (filterRequest, bool) {
	var req filterRequest
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json")
		return req, false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("trailing data after the JSON object")
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body exceeds %d bytes", maxBodyBytes))
			return req, false
		}
		// encoding/json's messages name fields and types, not values.
		writeError(w, http.StatusBadRequest, "invalid_body", "invalid JSON body: "+err.Error())
		return req, false
	}
	return req, true
}

// classify maps a store error to its answer. Messages for client errors come
// from dlq, which builds them from the request, never from a credential.
func classify(err error) (status int, code, message string) {
	switch {
	case errors.Is(err, dlq.ErrEmptyFilter):
		return http.StatusBadRequest, "empty_filter", "no filter: give ids, channel, since, until, cause or reason, or all:true"
	case errors.Is(err, dlq.ErrInvalidFilter):
		return http.StatusBadRequest, "invalid_filter", strings.TrimPrefix(err.Error(), "dlq: ")
	case errors.Is(err, dlq.ErrNotFound):
		return http.StatusNotFound, "not_found", "no such dead letter"
	case errors.Is(err, dlq.ErrNoStream):
		return http.StatusServiceUnavailable, "no_stream", "the dead-letter stream does not exist yet"
	case errors.Is(err, dlq.ErrReplayAborted):
		return http.StatusServiceUnavailable, "replay_aborted", "republishing to the jobs stream keeps failing; the remaining letters are kept"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "unavailable", "the request ended before the work was done; retry"
	default:
		return http.StatusServiceUnavailable, "unavailable", "NATS is unavailable; retry later"
	}
}

// fail answers err and logs what the client is not told.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := classify(err)
	if code == "unavailable" || code == "no_stream" {
		s.log.LogAttrs(r.Context(), levelFor(err), "admin request failed",
			slog.String("route", r.Pattern), slog.String("code", code), slog.String("err", err.Error()))
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeError(w, status, code, msg)
}
