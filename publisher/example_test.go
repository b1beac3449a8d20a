package publisher_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/publisher"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Example shows a Go backend handing Herald a Discord notification. Herald's
// own deployment provides NATS and the jobs stream; the example starts an
// embedded server and creates the stream itself so that it runs anywhere.
func Example() {
	dir, _ := os.MkdirTemp("", "herald-example")
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)
	srv, err := queue.StartEmbedded(queue.EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: dir}, quiet)
	if err != nil {
		panic(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	natsURL := srv.ClientURL() // in production: your NATS URL, e.g. nats://nats:4222

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	nc, err := nats.Connect(natsURL)
	if err != nil {
		panic(err)
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		panic(err)
	}
	if _, err := queue.EnsureJobsStream(ctx, js, queue.StreamConfig{}); err != nil { // Herald does this itself
		panic(err)
	}

	// The key must be Herald's ENCRYPTION_KEY: only Herald's consumers open
	// the credentials, in memory, while sending.
	ring, err := crypto.NewKeyring("0123456789abcdef0123456789abcdef")
	if err != nil {
		panic(err)
	}
	webhook, err := ring.Seal("https://discord.com/api/webhooks/123/abc")
	if err != nil {
		panic(err)
	}

	pub := publisher.New(js)
	job := &herald.Job{
		Channel:     herald.ChannelDiscord,
		Source:      "billing",
		Credentials: herald.Credentials{Webhook: webhook},
		Message:     herald.Message{Title: "Invoice paid", Text: "#1234, 12.00 EUR"},
	}
	res, err := pub.Publish(ctx, job, publisher.WithMsgID("invoice-1234-paid"))
	switch {
	case errors.Is(err, herald.ErrInvalidJob):
		fmt.Println("fix the job:", err) // nothing was sent
	case errors.Is(err, publisher.ErrNotStored):
		fmt.Println("not stored, retry later:", err)
	case err != nil:
		fmt.Println("error:", err)
	default:
		fmt.Println("stored in", res.Stream, "duplicate:", res.Duplicate)
	}

	// Retrying with the same idempotency key stores nothing new.
	res, err = pub.Publish(ctx, job, publisher.WithMsgID("invoice-1234-paid"))
	fmt.Println("retry duplicate:", res.Duplicate, err)
	// Output:
	// stored in HERALD_JOBS duplicate: false
	// retry duplicate: true <nil>
}
