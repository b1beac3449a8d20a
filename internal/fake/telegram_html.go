package fake

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// telegramTags are the tags Telegram's HTML parse mode supports.
var telegramTags = map[string]bool{
	"b": true, "strong": true, "i": true, "em": true, "u": true, "ins": true,
	"s": true, "strike": true, "del": true, "span": true, "tg-spoiler": true,
	"a": true, "tg-emoji": true, "code": true, "pre": true, "blockquote": true,
}

// ParseTelegramHTML parses text the way Telegram's parse_mode HTML does and
// returns the visible text (tags removed, entities decoded). It refuses, with
// Telegram's wording (the part after "can't parse entities: "), what Telegram
// refuses: an unsupported tag, an end tag that does not match the open one, a
// tag left open, a '<' that does not start a tag, and a '&' that does not start
// one of the entities Telegram supports (&lt; &gt; &amp; &quot; and numeric
// ones). A raw '>' is accepted, as Telegram does.
func ParseTelegramHTML(text string) (string, error) {
	var out strings.Builder
	var open []string
	for i := 0; i < len(text); {
		switch text[i] {
		case '&':
			s, n, err := decodeEntity(text, i)
			if err != nil {
				return "", err
			}
			out.WriteString(s)
			i += n
		case '<':
			name, closing, n, err := parseTag(text, i)
			if err != nil {
				return "", err
			}
			if closing {
				if len(open) == 0 {
					return "", fmt.Errorf("Unexpected end tag at byte offset %d", i)
				}
				if top := open[len(open)-1]; top != name {
					return "", fmt.Errorf("Unmatched end tag at byte offset %d, expected \"</%s>\", found \"</%s>\"", i, top, name)
				}
				open = open[:len(open)-1]
			} else {
				open = append(open, name)
			}
			i += n
		default:
			out.WriteByte(text[i])
			i++
		}
	}
	if len(open) > 0 {
		return "", fmt.Errorf("Can't find end tag corresponding to start tag \"%s\"", open[len(open)-1])
	}
	return out.String(), nil
}

// parseTag reads the tag starting at text[i] == '<' and returns its lower-case
// name, whether it is an end tag, and its length in bytes.
func parseTag(text string, i int) (name string, closing bool, n int, err error) {
	j := i + 1
	if j < len(text) && text[j] == '/' {
		closing = true
		j++
	}
	start := j
	for j < len(text) && isTagNameByte(text[j]) {
		j++
	}
	name = strings.ToLower(text[start:j])
	if name == "" {
		if closing {
			return "", false, 0, fmt.Errorf("Empty end tag at byte offset %d", i)
		}
		return "", false, 0, fmt.Errorf("Unsupported start tag \"\" at byte offset %d", i)
	}
	if !telegramTags[name] {
		if closing {
			return "", false, 0, fmt.Errorf("Unmatched end tag at byte offset %d, found \"</%s>\"", i, name)
		}
		return "", false, 0, fmt.Errorf("Unsupported start tag \"%s\" at byte offset %d", name, i)
	}
	// Attributes: name, name=value, name="value", name='value'.
	for {
		for j < len(text) && isSpace(text[j]) {
			j++
		}
		if j >= len(text) {
			return "", false, 0, fmt.Errorf("Can't find end of the tag starting at byte offset %d", i)
		}
		if text[j] == '>' {
			return name, closing, j + 1 - i, nil
		}
		if closing {
			return "", false, 0, fmt.Errorf("Can't find end of the tag starting at byte offset %d", i)
		}
		as := j
		for j < len(text) && isTagNameByte(text[j]) {
			j++
		}
		if j == as {
			return "", false, 0, fmt.Errorf("Expected equal sign in declaration of an attribute of the tag at byte offset %d", i)
		}
		for j < len(text) && isSpace(text[j]) {
			j++
		}
		if j >= len(text) || text[j] != '=' {
			continue // attribute without value
		}
		j++
		for j < len(text) && isSpace(text[j]) {
			j++
		}
		if j >= len(text) {
			return "", false, 0, fmt.Errorf("Unclosed start tag at byte offset %d", i)
		}
		var value string
		if q := text[j]; q == '"' || q == '\'' {
			end := strings.IndexByte(text[j+1:], q)
			if end < 0 {
				return "", false, 0, fmt.Errorf("Unclosed start tag at byte offset %d", i)
			}
			value = text[j+1 : j+1+end]
			j += end + 2
		} else {
			vs := j
			for j < len(text) && !isSpace(text[j]) && text[j] != '>' {
				j++
			}
			value = text[vs:j]
		}
		if strings.ContainsRune(value, '<') {
			return "", false, 0, fmt.Errorf("Unclosed start tag at byte offset %d", i)
		}
		// Entities inside attribute values follow the same rules.
		for k := 0; k < len(value); k++ {
			if value[k] != '&' {
				continue
			}
			_, n, err := decodeEntity(value, k)
			if err != nil {
				return "", false, 0, fmt.Errorf("Can't find end of the entity in the attribute of the tag at byte offset %d", i)
			}
			k += n - 1
		}
	}
}

// decodeEntity decodes the entity starting at text[i] == '&'.
func decodeEntity(text string, i int) (string, int, error) {
	end := strings.IndexByte(text[i:], ';')
	if end < 0 || end > 10 {
		return "", 0, fmt.Errorf("Can't find end of the entity starting at byte offset %d", i)
	}
	name := text[i+1 : i+end]
	switch name {
	case "lt":
		return "<", end + 1, nil
	case "gt":
		return ">", end + 1, nil
	case "amp":
		return "&", end + 1, nil
	case "quot":
		return `"`, end + 1, nil
	}
	if strings.HasPrefix(name, "#") {
		var v uint64
		var err error
		if strings.HasPrefix(name, "#x") || strings.HasPrefix(name, "#X") {
			v, err = strconv.ParseUint(name[2:], 16, 32)
		} else {
			v, err = strconv.ParseUint(name[1:], 10, 32)
		}
		if err == nil && v > 0 && v <= utf8.MaxRune && !(v >= 0xD800 && v <= 0xDFFF) {
			return string(rune(v)), end + 1, nil
		}
	}
	return "", 0, fmt.Errorf("Unsupported HTML entity \"&%s;\" at byte offset %d", name, i)
}

func isTagNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// UTF16Len is the length of s in UTF-16 code units, which is how Telegram
// counts a message's characters.
func UTF16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}
