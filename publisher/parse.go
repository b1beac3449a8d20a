package publisher

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldrelay/herald"
)

// parseJob decodes data exactly as json.Unmarshal into a zero herald.Job
// does, without reflection, for the jobs publishers write: every consumed job
// is decoded once, and encoding/json's reflection was most of that cost. ok
// is false whenever the input strays from that shape (not valid JSON, or not
// JSON this parser is sure of, a key
// that is unknown in a way encoding/json might still match, a repeated key, a
// null, a value of another type, a time that does not parse): Decode then
// uses encoding/json, which is the definition, and reports the errors. A key
// that matches no field in any letter case is skipped, as encoding/json does.
func parseJob(data []byte) (job herald.Job, ok bool) {
	p := parser{b: data}
	p.ws()
	ok = p.object(jobKeys, func(k int) bool {
		switch k {
		case 0:
			return p.integer(&job.Version)
		case 1:
			return p.str(&job.ID)
		case 2:
			var c string
			ok := p.str(&c)
			job.Channel = herald.Channel(c)
			return ok
		case 3:
			return p.time(&job.CreatedAt)
		case 4:
			return p.str(&job.Source)
		case 5:
			return p.credentials(&job.Credentials)
		case 6:
			return p.message(&job.Message)
		default:
			return p.str(&job.CredentialID)
		}
	})
	p.ws()
	return job, ok && p.i == len(p.b)
}

// The JSON names of the wire types' fields, in parse's switch order. A field
// added to the wire types but not here makes parseJob fall back to
// encoding/json whenever it is present, and
// TestParseJobMatchesEncodingJSON fail.
var (
	jobKeys         = []string{"v", "id", "channel", "created_at", "source", "credentials", "message", "credential_id"}
	credentialsKeys = []string{"webhook", "bot_token", "chat_id"}
	messageKeys     = []string{"title", "text", "url", "color", "fields", "footer", "username", "timestamp"}
	fieldKeys       = []string{"name", "value", "inline", "icon"}
)

func (p *parser) credentials(c *herald.Credentials) bool {
	return p.object(credentialsKeys, func(k int) bool {
		switch k {
		case 0:
			return p.str(&c.Webhook)
		case 1:
			return p.str(&c.BotToken)
		default:
			return p.str(&c.ChatID)
		}
	})
}

func (p *parser) message(m *herald.Message) bool {
	return p.object(messageKeys, func(k int) bool {
		switch k {
		case 0:
			return p.str(&m.Title)
		case 1:
			return p.str(&m.Text)
		case 2:
			return p.str(&m.URL)
		case 3:
			m.Color = new(int)
			return p.integer(m.Color)
		case 4:
			return p.fields(&m.Fields)
		case 5:
			return p.str(&m.Footer)
		case 6:
			return p.str(&m.Username)
		default:
			m.Timestamp = new(time.Time)
			return p.time(m.Timestamp)
		}
	})
}

func (p *parser) fields(fs *[]herald.Field) bool {
	if p.peek() != '[' {
		return false
	}
	p.i++
	out := make([]herald.Field, 0, 4) // an empty array is an empty slice, not nil
	for n := 0; ; n++ {
		p.ws()
		if n == 0 && p.peek() == ']' {
			p.i++
			*fs = out
			return true
		}
		var f herald.Field
		ok := p.object(fieldKeys, func(k int) bool {
			switch k {
			case 0:
				return p.str(&f.Name)
			case 1:
				return p.str(&f.Value)
			case 2:
				return p.boolean(&f.Inline)
			default:
				return p.str(&f.Icon)
			}
		})
		if !ok {
			return false
		}
		out = append(out, f)
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			*fs = out
			return true
		default:
			return false
		}
	}
}

// parser reads JSON, strictly: anything it is not sure of fails, and the
// caller leaves it to encoding/json.
type parser struct {
	b []byte
	i int
}

// maxDepth bounds the nesting of skipped values, well under encoding/json's
// own limit (10,000), so that a value too deep for encoding/json never parses
// here.
const maxDepth = 1000

