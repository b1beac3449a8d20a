package fake

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Discord's message limits (FACTS.md), in characters (code points).
const (
	discordMaxContent     = 2000
	discordMaxEmbeds      = 10
	discordMaxTitle       = 256
	discordMaxDescription = 4096
	discordMaxFields      = 25
	discordMaxFieldName   = 256
	discordMaxFieldValue  = 1024
	discordMaxFooter      = 2048
	discordMaxAuthor      = 256
	discordMaxEmbedsTotal = 6000
	discordMaxUsername    = 80
)

// formError builds Discord's "Invalid Form Body" answer with one error at
// path, e.g. {"errors": {"embeds": {"0": {"title": {"_errors": [...]}}}}}.
func formError(path []string, code, message string) map[string]any {
	var node any = map[string]any{"_errors": []any{map[string]any{"code": code, "message": message}}}
	for i := len(path) - 1; i >= 0; i-- {
		node = map[string]any{path[i]: node}
	}
	return map[string]any{"message": "Invalid Form Body", "code": 50035, "errors": node}
}

func maxLen(path []string, n int) map[string]any {
	return formError(path, "BASE_TYPE_MAX_LENGTH", "Must be "+strconv.Itoa(n)+" or fewer in length.")
}

func required(path []string) map[string]any {
	return formError(path, "BASE_TYPE_REQUIRED", "This field is required")
}

// validateDiscordMessage refuses what Discord's execute-webhook endpoint
// refuses. It returns the status and body of the refusal, or a nil body.
func validateDiscordMessage(contentType string, raw []byte) (int, map[string]any) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/json" {
		// Discord reads anything else as an empty form.
		return http.StatusBadRequest, map[string]any{"message": "Cannot send an empty message", "code": 50006}
	}
	var msg map[string]any
	if err := json.Unmarshal(raw, &msg); err != nil || msg == nil {
		return http.StatusBadRequest, map[string]any{"message": "The request body contains invalid JSON.", "code": 50109}
	}
	content, _ := msg["content"].(string)
	if n := utf8.RuneCountInString(content); n > discordMaxContent {
		return http.StatusBadRequest, maxLen([]string{"content"}, discordMaxContent)
	}
	if v, ok := msg["username"]; ok {
		name, _ := v.(string)
		n := utf8.RuneCountInString(name)
		low := strings.ToLower(name)
		switch {
		case n < 1 || n > discordMaxUsername:
			return http.StatusBadRequest, formError([]string{"username"}, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length.")
		case strings.Contains(low, "discord") || strings.Contains(low, "clyde"):
			return http.StatusBadRequest, formError([]string{"username"}, "USERNAME_INVALID_CONTAINS", "Username cannot contain \"discord\"")
		}
	}
	var embeds []any
	if v, ok := msg["embeds"]; ok && v != nil {
		embeds, ok = v.([]any)
		if !ok {
			return http.StatusBadRequest, formError([]string{"embeds"}, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
		}
	}
	if len(embeds) > discordMaxEmbeds {
		return http.StatusBadRequest, maxLen([]string{"embeds"}, discordMaxEmbeds)
	}
	if strings.TrimSpace(content) == "" && len(embeds) == 0 {
		return http.StatusBadRequest, map[string]any{"message": "Cannot send an empty message", "code": 50006}
	}
	total := 0
	for i, v := range embeds {
		e, ok := v.(map[string]any)
		if !ok {
			return http.StatusBadRequest, formError([]string{"embeds", strconv.Itoa(i)}, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
		}
		n, bad := validateEmbed(strconv.Itoa(i), e)
		if bad != nil {
			return http.StatusBadRequest, bad
		}
		total += n
	}
	if total > discordMaxEmbedsTotal {
		return http.StatusBadRequest, formError([]string{"embeds"}, "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
	}
	return 0, nil
}

// validateEmbed checks one embed and returns the characters it counts
// against the 6000 total.
func validateEmbed(idx string, e map[string]any) (int, map[string]any) {
	path := func(p ...string) []string { return append([]string{"embeds", idx}, p...) }
	str := func(v any) string { s, _ := v.(string); return s }
	total := 0
	check := func(s string, limit int, p ...string) map[string]any {
		n := utf8.RuneCountInString(s)
		total += n
		if n > limit {
			return maxLen(path(p...), limit)
		}
		return nil
	}
	if bad := check(str(e["title"]), discordMaxTitle, "title"); bad != nil {
		return 0, bad
	}
	if bad := check(str(e["description"]), discordMaxDescription, "description"); bad != nil {
		return 0, bad
	}
	if u, ok := e["url"]; ok {
		if !wellFormedURL(str(u)) {
			return 0, formError(path("url"), "URL_TYPE_INVALID_URL", "Not a well formed URL.")
		}
	}
	if c, ok := e["color"]; ok {
		f, isNum := c.(float64)
		if !isNum || f != float64(int64(f)) || f < 0 || f > 0xFFFFFF {
			return 0, formError(path("color"), "NUMBER_TYPE_MAX", "int value should be less than or equal to 16777215.")
		}
	}
	if ts, ok := e["timestamp"]; ok {
		if _, err := time.Parse(time.RFC3339Nano, str(ts)); err != nil {
			return 0, formError(path("timestamp"), "DATE_TYPE_PARSE", "Could not parse "+strconv.Quote(str(ts))+". Should be ISO8601.")
		}
	}
	if v, ok := e["fields"]; ok && v != nil {
		fields, ok := v.([]any)
		if !ok {
			return 0, formError(path("fields"), "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
		}
		if len(fields) > discordMaxFields {
			return 0, maxLen(path("fields"), discordMaxFields)
		}
		for j, fv := range fields {
			f, _ := fv.(map[string]any)
			k := strconv.Itoa(j)
			name, value := str(f["name"]), str(f["value"])
			if name == "" {
				return 0, required(path("fields", k, "name"))
			}
			if value == "" {
				return 0, required(path("fields", k, "value"))
			}
			if bad := check(name, discordMaxFieldName, "fields", k, "name"); bad != nil {
				return 0, bad
			}
			if bad := check(value, discordMaxFieldValue, "fields", k, "value"); bad != nil {
				return 0, bad
			}
		}
	}
	if v, ok := e["footer"]; ok && v != nil {
		footer, _ := v.(map[string]any)
		text := str(footer["text"])
		if text == "" {
			return 0, required(path("footer", "text"))
		}
		if bad := check(text, discordMaxFooter, "footer", "text"); bad != nil {
			return 0, bad
		}
	}
	if v, ok := e["author"]; ok && v != nil {
		author, _ := v.(map[string]any)
		if bad := check(str(author["name"]), discordMaxAuthor, "author", "name"); bad != nil {
			return 0, bad
		}
	}
	return total, nil
}

func wellFormedURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "attachment":
		return true
	}
	return false
}
