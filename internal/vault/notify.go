package vault

import (
	"context"
	"fmt"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/publisher"
)

// SourceVerification is the Source of the jobs JobNotifier publishes
// (herald.SourceVerification: pacing gives them their own share).
const SourceVerification = herald.SourceVerification

// JobPublisher stores jobs; *publisher.Publisher implements it.
type JobPublisher interface {
	Publish(ctx context.Context, job *herald.Job, opts ...publisher.Option) (publisher.Result, error)
}

// JobNotifier delivers a notification through Herald's normal delivery path:
// it publishes a job to the jobs stream whose credentials are the target
// sealed with Keys, the keyring the workers open jobs with. The message is
// then paced, retried and dead-lettered like any other.
type JobNotifier struct {
	Keys      *crypto.Keyring
	Publisher JobPublisher
}

var _ Notifier = (*JobNotifier)(nil)

// Notify publishes n as a job and returns once it is stored. Errors wrap
// publisher.ErrNotStored (or herald.ErrInvalidJob) and never hold the target.
func (j *JobNotifier) Notify(ctx context.Context, n herald.Notification) error {
	seal := func(s string) (string, error) {
		if s == "" {
			return "", nil
		}
		return j.Keys.Seal(s)
	}
	var creds herald.Credentials
	var err error
	if creds.Webhook, err = seal(n.Target.WebhookURL); err != nil {
		return fmt.Errorf("vault: notify: %w", err)
	}
	if creds.BotToken, err = seal(n.Target.BotToken); err != nil {
		return fmt.Errorf("vault: notify: %w", err)
	}
	if creds.ChatID, err = seal(n.Target.ChatID); err != nil {
		return fmt.Errorf("vault: notify: %w", err)
	}
	job := &herald.Job{Channel: n.Channel, Source: SourceVerification, Credentials: creds, Message: n.Message}
	if _, err := j.Publisher.Publish(ctx, job); err != nil {
		return fmt.Errorf("vault: notify: %w", err)
	}
	return nil
}
