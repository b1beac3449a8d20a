package publisher

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
)

// referenceJSON is what encoding/json makes of job, as encode's fallback
// writes it.
func referenceJSON(t *testing.T, job *herald.Job) []byte {
	t.Helper()
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	data, err := e.encodeJSON(job)
	if err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return bytes.Clone(data)
}

func checkAppendJob(t *testing.T, job *herald.Job) {
	t.Helper()
	got, ok := appendJob(nil, job)
	if !ok {
		t.Fatalf("appendJob refused %+v", job)
	}
	if want := referenceJSON(t, job); !bytes.Equal(got, want) {
		t.Fatalf("appendJob differs from encoding/json:\n got %s\nwant %s", got, want)
	}
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

// TestAppendJobMatchesEncodingJSON holds appendJob to encoding/json's output
// for a job with every field set, so a field added to herald.Job, Message,
// Credentials or Field but not to appendJob fails here.
func TestAppendJobMatchesEncodingJSON(t *testing.T) {
	var full herald.Job
	fill(reflect.ValueOf(&full).Elem(), "job")
	checkAppendJob(t, &full)

	c := 0
	ts := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for name, job := range map[string]*herald.Job{
		"zero":          {},
		"minimal":       {Version: 1, Channel: herald.ChannelDiscord, Credentials: herald.Credentials{Webhook: "w"}, Message: herald.Message{Text: "t"}},
		"zero color":    {Message: herald.Message{Color: &c, Fields: []herald.Field{}}},
		"zero ts":       {Message: herald.Message{Timestamp: &time.Time{}}},
		"empty fields":  {Message: herald.Message{Fields: []herald.Field{{}}}},
		"negative":      {Version: -3, Message: herald.Message{Color: func() *int { n := -1 << 40; return &n }()}},
		"controls":      {Message: herald.Message{Text: "\x00\x01\x07\b\f\n\r\t\x1f\x7f \"\\ </script> &amp;"}},
		"bad utf8":      {Message: herald.Message{Title: "a\xffb\xc3", Text: "\xed\xa0\x80 surrogate", Footer: "\u2028\u2029\u2027\u202a"}},
		"local created": {CreatedAt: ts.In(time.FixedZone("", -7*3600)), Message: herald.Message{Timestamp: &ts}},
		"nanos":         {CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 1, time.UTC)},
	} {
		t.Run(name, func(t *testing.T) { checkAppendJob(t, job) })
	}
}

// A time encoding/json refuses is left to encoding/json, whose error encode
// then returns.
func TestAppendJobLeavesBadTimesToEncodingJSON(t *testing.T) {
	for name, job := range map[string]*herald.Job{
		"created_at": {CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"timestamp":  {Message: herald.Message{Timestamp: func() *time.Time { ts := time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC); return &ts }()}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, ok := appendJob(nil, job); ok {
				t.Error("appendJob accepted a time encoding/json refuses")
			}
			e := getEncoder()
			defer putEncoder(e)
			if _, err := e.encode(job); err == nil || !strings.Contains(err.Error(), "MarshalJSON") {
				t.Errorf("encode = %v, want encoding/json's error", err)
			}
		})
	}
}

func FuzzAppendJob(f *testing.F) {
	f.Add("id-1", "discord", "title <b>", "text\n\"q\"", "icon", 0xFF6B6B, true, int64(0))
	f.Add("", "", "\xff\u2028", "\x00\x1f", "", -1, false, int64(-62135596800))
	f.Fuzz(func(t *testing.T, id, channel, title, text, icon string, color int, inline bool, unix int64) {
		ts := time.Unix(unix, int64(color)).UTC()
		job := &herald.Job{
			Version: color, ID: id, Channel: herald.Channel(channel), CreatedAt: ts, Source: icon,
			Credentials: herald.Credentials{Webhook: text, BotToken: title, ChatID: id},
			Message: herald.Message{
				Title: title, Text: text, URL: id, Color: &color, Footer: icon, Username: channel, Timestamp: &ts,
				Fields: []herald.Field{{Name: title, Value: text, Inline: inline, Icon: icon}, {Name: icon}},
			},
		}
		got, ok := appendJob(nil, job)
		e := &encoder{}
		e.enc = json.NewEncoder(&e.buf)
		e.enc.SetEscapeHTML(false)
		want, err := e.encodeJSON(job)
		if ok != (err == nil) {
			t.Fatalf("appendJob ok %t, encoding/json error %v", ok, err)
		}
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("appendJob differs from encoding/json:\n got %s\nwant %s", got, want)
		}
	})
}
