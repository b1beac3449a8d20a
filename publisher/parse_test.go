package publisher

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldrelay/herald"
)

// checkParse holds parseJob to json.Unmarshal: when it accepts data, the job
// must be what encoding/json decodes, without error.
func checkParse(t *testing.T, data []byte) (ok bool) {
	t.Helper()
	got, ok := parseJob(data)
	if !ok {
		return false
	}
	var want herald.Job
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatalf("parseJob accepted %q, encoding/json: %v", data, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseJob(%q)\n = %#v\nencoding/json %#v", data, got, want)
	}
	return true
}

// TestParseJobMatchesEncodingJSON decodes a job with every field set (see
// fill): a field added to the wire types but not to parseJob fails here.
func TestParseJobMatchesEncodingJSON(t *testing.T) {
	var full herald.Job
	fill(reflect.ValueOf(&full).Elem(), "job")
	data := referenceJSON(t, &full)
	if !checkParse(t, data) {
		t.Fatalf("parseJob refused %s", data)
	}
	got, _ := parseJob(data)
	if !reflect.DeepEqual(got.Message.Fields, full.Message.Fields) || got.Credentials != full.Credentials || !got.CreatedAt.Equal(full.CreatedAt) {
		t.Fatalf("parseJob lost fields:\n got %#v\nwant %#v", got, full)
	}
}

func TestParseJob(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool // parseJob decodes it itself
	}{
		{"canonical", `{"v":1,"id":"a","channel":"discord","created_at":"2026-01-02T03:04:05.5+01:00","source":"s","credentials":{"webhook":"w"},"message":{"title":"t","color":-5,"fields":[{"name":"n","value":"v","inline":true,"icon":"i"},{"name":"m","value":"w","inline":false}],"timestamp":"2026-01-02T03:04:05Z"}}`, true},
		{"white space", " {\n\t\"v\" : 1 ,\r\"message\" : { \"fields\" : [ ] } } ", true},
		{"unknown fields skipped", `{"v":1,"future":{"v":[1,"x",{"}":"{"}]},"message":{"new":true,"text":"x"},"z":null}`, true},
		{"plain utf8", `{"message":{"text":"héllo 🔥 <b>&</b>"}}`, true},
		{"escapes in values", `{"message":{"text":"a\nb\u00e9\"\\"}}`, true},
		{"empty", `{}`, true},
		{"bad utf8 value", "{\"message\":{\"text\":\"a\xffb\"}}", true},
		{"case-folded key", `{"V":1}`, false},
		{"kelvin key", "{\"\u212a\":1}", false},
		{"escaped key", `{"\u0076":1}`, false},
		{"repeated key", `{"v":1,"v":2}`, false},
		{"repeated message", `{"message":{"title":"a"},"message":{"text":"b"}}`, false},
		{"null string", `{"id":null}`, false},
		{"null color", `{"message":{"color":null}}`, false},
		{"float version", `{"v":1.0}`, false},
		{"exponent", `{"v":1e0}`, false},
		{"huge", `{"v":123456789012345678901234567890}`, false},
		{"string version", `{"v":"1"}`, false},
		{"bad time", `{"created_at":"yesterday"}`, false},
		{"time not string", `{"created_at":5}`, false},
		{"field not object", `{"message":{"fields":[1]}}`, false},
		{"inline string", `{"message":{"fields":[{"inline":"yes"}]}}`, false},
		{"array", `[]`, false},
		{"null", `null`, false},
		{"invalid", `{"v":1`, false},
		{"trailing", `{"v":1}{}`, false},
		{"leading zero", `{"x":01}`, false},
		{"trailing comma", `{"v":1,}`, false},
		{"trailing comma in array", `{"x":[1,]}`, false},
		{"leading comma in array", `{"x":[,1]}`, false},
		{"empty member", `{,}`, false},
		{"no colon", `{"x" 1}`, false},
		{"bad literal", `{"x":tru}`, false},
		{"bad number", `{"x":-}`, false},
		{"bad fraction", `{"x":1.}`, false},
		{"bad exponent", `{"x":1e}`, false},
		{"bad escape", `{"x":"\x"}`, false},
		{"short unicode escape", `{"x":"\u12"}`, false},
		{"control character", "{\"x\":\"a\x01\"}", false},
		{"unterminated string", `{"x":"abc`, false},
		{"deep", `{"x":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`, false},
		{"nested unknown", `{"x":{"a":[1,-2.5e+3,true,false,null,"s",{"b":{}}]},"v":1}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok := checkParse(t, []byte(tt.in)); ok != tt.ok {
				t.Errorf("parseJob ok = %t, want %t", ok, tt.ok)
			}
		})
	}
}

func FuzzParseJob(f *testing.F) {
	var full herald.Job
	fill(reflect.ValueOf(&full).Elem(), "job")
	seed, _ := json.Marshal(&full)
	f.Add(seed)
	f.Add([]byte(`{"v":1,"id":"a","channel":"discord","created_at":"2026-01-02T03:04:05.5+01:00","credentials":{"webhook":"w"},"message":{"title":"t","color":-5,"fields":[{"name":"n","value":"v","inline":true}]}}`))
	f.Add([]byte(`{"v":1,"x":[{"y":"}"}],"message":{"fields":[],"timestamp":"2026-01-02T03:04:05Z"}}`))
	f.Add([]byte(`{"Message":{"TEXT":"a"}}`))
	f.Fuzz(func(t *testing.T, data []byte) { checkParse(t, data) })
}
