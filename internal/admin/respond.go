package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/heraldrelay/herald/internal/dlq"
)

// errorResponse is the body of every error answer.
type errorResponse struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorResponse{Error: errorBody{Code: code, Message: message}})
}

// writeJSON answers status with v as JSON, without HTML escaping.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only our own response types are written; they always marshal.
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// levelFor logs failures louder than successes; a client that went away is
// no failure of ours.
func levelFor(err error) slog.Level {
	switch {
	case err == nil, errors.Is(err, context.Canceled),
		errors.Is(err, dlq.ErrEmptyFilter), errors.Is(err, dlq.ErrInvalidFilter), errors.Is(err, dlq.ErrNotFound):
		return slog.LevelInfo
	default:
		return slog.LevelWarn
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// filterAttrs describes a request's filter for the audit log, followed by
// the key/value pairs in extra.
func filterAttrs(f dlq.Filter, r *http.Request, extra ...any) []slog.Attr {
	attrs := []slog.Attr{slog.String("remote", r.RemoteAddr), slog.Bool("all", f.All)}
	if len(f.IDs) > 0 {
		ids := f.IDs
		if len(ids) > 20 {
			ids = ids[:20]
		}
		attrs = append(attrs, slog.Int("ids", len(f.IDs)), slog.String("id_list", strings.Join(ids, ",")))
	}
	if f.Channel != "" {
		attrs = append(attrs, slog.String("channel", string(f.Channel)))
	}
	if !f.Since.IsZero() {
		attrs = append(attrs, slog.Time("since", f.Since))
	}
	if !f.Until.IsZero() {
		attrs = append(attrs, slog.Time("until", f.Until))
	}
	if f.Cause != "" {
		attrs = append(attrs, slog.String("cause", f.Cause))
	}
	if f.Reason != "" {
		attrs = append(attrs, slog.String("reason", f.Reason))
	}
	if f.Limit > 0 {
		attrs = append(attrs, slog.Int("limit", f.Limit))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if k, ok := extra[i].(string); ok {
			if s, isStr := extra[i+1].(string); isStr && s == "" {
				continue
			}
			attrs = append(attrs, slog.Any(k, extra[i+1]))
		}
	}
	return attrs
}
