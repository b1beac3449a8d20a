package herald

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The wire format is encoding/json's (see codec.go): these tests hold the
// codec to it, byte for byte when encoding and value for value when
// decoding, for every field of Job (fill) and for the awkward inputs.

// referenceJSON is what encoding/json makes of job, without HTML escaping.
func referenceJSON(t testing.TB, job *Job) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(job); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func checkEncode(t testing.TB, job *Job) {
	t.Helper()
	want, werr := referenceJSON(t, job)
	got, err := EncodeJob(job)
	if (err == nil) != (werr == nil) {
		t.Fatalf("EncodeJob error %v, encoding/json error %v", err, werr)
	}
	// encoding/json escapes the replacement for invalid UTF-8 as \ufffd;
	// the codec writes U+FFFD itself, the same JSON string.
	want = bytes.ReplaceAll(want, []byte(`\ufffd`), []byte("\uFFFD"))
	if err == nil && !bytes.Equal(got, want) {
		t.Fatalf("EncodeJob differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

// checkDecode holds unmarshalJob to json.Unmarshal: both accept or both
// refuse data, and accepted data gives the same job. It says whether data
// was accepted.
func checkDecode(t testing.TB, data []byte) bool {
	t.Helper()
	got, err := unmarshalJob(data)
	var want Job
	werr := json.Unmarshal(data, &want)
	if (err == nil) != (werr == nil) {
		// A job of another version is refused by name even where encoding/json
		// would decode it into this version's shape.
		if err != nil && strings.Contains(err.Error(), "unsupported version") && werr != nil {
			return false
		}
		t.Fatalf("unmarshalJob(%q) error %v, encoding/json error %v", data, err, werr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("unmarshalJob(%q)\n = %#v\nencoding/json %#v", data, got, want)
	}
	return err == nil
}

// fill sets every field reachable from v to a non-zero value: strings to
// their field's name, numbers to 7, booleans to true, times to a fixed time,
// pointers to a filled value and slices to two filled elements.
func fill(v reflect.Value, name string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(name + "-<&>\"\\\n\u2028é")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(7.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), name)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < 2; i++ {
			fill(v.Index(i), name)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 11, 23, 10, 11, 12, 130000000, time.FixedZone("", 3600))))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), v.Type().Field(i).Name)
			}
		}
	default:
		panic("fill: unhandled kind " + v.Kind().String() + " of " + name + ": teach fill and appendJob about it")
	}
}

// TestEncodeJobMatchesEncodingJSON holds EncodeJob to encoding/json's
// output for a job with every field set and for awkward values.
func TestEncodeJobMatchesEncodingJSON(t *testing.T) {
	var full Job
	fill(reflect.ValueOf(&full).Elem(), "job")
	checkEncode(t, &full)

	c := 0
	ts := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for name, job := range map[string]*Job{
		"zero":          {},
		"minimal":       {Version: 1, Channel: ChannelDiscord, Credentials: Credentials{Webhook: "w"}, Message: Message{Text: "t"}},
		"zero color":    {Message: Message{Color: &c, Fields: []Field{}}},
		"zero ts":       {Message: Message{Timestamp: &time.Time{}}},
		"empty fields":  {Message: Message{Fields: []Field{{}}}},
		"negative":      {Version: -3, Message: Message{Color: func() *int { n := -1 << 40; return &n }()}},
		"controls":      {Message: Message{Text: "\x00\x01\x07\b\f\n\r\t\x1f\x7f \"\\ </script> &amp;"}},
		"bad utf8":      {Message: Message{Title: "a\xffb\xc3", Text: "\xed\xa0\x80 surrogate", Footer: "\u2028\u2029\u2027\u202a"}},
		"local created": {CreatedAt: ts.In(time.FixedZone("", -7*3600)), Message: Message{Timestamp: &ts}},
		"nanos":         {CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 1, time.UTC)},
	} {
		t.Run(name, func(t *testing.T) { checkEncode(t, job) })
	}
}

// TestEncodeJobRefusesTimesEncodingJSONRefuses: a time outside RFC 3339's
// years is an error, as in encoding/json.
func TestEncodeJobRefusesTimesEncodingJSONRefuses(t *testing.T) {
	for name, job := range map[string]*Job{
		"created_at": {CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"timestamp":  {Message: Message{Timestamp: func() *time.Time { ts := time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC); return &ts }()}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := EncodeJob(job); err == nil {
				t.Error("EncodeJob accepted a time encoding/json refuses")
			}
		})
	}
}

