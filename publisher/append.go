package publisher

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/heraldrelay/herald"
)

// appendJob appends job's JSON encoding to dst exactly as encoding/json
// encodes it (herald.Job's struct tags, no HTML escaping, no trailing
// newline), without reflection: every job the ingest accepts is encoded once,
// and encoding/json's reflection was a sizeable part of that cost. ok is false
// when the job holds something only encoding/json knows how to report (a time
// outside the years 0-9999); the caller then encodes with encoding/json.
//
// It must follow herald.Job field for field: TestAppendJobMatchesEncodingJSON
// fills every field of the wire types by reflection and fails when a field is
// added to them but not here.
func appendJob(dst []byte, job *herald.Job) (_ []byte, ok bool) {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(job.Version), 10)
	if job.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, job.ID)
	}
	dst = append(dst, `,"channel":`...)
	dst = appendString(dst, string(job.Channel))
	if !job.CreatedAt.IsZero() {
		dst = append(dst, `,"created_at":`...)
		if dst, ok = appendTime(dst, job.CreatedAt); !ok {
			return dst, false
		}
	}
	if job.Source != "" {
		dst = append(dst, `,"source":`...)
		dst = appendString(dst, job.Source)
	}

	c := &job.Credentials
	dst = append(dst, `,"credentials":{`...)
	sep := byte(0)
	dst = appendStringMember(dst, &sep, "webhook", c.Webhook)
	dst = appendStringMember(dst, &sep, "bot_token", c.BotToken)
	dst = appendStringMember(dst, &sep, "chat_id", c.ChatID)

	dst = append(dst, '}')
	if job.CredentialID != "" {
		dst = append(dst, `,"credential_id":`...)
		dst = appendString(dst, job.CredentialID)
	}

	m := &job.Message
	dst = append(dst, `,"message":{`...)
	sep = 0
	dst = appendStringMember(dst, &sep, "title", m.Title)
	dst = appendStringMember(dst, &sep, "text", m.Text)
	dst = appendStringMember(dst, &sep, "url", m.URL)
	if m.Color != nil {
		dst = appendMember(dst, &sep, "color")
		dst = strconv.AppendInt(dst, int64(*m.Color), 10)
	}
	if len(m.Fields) > 0 {
		dst = appendMember(dst, &sep, "fields")
		dst = append(dst, '[')
		for i := range m.Fields {
			f := &m.Fields[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = appendString(dst, f.Name)
			dst = append(dst, `,"value":`...)
			dst = appendString(dst, f.Value)
			if f.Inline {
				dst = append(dst, `,"inline":true`...)
			}
			if f.Icon != "" {
				dst = append(dst, `,"icon":`...)
				dst = appendString(dst, f.Icon)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = appendStringMember(dst, &sep, "footer", m.Footer)
	dst = appendStringMember(dst, &sep, "username", m.Username)
	if m.Timestamp != nil {
		dst = appendMember(dst, &sep, "timestamp")
		if dst, ok = appendTime(dst, *m.Timestamp); !ok {
			return dst, false
		}
	}
	return append(dst, '}', '}'), true
}

// appendMember appends the name of an object's member, after a comma unless
// *sep is 0 (the object's first member).
func appendMember(dst []byte, sep *byte, name string) []byte {
	if *sep != 0 {
		dst = append(dst, *sep)
	}
	*sep = ','
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"', ':')
}

// appendStringMember appends member name with string value v, unless v is
// empty (omitempty).
func appendStringMember(dst []byte, sep *byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	return appendString(appendMember(dst, sep, name), v)
}

// appendTime appends t as time.Time.MarshalJSON does; ok is false when
// MarshalJSON would fail.
func appendTime(dst []byte, t time.Time) ([]byte, bool) {
	dst = append(dst, '"')
	dst, err := t.AppendText(dst)
	if err != nil {
		return dst, false
	}
	return append(dst, '"'), true
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string exactly as encoding/json does
// without HTML escaping: ", \ and control characters escaped (\b \f \n \r \t
// short), invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
