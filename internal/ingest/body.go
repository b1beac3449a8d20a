package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// isJSONContentType accepts what axum's Json extractor accepts:
// application/json or application/<anything>+json, with any parameters
// (charset=utf-8).
func isJSONContentType(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	sub, ok := strings.CutPrefix(mt, "application/")
	return ok && (sub == "json" || strings.HasSuffix(sub, "+json"))
}

func checkContentType(r *http.Request) error {
	if !isJSONContentType(r.Header.Get("Content-Type")) {
		return reject(errUnsupportedMediaType, "Expected request with `Content-Type: application/json`")
	}
	return nil
}

// readBody reads the whole body, at most s.cfg.MaxBodyBytes of it.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := s.cfg.MaxBodyBytes
	tooLarge := func() error {
		return reject(errBodyTooLarge, "request body larger than %d bytes", limit)
	}
	if r.ContentLength > limit {
		return nil, tooLarge()
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		return nil, fmt.Errorf("%w: %w", errBodyUnreadable, err)
	}
	return buf.Bytes(), nil
}

// describeJSONError says where a body fails to decode without quoting the
// body, which holds sealed credentials.
func describeJSONError(err error) (kind error, text string) {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tpe *time.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return errMalformedJSON, "empty body: a JSON object is required"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errMalformedJSON, "malformed JSON: unexpected end of input"
	case errors.As(err, &syn):
		return errMalformedJSON, fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return errInvalidBody, fmt.Sprintf("field %s: want %s, got JSON %s", typ.Field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
		}
		return errInvalidBody, fmt.Sprintf("want a JSON object, got JSON %s", typ.Value)
	case errors.As(err, &tpe):
		return errInvalidBody, "message.timestamp: want an RFC 3339 time"
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return errInvalidBody, "unknown field " + truncate(f, 80)
	}
	return errInvalidBody, "the body does not decode as a notification"
}

// jsonTypeName names a Go kind in JSON terms.
func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	}
	return kind
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