// TestDecodeJobMatchesEncodingJSON decodes a job with every field set, and
// awkward inputs, as encoding/json does.
func TestDecodeJobMatchesEncodingJSON(t *testing.T) {
	var full Job
	fill(reflect.ValueOf(&full).Elem(), "job")
	data, err := referenceJSON(t, &full)
	if err != nil {
		t.Fatal(err)
	}
	if !checkDecode(t, data) {
		t.Fatalf("refused %s", data)
	}
	tests := []struct {
		name string
		in   string
	}{
		{"canonical", `{"v":1,"id":"a","channel":"discord","created_at":"2026-01-02T03:04:05.5+01:00","source":"s","credentials":{"webhook":"w"},"message":{"title":"t","color":-5,"fields":[{"name":"n","value":"v","inline":true,"icon":"i"},{"name":"m","value":"w","inline":false}],"timestamp":"2026-01-02T03:04:05Z"}}`},
		{"white space", " {\n\t\"v\" : 1 ,\r\"message\" : { \"fields\" : [ ] } } "},
		{"unknown fields skipped", `{"v":1,"future":{"v":[1,"x",{"}":"{"}]},"message":{"new":true,"text":"x"},"z":null}`},
		{"plain utf8", `{"message":{"text":"héllo 🔥 <b>&</b>"}}`},
		{"escapes in values", `{"message":{"text":"a\nb\u00e9\"\\"}}`},
		{"empty", `{}`},
		{"bad utf8 value", "{\"message\":{\"text\":\"a\xffb\"}}"},
		{"case-folded key", `{"V":1}`},
		{"kelvin key", "{\"\u212a\":1}"},
		{"escaped key", `{"\u0076":1}`},
		{"repeated key", `{"v":1,"v":2}`},
		{"repeated message", `{"message":{"title":"a"},"message":{"text":"b"}}`},
		{"null string", `{"id":null}`},
		{"null color", `{"message":{"color":null}}`},
		{"float version", `{"v":1.0}`},
		{"exponent", `{"v":1e0}`},
		{"huge", `{"v":123456789012345678901234567890}`},
		{"string version", `{"v":"1"}`},
		{"bad time", `{"created_at":"yesterday"}`},
		{"time not string", `{"created_at":5}`},
		{"field not object", `{"message":{"fields":[1]}}`},
		{"inline string", `{"message":{"fields":[{"inline":"yes"}]}}`},
		{"array", `[]`},
		{"null", `null`},
		{"invalid", `{"v":1`},
		{"trailing", `{"v":1}{}`},
		{"leading zero", `{"x":01}`},
		{"trailing comma", `{"v":1,}`},
		{"trailing comma in array", `{"x":[1,]}`},
		{"leading comma in array", `{"x":[,1]}`},
		{"empty member", `{,}`},
		{"no colon", `{"x" 1}`},
		{"bad literal", `{"x":tru}`},
		{"bad number", `{"x":-}`},
		{"bad fraction", `{"x":1.}`},
		{"bad exponent", `{"x":1e}`},
		{"bad escape", `{"x":"\x"}`},
		{"short unicode escape", `{"x":"\u12"}`},
		{"control character", "{\"x\":\"a\x01\"}"},
		{"unterminated string", `{"x":"abc`},
		{"deep", `{"x":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`},
		{"nested unknown", `{"x":{"a":[1,-2.5e+3,true,false,null,"s",{"b":{}}]},"v":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecode(t, []byte(tt.in))
		})
	}
}

func FuzzDecodeJobMatchesEncodingJSON(f *testing.F) {
	var full Job
	fill(reflect.ValueOf(&full).Elem(), "job")
	seed, _ := json.Marshal(&full)
	f.Add(seed)
	f.Add([]byte(`{"v":1,"id":"a","channel":"discord","created_at":"2026-01-02T03:04:05.5+01:00","credentials":{"webhook":"w"},"message":{"title":"t","color":-5,"fields":[{"name":"n","value":"v","inline":true}]}}`))
	f.Add([]byte(`{"v":1,"x":[{"y":"}"}],"message":{"fields":[],"timestamp":"2026-01-02T03:04:05Z"}}`))
	f.Add([]byte(`{"Message":{"TEXT":"a"}}`))
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode(t, data) })
}

func FuzzEncodeJobMatchesEncodingJSON(f *testing.F) {
	f.Add("id-1", "discord", "title <b>", "text\n\"q\"", "icon", 0xFF6B6B, true, int64(0))
	f.Add("", "", "\xff\u2028", "\x00\x1f", "", -1, false, int64(-62135596800))
	f.Fuzz(func(t *testing.T, id, channel, title, text, icon string, color int, inline bool, unix int64) {
		ts := time.Unix(unix, int64(color)).UTC()
		checkEncode(t, &Job{
			Version: color, ID: id, Channel: Channel(channel), CreatedAt: ts, Source: icon,
			Credentials: Credentials{Webhook: text, BotToken: title, ChatID: id},
			Message: Message{
				Title: title, Text: text, URL: id, Color: &color, Footer: icon, Username: channel, Timestamp: &ts,
				Fields: []Field{{Name: title, Value: text, Inline: inline, Icon: icon}, {Name: icon}},
			},
		})
	})
}
