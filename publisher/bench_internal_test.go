package publisher

import (
	"testing"
	"time"

	"github.com/heraldrelay/herald"
)

// BenchmarkEncodeJob measures the encoding Publish does (pooled buffer, no
// copy).
func BenchmarkEncodeJob(b *testing.B) {
	color := 0x3366ff
	job := &herald.Job{
		Version: herald.JobVersion, ID: herald.NewID(), Channel: herald.ChannelDiscord,
		CreatedAt:   time.Now().UTC(),
		Source:      "bench",
		Credentials: herald.Credentials{Webhook: "q2xvc2VkLXdlYmhvb2stbm90LXJlYWxseS1hLXdlYmhvb2stdXJsLWJ1dC1iYXNlNjQ="},
		Message: herald.Message{
			Title: "Deploy finished", Text: "api v1.2.3 is live", Color: &color,
			Fields: []herald.Field{{Name: "env", Value: "prod", Inline: true}, {Name: "took", Value: "42s"}},
		},
	}
	b.ReportAllocs()
	for b.Loop() {
		e := getEncoder()
		data, err := e.encode(job)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		putEncoder(e)
	}
}
