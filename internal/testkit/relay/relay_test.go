package relay_test

import (
	"testing"

	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/testkit/relay"
)

func TestPoolDeliversToTheFakes(t *testing.T) {
	e := relay.New(t)
	e.StartPool(relay.Config(), e.Deps(nil))
	e.Publish(e.DiscordJob(testkit.WebhookID, testkit.WebhookToken, "to discord"))
	e.Publish(e.TelegramJob(testkit.BotToken, testkit.ChatID, "to telegram"))
	e.WaitFor("both deliveries", func() bool { return e.Discord().Count() == 1 && e.Telegram().Count() == 1 })
	e.WaitFor("the stream to empty", func() bool { return e.StreamMsgs() == 0 })
}
