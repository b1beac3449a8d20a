package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
)

// TestLogsCarryNoSecrets runs every kind of outcome and checks the whole JSON
// log for credentials and keys. (Every other test's log is checked as well, in
// newTestEnv's cleanup.)
func TestLogsCarryNoSecrets(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	// A sender that behaves badly: it puts the target in its error text and
	// panics with it. Channels must not do this; the consumer must still not
	// log a herald.Target, so only the %v of a Target (redacted) may show.
	sender := senderFunc(func(_ context.Context, n herald.Notification) error {
		switch n.Message.Text {
		case "transient":
			return fmt.Errorf("transient for %v", n.Target)
		case "limited":
			return &herald.RetryAfterError{After: time.Minute, Err: fmt.Errorf("limited %+v", n.Target)}
		case "permanent":
			return herald.Permanent(fmt.Errorf("permanent for %#v", n.Target))
		case "panic":
			panic(errors.New("panic with " + n.Target.WebhookURL + n.Target.BotToken + n.Target.ChatID))
		}
		return nil
	})
	e.startPool(testConfig(), e.deps(map[herald.Channel]Sender{herald.ChannelDiscord: sender, herald.ChannelTelegram: sender}))

	other, err := crypto.NewKeyring(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, text := range []string{"ok", "transient", "limited", "permanent", "panic"} {
		ids = append(ids, e.publish(discordJob(t, e.keys, text)), e.publish(telegramJob(t, e.keys, text)))
	}
	ids = append(ids, e.publish(discordJob(t, other, "wrong key")), e.publish(telegramJob(t, other, "wrong key")))
	e.publishRaw(herald.JobSubject(herald.ChannelTelegram), []byte(`{"v":1,"channel":"telegram","credentials":{"bot_token":"`+botToken+`"}}`), "raw-bad")

	for _, id := range ids {
		e.waitFor("an outcome for "+id, func() bool { _, ok := e.status.last(id); return ok })
	}
	e.waitFinal("raw-bad")
	// The status record is written before the outcome's log line: wait for
	// the lines too.
	e.waitFor("a delivery line per job", func() bool {
		return strings.Count(e.logs.String(), `"msg":"delivery"`) >= len(ids)+1
	})
	logs := e.logs.String()
	if strings.Count(logs, `"msg":"delivery"`) < len(ids)+1 {
		t.Fatalf("expected a delivery line per job, got:\n%s", logs)
	}
	if !strings.Contains(logs, "[redacted]") {
		t.Errorf("expected the misbehaving sender's redacted target in the log")
	}
	assertNoSecrets(t, logs)
	for _, id := range append(ids, "raw-bad") {
		for _, st := range e.status.all(id) {
			assertNoSecrets(t, st.LastError)
		}
	}
}
