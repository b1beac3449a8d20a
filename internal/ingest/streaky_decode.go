package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// streakyRequest is the body a Streaky Worker sends to /send-notification,
// decoded with the rules of the proxy's serde structs: exact (case-sensitive)
// field names, unknown fields ignored, a duplicate known field refused.
type streakyRequest struct {
	Type string
	// The encrypted_* fields are optional strings: nil when absent or null.
	EncryptedWebhook *string
	EncryptedToken   *string
	EncryptedChatID  *string
	Message          streakyMessage
}

// streakyMessage is the request's "message" object.
type streakyMessage struct {
	Username      string
	CurrentStreak int32
	// ContributionsToday is optional and unused, but must be an i32 when set.
	ContributionsToday *int32
	Message            string
}

// Texts axum's Json extractor starts its rejections with.
const (
	syntaxPrefix = "Failed to parse the request body as JSON: "
	shapePrefix  = "Failed to deserialize the JSON body into the target type: "
)

// decodeStreaky decodes a /send-notification body. Errors wrap
// errMalformedJSON (400: not JSON) or errWrongShape (422: JSON, but not the
// request), with texts that never quote a string of the body.
func decodeStreaky(body []byte) (streakyRequest, error) {
	var req streakyRequest
	if !utf8.Valid(body) {
		return req, reject(errMalformedJSON, syntaxPrefix+"the body is not valid UTF-8")
	}
	if !json.Valid(body) {
		var raw json.RawMessage
		kind, text := describeJSONError(json.Unmarshal(body, &raw))
		if kind != errMalformedJSON { // cannot happen: Valid and Unmarshal agree
			text = "malformed JSON"
		}
		return req, reject(errMalformedJSON, syntaxPrefix+"%s", text)
	}
	top, err := objectFields(body, "", "struct NotificationRequest",
		"type", "encrypted_webhook", "encrypted_token", "encrypted_chat_id", "message")
	if err != nil {
		return req, err
	}
	if req.Type, err = requiredString(top, "", "type"); err != nil {
		return req, err
	}
	if req.EncryptedWebhook, err = optionalString(top, "encrypted_webhook"); err != nil {
		return req, err
	}
	if req.EncryptedToken, err = optionalString(top, "encrypted_token"); err != nil {
		return req, err
	}
	if req.EncryptedChatID, err = optionalString(top, "encrypted_chat_id"); err != nil {
		return req, err
	}
	rawMsg, ok := top["message"]
	if !ok {
		return req, shapeError("missing field `message`")
	}
	msg, err := objectFields(rawMsg, "message.", "struct NotificationMessage",
		"username", "current_streak", "contributions_today", "message")
	if err != nil {
		return req, err
	}
	if req.Message.Username, err = requiredString(msg, "message.", "username"); err != nil {
		return req, err
	}
	raw, ok := msg["current_streak"]
	if !ok {
		return req, shapeError("message: missing field `current_streak`")
	}
	if req.Message.CurrentStreak, err = parseI32(raw, "message.current_streak"); err != nil {
		return req, err
	}
	if raw, ok := msg["contributions_today"]; ok && !isNull(raw) {
		n, err := parseI32(raw, "message.contributions_today")
		if err != nil {
			return req, err
		}
		req.Message.ContributionsToday = &n
	}
	if req.Message.Message, err = requiredString(msg, "message.", "message"); err != nil {
		return req, err
	}
	return req, nil
}

func shapeError(format string, args ...any) error {
	return reject(errWrongShape, shapePrefix+format, args...)
}

// objectFields returns the members of the JSON object data (already known to
// be valid JSON) whose names are in known. what names the expected type in
// errors; path prefixes field names.
func objectFields(data []byte, path, what string, known ...string) (map[string]json.RawMessage, error) {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 || data[0] != '{' {
		if rawKind(data) == "number" {
			if _, err := strconv.ParseFloat(string(bytes.TrimRight(data, " \t\r\n")), 64); err != nil {
				// Out of float64's range: refused as malformed, as it always was.
				return nil, reject(errMalformedJSON, syntaxPrefix+"malformed JSON")
			}
		}
		at := ""
		if path != "" {
			at = path[:len(path)-1] + ": "
		}
		return nil, shapeError("%sinvalid type: %s, expected %s", at, rawKind(data), what)
	}
	fields := make(map[string]json.RawMessage, len(known))
	for it := newObjectIter(data); ; {
		quoted, v, escaped, ok := it.next()
		if !ok {
			break
		}
		var unescaped string
		if escaped {
			// Rare: apply the escapes, as serde does.
			_ = json.Unmarshal(quoted, &unescaped)
		}
		for _, k := range known {
			// string(quoted[...]) in a comparison does not allocate.
			if escaped && unescaped == k || !escaped && string(quoted[1:len(quoted)-1]) == k {
				if _, dup := fields[k]; dup {
					return nil, shapeError("duplicate field `%s%s`", path, k)
				}
				fields[k] = v
				break
			}
		}
	}
	return fields, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// rawKind names the JSON type of a raw value.
func rawKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '"':
		return "string"
	case c == '{':
		return "map"
	case c == '[':
		return "sequence"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	default:
		return "number"
	}
}

func requiredString(fields map[string]json.RawMessage, path, name string) (string, error) {
	raw, ok := fields[name]
	if !ok {
		if path != "" {
			return "", shapeError("%s: missing field `%s`", path[:len(path)-1], name)
		}
		return "", shapeError("missing field `%s`", name)
	}
	return decodeString(raw, path+name)
}

func optionalString(fields map[string]json.RawMessage, name string) (*string, error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return nil, nil
	}
	s, err := decodeString(raw, name)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

func decodeString(raw json.RawMessage, field string) (string, error) {
	if rawKind(raw) != "string" {
		return "", shapeError("%s: invalid type: %s, expected a string", field, rawKind(raw))
	}
	s, err := unquote(raw)
	if err != nil {
		return "", shapeError("%s: invalid string", field)
	}
	return s, nil
}

// parseI32 accepts a JSON integer that fits an i32, as serde does: no
// fraction, no exponent, not a string.
func parseI32(raw json.RawMessage, field string) (int32, error) {
	if k := rawKind(raw); k != "number" {
		return 0, shapeError("%s: invalid type: %s, expected i32", field, k)
	}
	if bytes.ContainsAny(raw, ".eE") {
		return 0, shapeError("%s: invalid type: floating point, expected i32", field)
	}
	n, err := strconv.ParseInt(string(raw), 10, 32)
	if err != nil {
		return 0, shapeError("%s: invalid value: integer out of range for i32", field)
	}
	return int32(n), nil
}

// String renders a request for tests and debugging without any credential.
func (r streakyRequest) String() string {
	return fmt.Sprintf("streakyRequest{type=%q webhook=%t token=%t chat_id=%t username=%q streak=%d}",
		r.Type, r.EncryptedWebhook != nil, r.EncryptedToken != nil, r.EncryptedChatID != nil,
		r.Message.Username, r.Message.CurrentStreak)
}
