package herald

import (
	"fmt"
	"log/slog"
)

// Notification is a job with its credentials opened: what a channel sends. It
// exists only in a consumer's memory, for the duration of one send.
type Notification struct {
	// JobID identifies the job for logs; it is not secret.
	JobID   string
	Channel Channel
	Target  Target
	Message Message
}

// Target is a destination's plaintext credentials. It formats and logs as
// "[redacted]", so a stray %v or slog attribute cannot leak it.
type Target struct {
	// WebhookURL is a Discord webhook URL.
	WebhookURL string
	// BotToken is a Telegram bot token, "<digits>:<chars>".
	BotToken string
	// ChatID is a Telegram chat id (decimal, negative for groups) or @channel.
	ChatID string
}

const redacted = "[redacted]"

// String implements fmt.Stringer without revealing anything.
func (Target) String() string { return redacted }

// GoString implements fmt.GoStringer without revealing anything.
func (Target) GoString() string { return redacted }

// Format implements fmt.Formatter so every verb prints "[redacted]".
func (Target) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (Target) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler so a Target inside any JSON-encoded
// value (a log record, an error body) shows as "[redacted]".
func (Target) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// LogValue implements slog.LogValuer: a Notification logs as its job id and
// channel, never its target or content.
func (n Notification) LogValue() slog.Value {
	return slog.GroupValue(slog.String("job_id", n.JobID), slog.String("channel", string(n.Channel)))
}
