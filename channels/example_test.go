package channels_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/channels"
	"github.com/heraldrelay/herald/internal/fake"
)

func ExampleDiscord_Send() {
	f := fake.NewDiscord(nil) // a local stand-in for discord.com
	defer f.Close()

	// Production configs leave AllowedHosts empty (Discord's own hosts, https
	// only); reaching the fake takes an explicit widening.
	d, err := channels.NewDiscord(channels.DiscordConfig{AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true}, nil)
	if err != nil {
		panic(err)
	}
	n := herald.Notification{
		Channel: herald.ChannelDiscord,
		Target:  herald.Target{WebhookURL: f.WebhookURL("123456789", "webhook-token")},
		Message: herald.Message{Title: "Deploy finished", Text: "v1.2.3 is live."},
	}
	err = d.Send(context.Background(), n)
	r := f.Requests()[0]
	fmt.Println(err, r.Version)

	// Discord says "later": the job waits exactly that long.
	f.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Respond429(1.5) })
	err = d.Send(context.Background(), n)
	var ra *herald.RetryAfterError
	fmt.Println(errors.As(err, &ra), ra.After)

	// Discord says "never": the webhook was deleted.
	f.Script(func(fake.DiscordRequest, int) fake.Response { return fake.Respond404UnknownWebhook() })
	err = d.Send(context.Background(), n)
	fmt.Println(errors.Is(err, herald.ErrPermanent), err)
	// Output:
	// <nil> v10
	// true 1.5s
	// true Discord API error: 404 Not Found - Unknown Webhook (code 10015)
}

func ExampleDiscord_ParseWebhook() {
	d, _ := channels.NewDiscord(channels.DiscordConfig{}, nil)
	w, err := d.ParseWebhook("https://discord.com/api/webhooks/123456789/webhook-token")
	fmt.Println(w, err) // the token never prints
	_, err = d.ParseWebhook("https://discord.com.evil.example/api/webhooks/1/webhook-token")
	fmt.Println(err)
	fmt.Println(errors.Is(err, channels.ErrInvalidTarget), errors.Is(err, herald.ErrPermanent))
	// Output:
	// discord webhook 123456789 <nil>
	// invalid destination: webhook host is not an allowed Discord host
	// true true
}

func ExampleTelegram_Send() {
	f := fake.NewTelegram(nil) // a local stand-in for api.telegram.org
	defer f.Close()

	tg, err := channels.NewTelegram(channels.TelegramConfig{APIBase: f.URL()}, channels.NewHTTPClient(5*time.Second))
	if err != nil {
		panic(err)
	}
	err = tg.Send(context.Background(), herald.Notification{
		Channel: herald.ChannelTelegram,
		Target:  herald.Target{BotToken: "123456:bot-token", ChatID: "987654321"},
		Message: herald.Message{
			Title:  "Build <main> failed",
			Text:   "3 tests & 1 lint error",
			Fields: []herald.Field{{Icon: "🔧", Name: "Job", Value: "test"}},
		},
	})
	r := f.Requests()[0]
	fmt.Println(err)
	fmt.Println(r.Text)
	// Output:
	// <nil>
	// <b>Build &lt;main&gt; failed</b>
	//
	// 3 tests &amp; 1 lint error
	//
	// 🔧 <b>Job:</b> test
}

func ExampleParseRateLimit() {
	f := fake.NewDiscord(nil)
	defer f.Close()
	d, _ := channels.NewDiscord(channels.DiscordConfig{
		AllowedHosts: []string{"127.0.0.1"}, AllowHTTP: true,
		Observe: func(dest string, rl channels.RateLimit, status int) {
			// Called with the destination's key (Destination) and
			// ParseRateLimit(resp.Header) after every answer.
			fmt.Println(status, rl.Limit, rl.Remaining)
		},
	}, nil)
	n := herald.Notification{Target: herald.Target{WebhookURL: f.WebhookURL("42", "tok")}, Message: herald.Message{Text: "hi"}}
	_ = d.Send(context.Background(), n)
	_ = d.Send(context.Background(), n)
	// Output:
	// 204 5 4
	// 204 5 3
}
