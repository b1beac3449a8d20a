package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldrelay/herald"
)

// The baseline's stream: a copy of the jobs stream's configuration under
// another name and subject, so that no worker consumes it.
const (
	BaselineStream  = "HERALD_BENCH"
	baselineSubject = "herald_bench.jobs"
)

// baselineHandler is the least an HTTP ingest can do: read the body, decode
// it as JSON, publish it to JetStream and wait for the acknowledgement.
// Herald's ingest does all that plus authentication, validation, opening the
// credentials and a status record; the ratio of the two throughputs is what
// those cost.
type baselineHandler struct {
	js jetstream.JetStream
}

// baselineRequest has the fields of both request formats the harness sends.
type baselineRequest struct {
	Type             string `json:"type"`
	Channel          string `json:"channel"`
	EncryptedWebhook string `json:"encrypted_webhook"`
	Credentials      struct {
		Webhook string `json:"webhook"`
	} `json:"credentials"`
	Message struct {
		Title    string `json:"title"`
		Text     string `json:"text"`
		Username string `json:"username"`
		Streak   int    `json:"current_streak"`
		Message  string `json:"message"`
	} `json:"message"`
}

func (h baselineHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFakeBody))
	if err != nil {
		return
	}
	var req baselineRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "malformed JSON", http.StatusBadRequest)
		return
	}
	id := herald.NewID()
	msg := &nats.Msg{Subject: baselineSubject, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}, Data: body}
	if _, err := h.js.PublishMsg(r.Context(), msg); err != nil {
		http.Error(w, "not stored", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"id":"`+id+`","status":"queued"}`)
}

// ensureBaselineStream creates BaselineStream with the jobs stream's
// configuration (storage, replicas, duplicate window, retention), replacing
// a leftover of an earlier run. Without a jobs stream it uses file storage.
func ensureBaselineStream(ctx context.Context, js jetstream.JetStream) error {
	cfg := jetstream.StreamConfig{Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy}
	if s, err := js.Stream(ctx, herald.JobsStream); err == nil {
		cfg = s.CachedInfo().Config
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("read stream %s: %w", herald.JobsStream, err)
	}
	cfg.Name = BaselineStream
	cfg.Description = "herald bench baseline (deleted after the run)"
	cfg.Subjects = []string{baselineSubject}
	if err := js.DeleteStream(ctx, BaselineStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete leftover stream %s: %w", BaselineStream, err)
	}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		return fmt.Errorf("create stream %s: %w", BaselineStream, err)
	}
	return nil
}

// BaselineReport is the baseline run's outcome.
type BaselineReport struct {
	Sent              int            `json:"sent"`
	Accepted          int            `json:"accepted"`
	Refused           map[string]int `json:"refused,omitempty"`
	Seconds           float64        `json:"seconds"`
	AcceptedPerSecond float64        `json:"accepted_per_s"`
	HTTPLatency       Latency        `json:"http_latency"`
	// Ratio is Herald's accepted/s divided by the baseline's; absent when
	// Herald's run was paced by a rate, which bounds its accepted/s.
	Ratio float64 `json:"ratio,omitempty"`

	// answers holds each answered request's latency, to merge rounds.
	answers []time.Duration
}

// runBaseline serves baselineHandler on loopback, publishing to natsURL, and
// drives n jobs at it as fast as concurrency clients can, with the bodies of
// via (api bodies for nats). It deletes its stream afterwards.
func runBaseline(ctx context.Context, natsURL string, via Via, j jobs, n, concurrency int) (*BaselineReport, error) {
	b, err := startBaseline(ctx, natsURL, via, j, concurrency)
	if err != nil {
		return nil, err
	}
	defer b.close(ctx)
	return b.run(ctx, n), nil
}

// baseline is baselineHandler served on loopback with its stream and the
// clients that drive it, ready for one or more runs.
type baseline struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	srv    *http.Server
	served chan struct{}
	client *http.Client
	sub    *httpSubmitter
	// concurrency is the number of clients that send the jobs.
	concurrency int
}

// startBaseline connects to natsURL, creates BaselineStream and serves
// baselineHandler on a free loopback port. The jobs will have the bodies of
// via (api bodies for nats) and be sent by concurrency clients.
func startBaseline(ctx context.Context, natsURL string, via Via, j jobs, concurrency int) (*baseline, error) {
	nc, err := nats.Connect(natsURL, nats.Name("herald-bench-baseline"))
	if err != nil {
		return nil, fmt.Errorf("baseline: connect to NATS: %w", err)
	}
	b := &baseline{nc: nc, concurrency: concurrency}
	fail := func(err error) (*baseline, error) {
		nc.Close()
		return nil, fmt.Errorf("baseline: %w", err)
	}
	if b.js, err = jetstream.New(nc); err != nil {
		return fail(err)
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ensureBaselineStream(setup, b.js); err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = b.js.DeleteStream(setup, BaselineStream)
		return fail(err)
	}
	b.srv = &http.Server{Handler: baselineHandler{js: b.js}, ReadHeaderTimeout: 10 * time.Second}
	b.served = make(chan struct{})
	go func() {
		defer close(b.served)
		_ = b.srv.Serve(ln)
	}()
	if via == ViaNATS {
		via = ViaAPI
	}
	b.client = newHTTPClient(concurrency)
	b.sub = &httpSubmitter{client: b.client, endpoint: "http://" + ln.Addr().String() + "/", via: via, jobs: j}
	return b, nil
}

// run drives n jobs at the handler as fast as the clients can.
func (b *baseline) run(ctx context.Context, n int) *BaselineReport {
	tr := newTracker(time.Now())
	drive(ctx, shape{concurrency: b.concurrency, jobs: n}, tr, b.sub)
	a := tr.tally()
	r := &BaselineReport{Sent: a.sent, Accepted: a.accepted, HTTPLatency: Summarize(a.answer)}
	if len(a.refused) > 0 {
		r.Refused = a.refused
	}
	r.Seconds = a.lastAnswer.Seconds()
	if r.Seconds > 0 {
		r.AcceptedPerSecond = float64(a.accepted) / r.Seconds
	}
	r.answers = a.answer
	return r
}

// purge empties BaselineStream, so that every run starts with an empty one.
func (b *baseline) purge(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, BaselineStream)
	if err == nil {
		err = s.Purge(ctx)
	}
	if err != nil {
		return fmt.Errorf("baseline: purge stream %s: %w", BaselineStream, err)
	}
	return nil
}

// close stops the handler, deletes BaselineStream and disconnects.
func (b *baseline) close(ctx context.Context) {
	_ = b.srv.Close()
	<-b.served
	b.client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = b.js.DeleteStream(ctx, BaselineStream)
	b.nc.Close()
}
