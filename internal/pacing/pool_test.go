package pacing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
)

// countingSender records which jobs a Sender delivered, and when.
type countingSender struct {
	consumer.Sender
	mu        sync.Mutex
	delivered map[string]int
	calls     int
	last      time.Time
}

func newCountingSender(s consumer.Sender) *countingSender {
	return &countingSender{Sender: s, delivered: map[string]int{}}
}

func (c *countingSender) Send(ctx context.Context, n herald.Notification) error {
	err := c.Sender.Send(ctx, n)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if err == nil {
		c.delivered[n.JobID]++
		c.last = time.Now()
	}
	return err
}

// stats returns the distinct jobs delivered, the duplicate deliveries, the
// sends made and the time of the last delivery.
func (c *countingSender) stats() (jobs, dups, calls int, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.delivered {
		jobs++
		dups += n - 1
	}
	return jobs, dups, c.calls, c.last
}

// TestDiscordPacingPool: a fake Discord with a 5 per 2 s bucket per webhook
// and a 50/s global limit; 100 jobs to 4 webhooks through a real Pool, the
// real Discord channel and the Pacer. All are delivered, in close to the
// ideal time, with at most a few 429s.
func TestDiscordPacingPool(t *testing.T) {
	t.Parallel()
	const (
		webhooks   = 4
		perWebhook = 25
		limit      = 5
		window     = 2 * time.Second
		jobs       = webhooks * perWebhook
	)
	e := relay.New(t)
	f := e.Discord()
	f.Limit(limit, window, 50)

	p, err := New(Config{}, e.Log, e.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		first    time.Time
	)
	observe := func(dest string, rl channels.RateLimit, status int) {
		mu.Lock()
		statuses[status]++
		if first.IsZero() {
			first = time.Now()
		}
		mu.Unlock()
		p.ObserveDiscord(dest, rl, status)
	}
	dc, err := channels.NewDiscord(channels.DiscordConfig{
		AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true, Observe: observe,
	}, channels.NewHTTPClient(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	send := newCountingSender(dc)

	tokens := make([]string, webhooks)
	for i := range webhooks {
		tokens[i] = fmt.Sprintf("WebhookSecretToken%d_abcdefXYZ", i)
	}
	for i := range jobs {
		w := i % webhooks
		e.Publish(e.DiscordJob(fmt.Sprintf("1122334455667788%02d", w), tokens[w], fmt.Sprintf("job %d", i)))
	}
	handedBack := countHandBacks()
	runPool(e, map[herald.Channel]consumer.Sender{herald.ChannelDiscord: send},
		handedBack.middleware, p.Middleware(func(n herald.Notification) string { return dc.Destination(n.Target) }))

	testkit.WaitFor(t, 40*time.Second, "every job delivered", func() bool {
		n, _, _, _ := send.stats()
		return n == jobs
	})
	delivered, dups, calls, last := send.stats()
	mu.Lock()
	elapsed := last.Sub(first)
	tooMany := statuses[http.StatusTooManyRequests]
	mu.Unlock()

	// Each webhook allows limit sends per window, and its first window opens
	// with the first send: the last of perWebhook sends can go no sooner than
	// (perWebhook/limit - 1) windows after the first, so the fastest possible
	// run (every slot used the moment it opens) delivers jobs/ideal per
	// second; in the long run the fake allows webhooks*limit/window.
	ideal := time.Duration((perWebhook+limit-1)/limit-1) * window
	steady := float64(webhooks*limit) / window.Seconds()
	t.Logf("pacing: %d jobs to %d webhooks (fake: %d per %s per webhook, 50/s global)", jobs, webhooks, limit, window)
	t.Logf("pacing: delivered %d in %s, ideal %s (%.2fx): %.2f delivered/s against %.2f/s for the ideal run and the fake's %.2f/s steady rate",
		delivered, elapsed.Round(time.Millisecond), ideal, elapsed.Seconds()/ideal.Seconds(),
		float64(delivered)/elapsed.Seconds(), float64(jobs)/ideal.Seconds(), steady)
	t.Logf("pacing: %d sends, %d 429s = %.1f 429s per 1,000 sends; %d duplicate deliveries; %d jobs handed back to JetStream to wait (%.2f per job); held or handed back: destination %.0f, global %.0f",
		calls, tooMany, 1000*float64(tooMany)/float64(calls), dups, handedBack.n.Load(), float64(handedBack.n.Load())/jobs,
		testutil.ToFloat64(e.Metrics.PacingWaits.WithLabelValues("discord", "destination")),
		testutil.ToFloat64(e.Metrics.PacingWaits.WithLabelValues("discord", "global")))

	if delivered != jobs {
		t.Errorf("delivered %d jobs, want %d", delivered, jobs)
	}
	if tooMany > 3 {
		t.Errorf("Discord answered 429 %d times, want at most 3", tooMany)
	}
	if max := ideal * 3 / 2; elapsed > max {
		t.Errorf("took %s, more than 1.5x the ideal %s", elapsed, ideal)
	}
	if dups != 0 {
		t.Errorf("%d duplicate deliveries", dups)
	}
	secrets := append([]string{testkit.Key[:crypto.KeySize]}, tokens...)
	testkit.AssertNoSecrets(t, "log", e.Logs.String(), secrets...)
	testkit.AssertNoSecrets(t, "metrics", gatherText(t, e.Registry), secrets...)
}

// handBacks counts the sends the Pacer handed back to JetStream.
type handBacks struct{ n atomic.Int64 }

func countHandBacks() *handBacks { return &handBacks{} }

func (h *handBacks) middleware(next consumer.Handler) consumer.Handler {
	return func(ctx context.Context, d *consumer.Delivery) error {
		err := next(ctx, d)
		if errors.Is(err, herald.ErrPaced) {
			h.n.Add(1)
		}
		return err
	}
}

// gatherText renders every metric of reg as text.
func gatherText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		b.WriteString(mf.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// TestTelegramPacingPool: a fake Telegram that answers 429 (retry_after 1)
// when a chat gets messages faster than its rate (with a burst of 2); 32 jobs to two private
// chats and a group through a real Pool, the real Telegram channel and the
// Pacer. All are delivered, in close to the ideal time, without 429s.
func TestTelegramPacingPool(t *testing.T) {
	t.Parallel()
	const (
		perChat  = 4.0 // private chats, per second
		perGroup = 2.0 // groups, per second
		botToken = "123456789:BotSecretTokenAAAbbbCCCddd"
	)
	chats := []struct {
		id   string
		jobs int
		rate float64
	}{
		{"734529817", 12, perChat},
		{"734529818", 12, perChat},
		{"-1009876543210", 8, perGroup},
	}
	e := relay.New(t)
	f := e.Telegram()
	var (
		mu       sync.Mutex
		limiters = map[string]*rate.Limiter{}
		limited  int
		first    time.Time
	)
	f.Script(func(r fake.TelegramRequest, _ int) fake.Response {
		mu.Lock()
		defer mu.Unlock()
		if first.IsZero() {
			first = r.At
		}
		// Like Telegram, refuse messages to a chat beyond its rate. "About N
		// per second" allows a little burst, which also absorbs network
		// jitter: requests paced at the right interval still arrive up to
		// 100 ms apart from it (the first ones, on new connections, under
		// -race). Sending at twice the rate would spend the burst at once.
		lim := limiters[r.ChatID]
		if lim == nil {
			every := perChat
			if strings.HasPrefix(r.ChatID, "-") {
				every = perGroup
			}
			lim = rate.NewLimiter(rate.Limit(every), 2)
			limiters[r.ChatID] = lim
		}
		if !lim.AllowN(r.At, 1) {
			limited++
			return fake.RespondTelegram429(1)
		}
		return fake.Response{}
	})

	p, err := New(Config{Telegram: TelegramConfig{PerChat: perChat, PerGroup: perGroup}}, e.Log, e.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	tg := relay.TelegramChannel(t, f, nil)
	send := newCountingSender(tg)
	total := 0
	for i := range 12 {
		for _, c := range chats {
			if i < c.jobs {
				e.Publish(e.TelegramJob(botToken, c.id, fmt.Sprintf("job %d", total)))
				total++
			}
		}
	}
	handedBack := countHandBacks()
	runPool(e, map[herald.Channel]consumer.Sender{herald.ChannelTelegram: send},
		handedBack.middleware, p.Middleware(func(n herald.Notification) string { return tg.Destination(n.Target) }))

	testkit.WaitFor(t, 40*time.Second, "every job delivered", func() bool {
		n, _, _, _ := send.stats()
		return n == total
	})
	delivered, dups, calls, end := send.stats()
	mu.Lock()
	elapsed, tooMany := end.Sub(first), limited
	mu.Unlock()
	var ideal time.Duration
	for _, c := range chats {
		ideal = max(ideal, time.Duration(float64(c.jobs-1)/c.rate*float64(time.Second)))
	}
	t.Logf("pacing: telegram: delivered %d in %s, ideal %s (%.2fx); %d sends, %d 429s = %.1f per 1,000 sends; %d duplicates; %d handed back to JetStream",
		delivered, elapsed.Round(time.Millisecond), ideal, elapsed.Seconds()/ideal.Seconds(),
		calls, tooMany, 1000*float64(tooMany)/float64(calls), dups, handedBack.n.Load())
	if delivered != total {
		t.Errorf("delivered %d, want %d", delivered, total)
	}
	if tooMany > 2 {
		t.Errorf("Telegram answered 429 %d times, want at most 2", tooMany)
	}
	if elapsed > ideal*3/2 {
		t.Errorf("took %s, more than 1.5x the ideal %s", elapsed, ideal)
	}
	if dups != 0 {
		t.Errorf("%d duplicate deliveries", dups)
	}
	secrets := []string{testkit.Key[:crypto.KeySize], botToken, "BotSecretToken"}
	for _, c := range chats {
		secrets = append(secrets, c.id)
	}
	testkit.AssertNoSecrets(t, "log", e.Logs.String(), secrets...)
	testkit.AssertNoSecrets(t, "metrics", gatherText(t, e.Registry), secrets...)
}
