package faulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/idempotency"
	"github.com/heraldrelay/herald/internal/ingest"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/publisher"
)

const apiSecret = "fault-test-api-secret"

// TestIngestUnderLoadWhileServerRestarts restarts the embedded server (same
// port, same store) while clients POST /v1/notifications continuously, and
// checks that every answer is 202 or 503 with Retry-After, that the outage
// produced 503s, and that every 202'd job is delivered afterwards.
func TestIngestUnderLoadWhileServerRestarts(t *testing.T) {
	const (
		clients = 4
		outage  = time.Second
	)
	start := time.Now()
	ns := testkit.NewServer(t)

	ctx := testkit.Context(t, 2*time.Minute)
	log := newLogger(t)
	keys := testkit.Keyring(t)
	fd, discord := newDiscord(t)
	telegram, err := channels.NewTelegram(channels.TelegramConfig{APIBase: "http://127.0.0.1:1"}, channels.NewHTTPClient(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	// Wired like cmd/herald's App.Open: one connection for ingest and pool.
	nc, js, statuses := connect(t, ctx, ns.URL(), log)
	keysKV, err := idempotency.EnsureBucket(ctx, js, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ingest.New(ingest.Config{APISecrets: []string{apiSecret}, StreakyWait: 0, Version: "faulttest"}, ingest.Deps{
		Publisher: publisher.New(js),
		Status:    statuses,
		Keys:      keys,
		Checkers: map[herald.Channel]ingest.TargetChecker{
			herald.ChannelDiscord:  discord,
			herald.ChannelTelegram: telegram,
		},
		Ready:       func(ctx context.Context) error { return queue.Ready(ctx, nc, js) },
		Logger:      log,
		Idempotency: idempotency.New(keysKV),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	relay.StartPool(t, js, consumer.Config{
		Workers:      8,
		AckWait:      3 * time.Second,
		SendTimeout:  time.Second,
		MinBackoff:   100 * time.Millisecond,
		MaxBackoff:   500 * time.Millisecond,
		MaxAttempts:  1000,
		DrainTimeout: 5 * time.Second,
	}, consumer.Deps{
		JS:      js,
		Keys:    keys,
		Senders: map[herald.Channel]consumer.Sender{herald.ChannelDiscord: discord},
		Status:  statuses,
		Logger:  log,
	})

	sealed, err := keys.Seal(fd.WebhookURL(webhookID, webhookToken))
	if err != nil {
		t.Fatal(err)
	}
	var (
		seq       atomic.Int64
		mu        sync.Mutex
		accepted  = make(map[string]string) // job id → key
		n503      int
		n503Down  int // 503s to requests in flight while the server was down
		slow503   time.Duration
		bad       []string
		downAt    time.Time // guarded by mu
		upAt      time.Time // guarded by mu; zero until the server is back
		stop      = make(chan struct{})
		clientsWG sync.WaitGroup
	)
	client := &http.Client{Timeout: 30 * time.Second}
	post := func() {
		n := int(seq.Add(1))
		body, _ := json.Marshal(ingest.NotificationRequest{
			Channel:     herald.ChannelDiscord,
			Credentials: herald.Credentials{Webhook: sealed},
			Message:     herald.Message{Title: "Fault test", Text: "job " + marker("r", n)},
		})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/v1/notifications", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+apiSecret)
		began := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("request %d: %v", n, err))
			mu.Unlock()
			return
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ended := time.Now()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case resp.StatusCode == http.StatusAccepted:
			var a ingest.Accepted
			if err := json.Unmarshal(data, &a); err != nil || a.ID == "" {
				bad = append(bad, fmt.Sprintf("request %d: 202 with body %q", n, data))
				return
			}
			accepted[a.ID] = key("r", n)
		case resp.StatusCode == http.StatusServiceUnavailable:
			if resp.Header.Get("Retry-After") == "" {
				bad = append(bad, fmt.Sprintf("request %d: 503 without Retry-After", n))
			}
			n503++
			slow503 = max(slow503, ended.Sub(began))
			// In flight while the server was down: begun before it came
			// back, ended after it went down.
			if !downAt.IsZero() && ended.After(downAt) && (upAt.IsZero() || began.Before(upAt)) {
				n503Down++
			}
		default:
			bad = append(bad, fmt.Sprintf("request %d: status %d body %q", n, resp.StatusCode, data))
		}
	}
	for range clients {
		clientsWG.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				post()
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	countAccepted := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}

	testkit.WaitFor(t, 20*time.Second, "some jobs accepted before the outage", func() bool { return countAccepted() >= 100 })
	before := countAccepted()
	mu.Lock()
	downAt = time.Now()
	mu.Unlock()
	down := downAt
	ns.Shutdown()
	time.Sleep(outage)
	ns.Start() // same port, same store dir
	mu.Lock()
	upAt = time.Now()
	mu.Unlock()
	testkit.WaitFor(t, 20*time.Second, "the connection to come back", nc.IsConnected)
	back := time.Since(down)
	afterBack := countAccepted()
	testkit.WaitFor(t, 20*time.Second, "jobs accepted after the restart", func() bool { return countAccepted() >= afterBack+100 })
	close(stop)
	clientsWG.Wait()

	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	if n503Down == 0 {
		t.Errorf("no 503 to a request in flight while the server was down (%d 503s in all)", n503)
	}
	var got map[string]int
	missing := 0
	testkit.WaitFor(t, 30*time.Second, "every 202'd job to be delivered", func() bool {
		got = deliveries(fd, webhookID)
		missing = 0
		for _, m := range accepted {
			if got[m] == 0 {
				missing++
			}
		}
		return missing == 0
	})
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	t.Logf("requests %d: 202 %d (%d before the outage), 503 %d (%d in flight during the outage), other %d; "+
		"slowest 503 %s, outage until reconnect %s, delivered %d distinct, duplicates %d, total %s",
		seq.Load(), len(accepted), before, n503, n503Down, len(bad), slow503.Round(time.Millisecond), back.Round(time.Millisecond),
		len(got), dups, time.Since(start).Round(time.Millisecond))
}
