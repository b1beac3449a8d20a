package ingest

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// objectFieldsRef is objectFields as first written, over a json.Decoder: the
// reference the fast one is fuzzed against.
func objectFieldsRef(data []byte, path, what string, known ...string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, reject(errMalformedJSON, syntaxPrefix+"malformed JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		at := ""
		if path != "" {
			at = path[:len(path)-1] + ": "
		}
		return nil, shapeError("%sinvalid type: %s, expected %s", at, tokenKind(tok), what)
	}
	fields := make(map[string]json.RawMessage, len(known))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, reject(errMalformedJSON, syntaxPrefix+"malformed JSON")
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, reject(errMalformedJSON, syntaxPrefix+"malformed JSON")
		}
		for _, k := range known {
			if name == k {
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

// tokenKind names a JSON token's type as serde's errors do.
func tokenKind(tok json.Token) string {
	switch t := tok.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64, json.Number:
		return "number"
	case string:
		return "string"
	case json.Delim:
		if t == '[' {
			return "sequence"
		}
		return "map"
	}
	return "value"
}

func FuzzObjectFields(f *testing.F) {
	for _, s := range []string{
		`{"type":"discord","message":{"username":"a","current_streak":1,"message":"m"}}`,
		` { "type" : "x" , "type":"y"} `,
		`{"typ\u0065":"discord","encrypted_webhook":null,"x":[1,{"type":"no"}],"message":"{\"a\"}"}`,
		`{"a":{"b":[[],{}]},"message":-1.5e3,"type":true}`,
		`[]`, `null`, `"str"`, `12`, `{}`, "\t{\n}\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) || !utf8.Valid(data) {
			return
		}
		known := []string{"type", "encrypted_webhook", "message", "a"}
		got, gotErr := objectFields(data, "message.", "struct X", known...)
		want, wantErr := objectFieldsRef(data, "message.", "struct X", known...)
		if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("objectFields(%q) error = %v, reference %v", data, gotErr, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("objectFields(%q) = %q, reference %q", data, got, want)
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("objectFields(%q)[%s] = %q, reference %q", data, k, got[k], v)
			}
			if v[0] == '"' {
				s, err := unquote(v)
				var ref string
				refErr := json.Unmarshal(v, &ref)
				if s != ref || (err == nil) != (refErr == nil) {
					t.Fatalf("unquote(%q) = %q, %v; encoding/json: %q, %v", v, s, err, ref, refErr)
				}
			}
		}
	})
}
