package channels

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
)

// DefaultTelegramAPIBase is the Bot API base URL.
const DefaultTelegramAPIBase = "https://api.telegram.org"

// telegramDefaultRetryAfter is the wait after a 429 that names none (Telegram
// always sends parameters.retry_after; this only guards a broken answer).
const telegramDefaultRetryAfter = 60 * time.Second

var (
	// telegramToken is "<bot id>:<secret>", as BotFather issues them.
	telegramToken = regexp.MustCompile(`^[0-9]{1,20}:[A-Za-z0-9_-]{1,200}$`)
	// telegramChatID is a numeric chat id (negative for groups, -100... for
	// supergroups and channels) or a public @username.
	telegramChatID = regexp.MustCompile(`^(?:-?[0-9]{1,20}|@[A-Za-z0-9_]{5,32})$`)
)

// TelegramConfig configures the Telegram channel. The zero value is valid.
type TelegramConfig struct {
	// APIBase is the Bot API base URL, e.g. "https://api.telegram.org"; a
	// trailing slash is ignored. Empty means DefaultTelegramAPIBase. Tests point
	// it at a fake.
	APIBase string
	// MaxRetryAfter caps the wait a 429 may ask for. Zero means
	// DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
}

// Validate checks the configuration: APIBase, when set, an absolute http(s)
// URL without user info, query or fragment; MaxRetryAfter not negative.
func (c TelegramConfig) Validate() error {
	if c.MaxRetryAfter < 0 {
		return errors.New("telegram: MaxRetryAfter must not be negative")
	}
	if c.APIBase == "" {
		return nil
	}
	u, err := url.Parse(c.APIBase)
	if err != nil {
		return errors.New("telegram: APIBase is not a URL")
	}
	if s := strings.ToLower(u.Scheme); (s != "https" && s != "http") || u.Host == "" {
		return errors.New("telegram: APIBase must be an absolute http(s) URL")
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return errors.New("telegram: APIBase must not carry user info, a query or a fragment")
	}
	return nil
}

func (c TelegramConfig) withDefaults() TelegramConfig {
	if c.APIBase == "" {
		c.APIBase = DefaultTelegramAPIBase
	}
	c.APIBase = strings.TrimRight(c.APIBase, "/")
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	return c
}

// Telegram delivers notifications through the Telegram Bot API's sendMessage.
// It is safe for concurrent use.
type Telegram struct {
	cfg      TelegramConfig
	client   *http.Client
	now      func() time.Time
	destHash *destinationHasher // hashes the token and chat in Destination
}

// NewTelegram returns a Telegram channel. client is used for every call (a
// copy of it that never follows redirects); nil means
// NewHTTPClient(DefaultTimeout).
func NewTelegram(cfg TelegramConfig, client *http.Client) (*Telegram, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Telegram{cfg: cfg.withDefaults(), client: clientOrDefault(client), now: time.Now, destHash: newDestinationHasher()}, nil
}

// CheckTarget validates tg.BotToken (`^\d+:[A-Za-z0-9_-]+$`) and tg.ChatID
// (`^-?\d{1,20}$` or `@[A-Za-z0-9_]{5,32}`) without any I/O. Errors wrap
// ErrInvalidTarget and herald.ErrPermanent and never include either value.
func (t *Telegram) CheckTarget(tg herald.Target) error {
	switch {
	case tg.BotToken == "":
		return invalidTarget("telegram bot token is empty")
	case !telegramToken.MatchString(tg.BotToken):
		return invalidTarget("telegram bot token is malformed (want <digits>:<letters, digits, _ or ->)")
	case tg.ChatID == "":
		return invalidTarget("telegram chat id is empty")
	case !telegramChatID.MatchString(tg.ChatID):
		return invalidTarget("telegram chat id is malformed (want a decimal id or @username)")
	}
	return nil
}

// Destination returns the key of tg's per-destination state (breakers,
// pacing): "telegram:<bot id>.<keyed hash of the token>:<keyed hash of the
// chat id>". The part before the second colon names the bot (Telegram limits
// each bot overall) by its whole token, so a token that shares only the
// public bot id with a victim's is another bot to Herald; the chat id
// (@usernames case-folded first) is hashed too. The hashes are keyed per
// process: they reveal neither value. A malformed token gives bot
// "invalid".
func (t *Telegram) Destination(tg herald.Target) string {
	bot := "invalid"
	if telegramToken.MatchString(tg.BotToken) {
		id, _, _ := strings.Cut(tg.BotToken, ":")
		bot = id + "." + t.destHash.sum(tg.BotToken)
	}
	chat := tg.ChatID
	if strings.HasPrefix(chat, "@") {
		chat = strings.ToLower(chat)
	}
	return "telegram:" + bot + ":" + t.destHash.sum(chat)
}

// telegramRequest is the sendMessage body.
type telegramRequest struct {
	ChatID             string                     `json:"chat_id"`
	Text               string                     `json:"text"`
	ParseMode          string                     `json:"parse_mode"`
	LinkPreviewOptions telegramLinkPreviewOptions `json:"link_preview_options"`
}

