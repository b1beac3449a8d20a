package herald_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
)

// codecs are the job codecs the benchmarks compare. Both write the same wire
// bytes (benchData checks it): Herald's (go-json-experiment/json with
// encoding/json's semantics) and encoding/json at its best (a pooled Encoder
// without HTML escaping, the result copied out as EncodeJob's is).
// docs/performance.md ("The job codec: hand-written or library") has the
// figures, with those of the hand-written codec this one replaced and the
// whole job path.
var codecs = []struct {
	name   string
	encode func(*herald.Job) ([]byte, error)
	decode func([]byte) (herald.Job, error)
}{
	{"herald", herald.EncodeJob, herald.DecodeJob},
	{"encoding-json", stdEncode, stdDecode},
}

type stdEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var stdEncoders = sync.Pool{New: func() any {
	e := &stdEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

func stdEncode(job *herald.Job) ([]byte, error) {
	e := stdEncoders.Get().(*stdEncoder)
	defer stdEncoders.Put(e)
	e.buf.Reset()
	if err := e.enc.Encode(job); err != nil {
		return nil, err
	}
	return bytes.Clone(bytes.TrimSuffix(e.buf.Bytes(), []byte("\n"))), nil
}

func stdDecode(data []byte) (herald.Job, error) {
	var job herald.Job
	if err := json.Unmarshal(data, &job); err != nil {
		return herald.Job{}, err
	}
	return job, job.Validate()
}

// sealed is a random base64 string as long as the Streaky sealing of n bytes
// (12-byte IV, ciphertext, 16-byte tag).
func sealed(n int) string {
	b := make([]byte, 12+n+16)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// benchJobs are n jobs of channel as the Streaky ingest builds them
// (internal/ingest streakyJob) and Publish completes them: a webhook URL of
// 121 characters, a bot token of 46 and a chat id of 14, sealed. Each has
// its own id, text and sealed credentials (a fresh IV per seal), as in
// production: go-json-experiment/json keeps a cache of the strings it
// decoded, so decoding one job again and again would flatter it.
func benchJobs(channel herald.Channel, n int) []*herald.Job {
	jobs := make([]*herald.Job, n)
	for i := range jobs {
		color := 16739947
		at := time.Date(2026, 12, 4, 3, 0, 0, 123456789, time.UTC).Add(time.Duration(i) * time.Millisecond)
		j := &herald.Job{
			Version: herald.JobVersion, ID: herald.NewID(), Channel: channel, CreatedAt: at, Source: "streaky",
			Message: herald.Message{
				Title: "⚠️ GitHub Streak Alert",
				Text:  fmt.Sprintf("You haven't committed today! Your %d-day streak ends in 3 hours.", i),
				Color: &color,
				Fields: []herald.Field{
					{Name: "GitHub Username", Value: fmt.Sprintf("octocat-%d", i), Inline: true, Icon: "👤"},
					{Name: "Current Streak", Value: fmt.Sprintf("%d days", i), Inline: true, Icon: "🔥"},
				},
				Footer: "Streaky", Username: "Streaky Bot", Timestamp: &at,
			},
		}
		if channel == herald.ChannelDiscord {
			j.Credentials.Webhook = sealed(121)
		} else {
			j.Credentials.BotToken, j.Credentials.ChatID = sealed(46), sealed(14)
		}
		jobs[i] = j
	}
	return jobs
}

// benchData encodes jobs with every codec, fails unless they agree byte for
// byte, and returns the encodings.
func benchData(b *testing.B, jobs []*herald.Job) [][]byte {
	b.Helper()
	data := make([][]byte, len(jobs))
	for i, job := range jobs {
		for _, c := range codecs {
			d, err := c.encode(job)
			if err != nil {
				b.Fatal(err)
			}
			if data[i] == nil {
				data[i] = d
			} else if !bytes.Equal(d, data[i]) {
				b.Fatalf("%s encodes differently:\n%s\n%s", c.name, d, data[i])
			}
		}
	}
	return data
}

// BenchmarkCodec is the codec alone, on the path a job takes from ingest to
// worker: encode (as Publish does), decode with validation (as the consumer
// does), and both, the round trip.
func BenchmarkCodec(b *testing.B) {
	const n = 4096 // distinct jobs, cycled through
	for _, channel := range []herald.Channel{herald.ChannelDiscord, herald.ChannelTelegram} {
		jobs := benchJobs(channel, n)
		data := benchData(b, jobs)
		for _, c := range codecs {
			b.Run(fmt.Sprintf("%s/encode/%s", channel, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if _, err := c.encode(jobs[i%n]); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/decode/%s", channel, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if _, err := c.decode(data[i%n]); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/roundtrip/%s", channel, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					d, err := c.encode(jobs[i%n])
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
