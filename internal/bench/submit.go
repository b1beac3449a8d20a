package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/publisher"
)

// submitTimeout bounds one submission: above the Streaky wait's 14 s ceiling.
const submitTimeout = 30 * time.Second

// maxAnswer bounds what is read of an answer; the rest is drained.
const maxAnswer = 64 << 10

// submitter hands job seq over and says whether it was accepted, and if not,
// how it was answered (a statusLabel, "200 success:false", or labelError when
// there was no answer). It is safe for concurrent use.
type submitter interface {
	submit(ctx context.Context, seq int) (accepted bool, label string)
}

// jobs builds the bodies of a run's jobs: job seq goes to webhook
// seq % len(sealed) and carries marker + seq as its text.
type jobs struct {
	marker string
	sealed []string // sealed webhook URLs
}

const benchTitle = "Herald bench"

// text is job seq's message text.
func (j jobs) text(seq int) string { return j.marker + strconv.Itoa(seq) }

func (j jobs) webhook(seq int) string { return j.sealed[seq%len(j.sealed)] }

// body appends job seq's request body for via (streaky or api) to b.
func (j jobs) body(b []byte, via Via, seq int) []byte {
	if via == ViaStreaky {
		b = append(b, `{"type":"discord","encrypted_webhook":`...)
		b = strconv.AppendQuote(b, j.webhook(seq))
		b = append(b, `,"message":{"username":"herald-bench","current_streak":7,"message":"`...)
	} else {
		b = append(b, `{"channel":"discord","credentials":{"webhook":`...)
		b = strconv.AppendQuote(b, j.webhook(seq))
		b = append(b, `},"message":{"title":"`+benchTitle+`","text":"`...)
	}
	b = append(b, j.marker...)
	b = strconv.AppendInt(b, int64(seq), 10)
	return append(b, `"}}`...)
}

// job is job seq as a herald.Job, for publishing straight to NATS.
func (j jobs) job(seq int) *herald.Job {
	return &herald.Job{
		Channel:     herald.ChannelDiscord,
		Source:      "bench",
		Credentials: herald.Credentials{Webhook: j.webhook(seq)},
		Message:     herald.Message{Title: benchTitle, Text: j.text(seq)},
	}
}

// newHTTPClient returns a client keeping up to conns connections to one host
// alive, so the load reuses them rather than measuring TCP handshakes.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: submitTimeout,
		Transport: &http.Transport{
			Proxy:               nil, // loopback benchmarks never go through a proxy
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// httpSubmitter posts jobs to an endpoint: Herald's Streaky endpoint or API,
// or the baseline.
type httpSubmitter struct {
	client   *http.Client
	endpoint string
	secret   string
	via      Via // body format: streaky or api
	jobs     jobs
	// streakyAnswers reads answers as /send-notification gives them; else
	// any 2xx is an acceptance.
	streakyAnswers bool
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func (s *httpSubmitter) submit(ctx context.Context, seq int) (bool, string) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	*bp = s.jobs.body((*bp)[:0], s.via, seq)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(*bp))
	if err != nil {
		return false, labelError
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Secret", s.secret)
	resp, err := s.client.Do(req)
	if err != nil {
		return false, labelError
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	_, _ = io.Copy(io.Discard, resp.Body) // drain, so the connection is reused
	resp.Body.Close()
	if s.streakyAnswers {
		return streakyAccepted(resp.StatusCode, answer)
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return true, ""
	}
	return false, statusLabel(resp.StatusCode)
}

// streakyAccepted reads a /send-notification answer: only a 2xx (200
// delivered, 202 stored) with "success": true means the job was taken.
func streakyAccepted(status int, answer []byte) (bool, string) {
	if status != http.StatusOK && status != http.StatusAccepted {
		return false, statusLabel(status)
	}
	var reply struct {
		Success bool `json:"success"`
	}
	if err := json.Unmarshal(answer, &reply); err != nil {
		return false, statusLabel(status) + " not JSON"
	}
	if !reply.Success {
		return false, statusLabel(status) + " success:false"
	}
	return true, ""
}

// natsSubmitter publishes jobs to the jobs stream, as a Go backend would.
type natsSubmitter struct {
	pub  *publisher.Publisher
	jobs jobs
}

func (s *natsSubmitter) submit(ctx context.Context, seq int) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, submitTimeout)
	defer cancel()
	if _, err := s.pub.Publish(ctx, s.jobs.job(seq)); err != nil {
		return false, labelError
	}
	return true, ""
}