type telegramLinkPreviewOptions struct {
	IsDisabled bool `json:"is_disabled"`
}

// telegramResponse is the Bot API's answer envelope.
type telegramResponse struct {
	OK          bool   `json:"ok"`
	ErrorCode   int    `json:"error_code"`
	Description string `json:"description"`
	Parameters  *struct {
		RetryAfter      *float64 `json:"retry_after"`
		MigrateToChatID *int64   `json:"migrate_to_chat_id"`
	} `json:"parameters"`
}

// Send posts n.Message, rendered as HTML within Telegram's 4096-character
// limit, to chat n.Target.ChatID with bot n.Target.BotToken. ctx bounds the
// call (with the client's Timeout). When Telegram answers that the group
// became a supergroup (migrate_to_chat_id), Send resends once to the new id
// and returns that result. It returns:
//   - nil when Telegram answers 200 with "ok": true;
//   - an error wrapping ErrInvalidTarget and herald.ErrPermanent when the
//     token or chat id is malformed (nothing is sent);
//   - *herald.RetryAfterError (wrapping a *herald.DestinationError) on 429,
//     After = parameters.retry_after seconds, clamped to MaxRetryAfter;
//   - herald.Permanent(*herald.DestinationError) on 400 (chat not found, can't
//     parse entities, ...), 401, 403 (bot blocked or kicked) and 404;
//   - *herald.DestinationError on any other answer (transient);
//   - a transport error, "telegram: send: ...", that keeps errors.Is for
//     context errors but names no URL.
//
// DestinationError descriptions have the token and chat ids replaced by
// "[redacted]".
func (t *Telegram) Send(ctx context.Context, n herald.Notification) error {
	if err := t.CheckTarget(n.Target); err != nil {
		return err
	}
	text := renderTelegramHTML(n.Message)
	token, chat := n.Target.BotToken, n.Target.ChatID
	migrateTo, err := t.send(ctx, token, chat, text, chat)
	if migrateTo == "" {
		return err
	}
	// Resend once. Should the new id migrate again, its error (permanent) is
	// returned rather than chased.
	_, err = t.send(ctx, token, migrateTo, text, chat, migrateTo)
	return err
}

func (t *Telegram) requestBody(chatID, text string) ([]byte, error) {
	return marshalJSON(telegramRequest{
		ChatID:             chatID,
		Text:               text,
		ParseMode:          "HTML",
		LinkPreviewOptions: telegramLinkPreviewOptions{IsDisabled: true},
	})
}

// send makes one sendMessage call. When Telegram asks to migrate, it returns
// the new chat id and the (permanent) error of this call.
func (t *Telegram) send(ctx context.Context, token, chatID, text string, chatIDs ...string) (migrateTo string, err error) {
	body, err := t.requestBody(chatID, text)
	if err != nil {
		return "", herald.Permanent(fmt.Errorf("telegram: encode message: %w", err))
	}
	endpoint := t.cfg.APIBase + "/bot" + token + "/sendMessage"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		// The error would quote the URL, token included.
		return "", herald.Permanent(errors.New("telegram: build request: invalid API base or token"))
	}
	req.Header.Set("Content-Type", "application/json")

	resp, err := t.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("telegram: send: %w", scrubTransport(err, endpoint, token))
	}
	defer drainClose(resp.Body)
	data, readErr := readBody(resp.Body)
	secrets := append([]string{token}, chatIDs...)

	var tr telegramResponse
	isJSON := isJSONObject(data) && json.Unmarshal(data, &tr) == nil
	if resp.StatusCode == http.StatusOK && isJSON && tr.OK {
		return "", nil
	}
	if resp.StatusCode == http.StatusOK && readErr != nil {
		// The body did not arrive whole: whether it was sent is unknown.
		return "", fmt.Errorf("telegram: read answer: %w", scrubTransport(readErr, endpoint, token))
	}
	de := &herald.DestinationError{Channel: herald.ChannelTelegram, StatusCode: resp.StatusCode, Code: tr.ErrorCode}
	if isJSON {
		de.Description = description(tr.Description, secrets...)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if de.Description == "" {
			de.Description = `answer without "ok": true`
		}
		return "", de
	case http.StatusTooManyRequests:
		seconds, found := 0.0, false
		if tr.Parameters != nil && tr.Parameters.RetryAfter != nil {
			seconds, found = *tr.Parameters.RetryAfter, true
		} else {
			seconds, found = parseRetryAfterHeader(resp.Header.Get("Retry-After"), t.now())
		}
		if !found {
			seconds = telegramDefaultRetryAfter.Seconds()
		}
		return "", &herald.RetryAfterError{After: clampRetryAfter(seconds, t.cfg.MaxRetryAfter), Err: de}
	case http.StatusBadRequest:
		if tr.Parameters != nil && tr.Parameters.MigrateToChatID != nil && *tr.Parameters.MigrateToChatID != 0 {
			return strconv.FormatInt(*tr.Parameters.MigrateToChatID, 10), herald.Permanent(de)
		}
		return "", herald.Permanent(de)
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return "", herald.Permanent(de)
	default:
		return "", de
	}
}
