package herald

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"
)

// JobVersion is the version of the Job wire format this build writes and reads.
const JobVersion = 1

// Channel names a delivery channel.
type Channel string

// The channels Herald delivers to.
const (
	ChannelDiscord  Channel = "discord"
	ChannelTelegram Channel = "telegram"
)

// Channels lists every known channel.
var Channels = []Channel{ChannelDiscord, ChannelTelegram}

// Valid reports whether c is a known channel.
func (c Channel) Valid() bool { return c == ChannelDiscord || c == ChannelTelegram }

// Title is the channel's name as a service's: "Discord", "Telegram"; an
// unknown channel's name unchanged.
func (c Channel) Title() string {
	switch c {
	case ChannelDiscord:
		return "Discord"
	case ChannelTelegram:
		return "Telegram"
	}
	return string(c)
}

// Job is the only type carried on the JetStream wire (JSON, subject
// JobSubject(Channel) or JobIDSubject(Channel, ID)). Its credentials stay
// sealed (see package crypto) from the moment the job is built until a
// consumer opens them in memory to send.
//
// Backwards-compatible additions keep Version; anything else bumps it.
type Job struct {
	// Version is the wire format version; JobVersion for this build.
	Version int `json:"v"`
	// ID identifies the job: its status record key and its Nats-Msg-Id.
	// Optional for jobs published straight to NATS: the consumer then uses the
	// Nats-Msg-Id header, or the stream sequence.
	ID string `json:"id,omitempty"`
	// Channel says where the job goes.
	Channel Channel `json:"channel"`
	// CreatedAt is when the job was accepted; delivery latency counts from it.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// Source says who built the job ("streaky", "api", or a publisher's name).
	Source string `json:"source,omitempty"`
	// Credentials are the destination's sealed credentials. Empty when
	// CredentialID is set.
	Credentials Credentials `json:"credentials"`
	// CredentialID names a credential stored in Herald's vault (see package
	// vault) instead of carrying sealed Credentials: a job has one or the
	// other. The credential must be for the job's Channel.
	CredentialID string `json:"credential_id,omitempty"`
	// Owner is the tenant that submitted the job: Herald's ingest sets it,
	// on jobs naming a CredentialID, to the keyed id of the API secret that
	// sent them (never the secret). A worker then uses the credential only
	// if it belongs to that owner or to nobody, and dead-letters the job
	// otherwise. Jobs published straight to NATS leave it empty: they may
	// name any credential.
	Owner string `json:"owner,omitempty"`
	// Message is what to deliver.
	Message Message `json:"message"`
}

// Credentials hold a destination's credentials, each sealed with Herald's
// keyring in the Streaky format (base64 of IV || ciphertext || tag).
type Credentials struct {
	// Webhook is the sealed Discord webhook URL (channel discord).
	Webhook string `json:"webhook,omitempty"`
	// BotToken is the sealed Telegram bot token (channel telegram).
	BotToken string `json:"bot_token,omitempty"`
	// ChatID is the sealed Telegram chat id, a decimal string (channel telegram).
	ChatID string `json:"chat_id,omitempty"`
}

// Message is the channel-neutral content of a notification. Each channel
// renders it in its own way and applies its own size limits.
type Message struct {
	// Title is a short heading (Discord embed title, Telegram bold first line).
	Title string `json:"title,omitempty"`
	// Text is the body.
	Text string `json:"text,omitempty"`
	// URL makes the title a link.
	URL string `json:"url,omitempty"`
	// Color is an RGB colour, 0xRRGGBB (Discord embed colour).
	Color *int `json:"color,omitempty"`
	// Fields are name/value pairs shown after the text.
	Fields []Field `json:"fields,omitempty"`
	// Footer is a last line of small print.
	Footer string `json:"footer,omitempty"`
	// Username overrides the sender's display name where the channel allows it
	// (Discord webhooks).
	Username string `json:"username,omitempty"`
	// Timestamp is shown with the message where the channel supports it.
	Timestamp *time.Time `json:"timestamp,omitempty"`
}

// Field is one name/value pair of a Message.
type Field struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline,omitempty"`
	// Icon is shown before the name by text-only channels (Telegram), which have
	// no other way to set fields apart.
	Icon string `json:"icon,omitempty"`
}

// ErrInvalidJob is wrapped by every error Job.Validate returns.
var ErrInvalidJob = errors.New("invalid job")

// Validate checks the job's shape without opening its credentials. The error
// names the offending field and never includes credential material.
func (j *Job) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidJob, fmt.Sprintf(format, args...))
	}
	if j.Version != JobVersion {
		return bad("unsupported version %d (this build reads v%d)", j.Version, JobVersion)
	}
	if !j.Channel.Valid() {
		return bad("unknown channel %q (want discord or telegram)", truncate(string(j.Channel), 32))
	}
	switch {
	case j.CredentialID != "":
		if j.Credentials != (Credentials{}) {
			return bad("send credentials or credential_id, not both")
		}
		if !ValidID(j.CredentialID) {
			return bad("credential_id must be 1-64 characters of A-Z a-z 0-9 - _")
		}
	case j.Channel == ChannelDiscord:
		if j.Credentials.Webhook == "" {
			return bad("credentials.webhook is required for channel discord")
		}
	case j.Channel == ChannelTelegram:
		if j.Credentials.BotToken == "" {
			return bad("credentials.bot_token is required for channel telegram")
		}
		if j.Credentials.ChatID == "" {
			return bad("credentials.chat_id is required for channel telegram")
		}
	}
	if strings.TrimSpace(j.Message.Title) == "" && strings.TrimSpace(j.Message.Text) == "" {
		return bad("message needs a title or a text")
	}
	for i, f := range j.Message.Fields {
		if f.Name == "" || f.Value == "" {
			return bad("message.fields[%d] needs a name and a value", i)
		}
	}
	if c := j.Message.Color; c != nil && (*c < 0 || *c > 0xFFFFFF) {
		return bad("message.color must be between 0 and 16777215")
	}
	if j.ID != "" && !ValidID(j.ID) {
		return bad("id must be 1-64 characters of A-Z a-z 0-9 - _")
	}
	if j.Owner != "" && !ValidID(j.Owner) {
		return bad("owner must be 1-64 characters of A-Z a-z 0-9 - _")
	}
	return nil
}

// ValidID reports whether id can be a job id (and so a status key).
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns a fresh random id: 128 bits from crypto/rand in 26
// characters of lower-case base32. Job ids and vault credential ids are
// made with it; a credential id is unguessable because of it.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// IDFromKey derives an id of a job id's form from a client's idempotency
// key, scoped by the client's identity: the same key of the same client
// always gives the same id, another client's never. Herald's ingest keeps
// keys under it (the key itself is not stored); the job gets an id of its
// own, so that once the key is forgotten a new job never shares it.
func IDFromKey(scope, key string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	return strings.ToLower(idEncoding.EncodeToString(sum[:16]))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// SourceVerification is the Source of the jobs that carry a verification
// code to a destination nobody has verified yet (a registration). They get
// their own small share of what every tenant shares (Discord's
// invalid-request budget): a stranger registering bad webhooks cannot spend
// what deliveries to verified destinations need.
const SourceVerification = "verification"