// peek returns the byte at p.i, or 0 (never valid in JSON text there) at the
// end.
func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object reads an object whose keys are among keys (at most 64), calling
// value with a key's index when its value is next. A key that is not among
// keys in any letter case is skipped with its value; any other key, or a
// repeated one, fails.
func (p *parser) object(keys []string, value func(k int) bool) bool {
	if p.peek() != '{' {
		return false
	}
	p.i++
	var seen uint64
	for n := 0; ; n++ {
		p.ws()
		if n == 0 && p.peek() == '}' {
			p.i++
			return true
		}
		start := p.i
		escaped, ok := p.skipString()
		if !ok || escaped {
			return false // an escaped key: leave the matching to encoding/json
		}
		name := p.b[start+1 : p.i-1]
		p.ws()
		if p.peek() != ':' {
			return false
		}
		p.i++
		p.ws()
		k := index(keys, name)
		switch {
		case k >= 0 && seen&(1<<k) == 0:
			seen |= 1 << k
			if !value(k) {
				return false
			}
		case k >= 0 || foldMatch(keys, name):
			return false // repeated, or encoding/json's case-insensitive match
		default:
			if !p.skip(0) {
				return false
			}
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

func index(keys []string, name []byte) int {
	for i, k := range keys {
		if string(name) == k {
			return i
		}
	}
	return -1
}

// foldMatch reports whether encoding/json might match name to one of keys
// ignoring case: any non-ASCII name is assumed to (Unicode folding has
// surprises such as the Kelvin sign).
func foldMatch(keys []string, name []byte) bool {
	for _, c := range name {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	for _, k := range keys {
		if strings.EqualFold(string(name), k) {
			return true
		}
	}
	return false
}

// skipString moves past the string at p.i, checking its escapes, and reports
// whether it holds any.
func (p *parser) skipString() (escaped, ok bool) {
	if p.peek() != '"' {
		return false, false
	}
	for p.i++; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return escaped, true
		case c < 0x20:
			return false, false
		case c == '\\':
			escaped = true
			p.i++
			switch p.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if p.i+4 >= len(p.b) {
					return false, false
				}
				for _, h := range p.b[p.i+1 : p.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false, false
					}
				}
				p.i += 4
			default:
				return false, false
			}
		}
	}
	return false, false
}

// skipNumber moves past the number at p.i: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *parser) skipNumber() bool {
	if p.peek() == '-' {
		p.i++
	}
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return false
	}
	if p.peek() == '.' {
		p.i++
		if !p.digits() {
			return false
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if !p.digits() {
			return false
		}
	}
	return true
}

// digits moves past a run of digits and reports whether there was one.
func (p *parser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// literal moves past word (true, false, null) at p.i.
func (p *parser) literal(word string) bool {
	if !bytes.HasPrefix(p.b[p.i:], []byte(word)) {
		return false
	}
	p.i += len(word)
	return true
}

// skip moves past the value at p.i, depth levels deep.
func (p *parser) skip(depth int) bool {
	switch c := p.peek(); {
	case c == '"':
		_, ok := p.skipString()
		return ok
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return false
		}
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		for n := 0; ; n++ {
			p.ws()
			if n == 0 && p.peek() == end {
				p.i++
				return true
			}
			if c == '{' {
				if _, ok := p.skipString(); !ok {
					return false
				}
				p.ws()
				if p.peek() != ':' {
					return false
				}
				p.i++
				p.ws()
			}
			if !p.skip(depth + 1) {
				return false
			}
			p.ws()
			switch p.peek() {
			case ',':
				p.i++
			case end:
				p.i++
				return true
			default:
				return false
			}
		}
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	default:
		return p.skipNumber()
	}
}

// str reads a string into s: its bytes when they are plain UTF-8 without
// escapes, else what encoding/json makes of it.
func (p *parser) str(s *string) bool {
	start := p.i
	escaped, ok := p.skipString()
	if !ok {
		return false
	}
	raw := p.b[start+1 : p.i-1]
	if !escaped && utf8.Valid(raw) {
		*s = string(raw)
		return true
	}
	return json.Unmarshal(p.b[start:p.i], s) == nil
}

// integer reads a number that encoding/json puts into an int: no fraction,
// no exponent, in range.
func (p *parser) integer(n *int) bool {
	start := p.i
	if !p.skipNumber() || bytes.ContainsAny(p.b[start:p.i], ".eE") {
		return false
	}
	v, err := strconv.ParseInt(string(p.b[start:p.i]), 10, strconv.IntSize)
	*n = int(v)
	return err == nil
}

func (p *parser) boolean(b *bool) bool {
	switch p.peek() {
	case 't':
		*b = true
		return p.literal("true")
	case 'f':
		*b = false
		return p.literal("false")
	}
	return false
}

// time reads a time as encoding/json does: time.Time.UnmarshalJSON on the
// raw string.
func (p *parser) time(t *time.Time) bool {
	start := p.i
	if _, ok := p.skipString(); !ok {
		return false
	}
	return t.UnmarshalJSON(p.b[start:p.i]) == nil
}
