package vault_test

import (
	"strings"
	"testing"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/queue"
	"github.com/heraldrelay/herald/internal/testkit"
	"github.com/heraldrelay/herald/internal/vault"
	"github.com/heraldrelay/herald/publisher"
)

// The code travels as an ordinary job: on the jobs stream, its destination
// sealed with the job keyring, which the workers open.
func TestJobNotifierPublishesASealedJob(t *testing.T) {
	s := testkit.NewServer(t)
	_, _, js := buckets(t, s)
	stream, err := queue.EnsureJobsStream(ctxT(t), js, queue.StreamConfig{Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	ring := testkit.Keyring(t, "0123456789abcdef0123456789abcdef")
	n := &vault.JobNotifier{Keys: ring, Publisher: publisher.New(js)}
	err = n.Notify(ctxT(t), herald.Notification{Channel: herald.ChannelTelegram, Target: telegramTarget,
		Message: herald.Message{Title: vault.CodeTitle + "123456", Text: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctxT(t), herald.JobSubjects)
	if err != nil {
		t.Fatal(err)
	}
	assertNoLeak(t, "job", string(msg.Data))
	job, err := publisher.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if job.Channel != herald.ChannelTelegram || job.Source != vault.SourceVerification || !strings.HasSuffix(job.Message.Title, "123456") {
		t.Fatalf("job = %+v", job)
	}
	token, err1 := ring.Open(job.Credentials.BotToken)
	chat, err2 := ring.Open(job.Credentials.ChatID)
	if err1 != nil || err2 != nil || token != testBot || chat != testChat {
		t.Fatalf("credentials do not open to the target: %v %v", err1, err2)
	}
	if job.Credentials.Webhook != "" || job.CredentialID != "" {
		t.Fatalf("unexpected credentials: %+v", job.Credentials)
	}
}
