package herald_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
)

func completed(j *herald.Job) *herald.Job {
	j.Version = herald.JobVersion
	j.ID = "01hzy3k9"
	j.CreatedAt = time.Date(2026, 3, 4, 5, 6, 7, 890, time.UTC)
	return j
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	jobs := map[string]*herald.Job{
		"discord full": completed(discordJob()),
		"telegram minimal": {
			Version: herald.JobVersion, Channel: herald.ChannelTelegram,
			Credentials: herald.Credentials{BotToken: "c2VhbGVk", ChatID: "c2VhbGVkMg=="},
			Message:     herald.Message{Text: "hi"},
		},
	}
	for name, job := range jobs {
		t.Run(name, func(t *testing.T) {
			data, err := herald.EncodeJob(job)
			if err != nil {
				t.Fatal(err)
			}
			got, err := herald.DecodeJob(data)
			if err != nil {
				t.Fatalf("DecodeJob(%s): %v", data, err)
			}
			if !reflect.DeepEqual(got, *job) {
				t.Errorf("round trip differs:\n got %+v\nwant %+v", got, *job)
			}
		})
	}
}

func TestEncodeWireFormat(t *testing.T) {
	job := &herald.Job{
		Version: 1, ID: "abc", Channel: herald.ChannelTelegram,
		CreatedAt:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Credentials: herald.Credentials{BotToken: "B", ChatID: "C"},
		Message:     herald.Message{Text: "<b>hi</b> & bye"},
	}
	data, err := herald.EncodeJob(job)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"id":"abc","channel":"telegram","created_at":"2026-01-02T03:04:05Z","credentials":{"bot_token":"B","chat_id":"C"},"message":{"text":"<b>hi</b> & bye"}}`
	if string(data) != want {
		t.Errorf("wire format\n got %s\nwant %s", data, want)
	}
}

func TestDecode(t *testing.T) {
	const valid = `{"v":1,"id":"j1","channel":"discord","credentials":{"webhook":"` + sealedWebhook + `"},"message":{"text":"hello"}}`
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" means success
	}{
		{"valid", valid, ""},
		{"unknown fields ignored", `{"v":1,"channel":"discord","future":{"x":1},"credentials":{"webhook":"w"},"message":{"text":"t","new":true}}`, ""},
		{"no id", `{"v":1,"channel":"discord","credentials":{"webhook":"w"},"message":{"title":"t"}}`, ""},
		{"missing version", `{"channel":"discord","credentials":{"webhook":"w"},"message":{"text":"t"}}`, "unsupported version 0"},
		{"newer version", `{"v":2,"channel":"discord","credentials":{"webhook":"w"},"message":{"text":"t"}}`, "unsupported version 2"},
		{"newer version, new shape", `{"v":3,"channel":{"kind":"discord"},"credentials":["` + sealedWebhook + `"]}`, "unsupported version 3"},
		{"version as string", `{"v":"1","channel":"discord","credentials":{"webhook":"w"},"message":{"text":"t"}}`, "field v"},
		{"unknown channel", `{"v":1,"channel":"sms","credentials":{"webhook":"w"},"message":{"text":"t"}}`, "unknown channel"},
		{"no webhook", `{"v":1,"channel":"discord","message":{"text":"t"}}`, "webhook"},
		{"malformed", `{"v":1,"channel":"discord","credentials":{"webhook":"` + sealedWebhook, "malformed JSON"},
		{"trailing garbage", valid + `{}`, "malformed JSON"},
		{"empty", ``, "malformed JSON"},
		{"null", `null`, "unsupported version 0"},
		{"array", `[]`, "want herald.Job"},
		{"bad time", `{"v":1,"channel":"discord","created_at":"` + sealedWebhook + `","credentials":{"webhook":"w"},"message":{"text":"t"}}`, "malformed JSON"},
		{"credential wrong type", `{"v":1,"channel":"discord","credentials":{"webhook":["` + sealedWebhook + `"]},"message":{"text":"t"}}`, "credentials.webhook"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := herald.DecodeJob([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("DecodeJob = %v", err)
				}
				if job.Version != herald.JobVersion {
					t.Errorf("version %d", job.Version)
				}
				return
			}
			if !errors.Is(err, herald.ErrInvalidJob) {
				t.Fatalf("DecodeJob = %v, want ErrInvalidJob", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("DecodeJob = %q, want it to mention %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), sealedWebhook) {
				t.Errorf("error quotes credential material: %v", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	seed, _ := herald.EncodeJob(completed(discordJob()))
	f.Add(seed)
	f.Add([]byte(`{"v":1,"channel":"telegram","credentials":{"bot_token":"a","chat_id":"b"},"message":{"text":"x"}}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"message":{"color":16777216}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"v":1,"channel":"discord","created_at":"2026-01-02T03:04:05+01:00","credentials":{"webhook":"w"},"message":{"title":"t","fields":[{"name":"a","value":"b"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		job, err := herald.DecodeJob(data)
		if err != nil {
			if !errors.Is(err, herald.ErrInvalidJob) {
				t.Fatalf("error does not wrap ErrInvalidJob: %v", err)
			}
			return
		}
		if err := job.Validate(); err != nil {
			t.Fatalf("decoded job fails validation: %v", err)
		}
		// What decodes must survive a round trip unchanged.
		again, err := herald.EncodeJob(&job)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		job2, err := herald.DecodeJob(again)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", again, err)
		}
		again2, _ := herald.EncodeJob(&job2)
		if string(again) != string(again2) {
			t.Fatalf("encoding not stable:\n%s\n%s", again, again2)
		}
	})
}

const sealedWebhook = "q2xvc2VkLXdlYmhvb2stbm90LXJlYWxseS1hLXdlYmhvb2stdXJsLWJ1dC1iYXNlNjQ="

func discordJob() *herald.Job {
	color := 0x3366ff
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return &herald.Job{
		Channel:     herald.ChannelDiscord,
		Source:      "test",
		Credentials: herald.Credentials{Webhook: sealedWebhook},
		Message: herald.Message{
			Title:     "Deploy finished",
			Text:      "api v1.2.3 is live <b>&</b> \"quoted\" – ünïcode",
			URL:       "https://example.com/deploys/42",
			Color:     &color,
			Fields:    []herald.Field{{Name: "env", Value: "prod", Inline: true, Icon: "🚀"}, {Name: "took", Value: "42s"}},
			Footer:    "herald",
			Username:  "Deploy bot",
			Timestamp: &ts,
		},
	}
}

func BenchmarkDecodeJob(b *testing.B) {
	data, err := herald.EncodeJob(completed(discordJob()))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := herald.DecodeJob(data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeErrorHidesNumbers: a number where a string belongs is named by
// its field and kind, never by its value (a chat id given in clear).
func TestDecodeErrorHidesNumbers(t *testing.T) {
	_, err := herald.DecodeJob([]byte(`{"v":1,"channel":"telegram","credentials":{"bot_token":"a","chat_id":-1009876543210},"message":{"text":"t"}}`))
	if !errors.Is(err, herald.ErrInvalidJob) || !strings.Contains(err.Error(), "credentials.chat_id") {
		t.Fatalf("DecodeJob = %v, want an invalid job naming credentials.chat_id", err)
	}
	if strings.Contains(err.Error(), "9876543210") {
		t.Errorf("error quotes the number: %v", err)
	}
}
