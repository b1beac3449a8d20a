package herald_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/nats-io/nats.go/jetstream"
)

// codecs are the job codecs the benchmarks compare: Herald's (go-json-
// experiment/json with encoding/json's semantics) and encoding/json itself.
// docs/performance.md ("The job codec") has the figures, and those of the
// hand-written codec this one replaced.
var codecs = []struct {
	name   string
	encode func(*herald.Job) ([]byte, error)
	decode func([]byte) (herald.Job, error)
}{
	{"herald", herald.EncodeJob, herald.DecodeJob},
	{"encoding-json", func(j *herald.Job) ([]byte, error) { return json.Marshal(j) }, func(data []byte) (herald.Job, error) {
		var j herald.Job
		if err := json.Unmarshal(data, &j); err != nil {
			return j, err
		}
		return j, j.Validate()
	}},
}

// benchJobs are a realistic Discord and Telegram job as Herald's ingest
// stores them.
func benchJobs() map[string]*herald.Job {
	color := 0x3366ff
	at := time.Date(2026, 12, 4, 3, 0, 0, 123456789, time.UTC)
	return map[string]*herald.Job{
		"discord": {
			Version: herald.JobVersion, ID: herald.NewID(), Channel: herald.ChannelDiscord, CreatedAt: at, Source: "bench",
			Credentials: herald.Credentials{Webhook: "q2xvc2VkLXdlYmhvb2stbm90LXJlYWxseS1hLXdlYmhvb2stdXJsLWJ1dC1iYXNlNjQ6cGFkZGluZy1wYWRkaW5nLXBhZGRpbmc="},
			Message: herald.Message{
				Title: "Deploy finished", Text: "api v1.2.3 is live on all regions, 0 errors", Color: &color, Username: "octocat",
				Fields: []herald.Field{{Name: "env", Value: "prod", Inline: true}, {Name: "took", Value: "42s"}},
			},
		},
		"telegram": {
			Version: herald.JobVersion, ID: herald.NewID(), Channel: herald.ChannelTelegram, CreatedAt: at, Source: "bench",
			Credentials: herald.Credentials{BotToken: "c2VhbGVkLWJvdC10b2tlbi1ub3QtcmVhbGx5LWEtdG9rZW4tYnV0LWJhc2U2NA==", ChatID: "c2VhbGVkLWNoYXQtaWQtYmFzZTY0LXBhZGRpbmc="},
			Message:     herald.Message{Title: "Streak", Text: "You have a 42-day streak. Commit today!"},
		},
	}
}

// BenchmarkCodec is the codec alone: encode, decode (with validation, as the
// consumer does), and the round trip a job makes from ingest to worker.
func BenchmarkCodec(b *testing.B) {
	for name, job := range benchJobs() {
		data, _ := herald.EncodeJob(job)
		for _, c := range codecs {
			b.Run(name+"/encode/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.encode(job); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/decode/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.decode(data); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/roundtrip/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					d, err := c.encode(job)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := c.decode(d); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkJobPath is the whole path a job takes through JetStream with each
// codec: encode, publish (acknowledged, file store), fetch from a pull
// consumer, decode, ack. It shows what share of a job's cost the codec is.
func BenchmarkJobPath(b *testing.B) {
	job := benchJobs()["discord"]
	for _, c := range codecs {
		b.Run(c.name, func(b *testing.B) {
			_, _, js := testkit.JetStream(b)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if _, err := queue.EnsureJobsStream(ctx, js, queue.StreamConfig{}); err != nil {
				b.Fatal(err)
			}
			cons, err := js.CreateOrUpdateConsumer(ctx, herald.JobsStream, jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				b.Fatal(err)
			}
			it, err := cons.Messages(jetstream.PullMaxMessages(64))
			if err != nil {
				b.Fatal(err)
			}
			defer it.Stop()
			subject := herald.JobSubject(job.Channel)
			b.ReportAllocs()
			for b.Loop() {
				data, err := c.encode(job)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := js.Publish(ctx, subject, data); err != nil {
					b.Fatal(err)
				}
				m, err := it.Next()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.decode(m.Data()); err != nil {
					b.Fatal(err)
				}
				if err := m.Ack(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
