package ingest

import (
	"bytes"
	"encoding/json"
)

// validJSON walks JSON text that json.Valid has accepted. It only finds where
// things begin and end, so it can skip the checks (and the allocations) of a
// json.Decoder; given text that is not valid JSON its results mean nothing.
type validJSON struct {
	b []byte
	i int
}

func (s *validJSON) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// skipString moves past the string starting at s.i (its opening quote) and
// reports whether it holds an escape.
func (s *validJSON) skipString() (escaped bool) {
	s.i++
	for {
		switch s.b[s.i] {
		case '"':
			s.i++
			return escaped
		case '\\':
			escaped = true
			s.i += 2
		default:
			s.i++
		}
	}
}

// skipValue moves past the value starting at s.i.
func (s *validJSON) skipValue() {
	switch s.b[s.i] {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
		for {
			switch s.b[s.i] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return
				}
			}
			s.i++
		}
	default: // a number, true, false or null: up to the next delimiter
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			s.i++
		}
	}
}

// objectIter steps through the members of a JSON object; see newObjectIter.
type objectIter struct{ validJSON }

// newObjectIter returns an iterator over the members of data, which must be
// a valid JSON object.
func newObjectIter(data []byte) *objectIter {
	it := &objectIter{validJSON{b: data}}
	it.skipSpace()
	it.i++ // {
	return it
}

// next returns the next member's name (a JSON string, quotes included;
// escaped says whether it holds an escape) and value (without surrounding
// white space), or ok false after the last member.
func (it *objectIter) next() (name, value []byte, escaped, ok bool) {
	it.skipSpace()
	if it.b[it.i] == '}' {
		return nil, nil, false, false
	}
	start := it.i
	escaped = it.skipString()
	name = it.b[start:it.i]
	it.skipSpace()
	it.i++ // :
	it.skipSpace()
	vstart := it.i
	it.skipValue()
	value = it.b[vstart:it.i]
	it.skipSpace()
	if it.b[it.i] == ',' {
		it.i++
	}
	return name, value, escaped, true
}

// unquote returns the value of the JSON string raw (valid JSON, valid UTF-8):
// its bytes between the quotes when it holds no escape, else what
// encoding/json makes of it.
func unquote(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}
