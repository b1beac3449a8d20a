package channels

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
)

// DefaultDiscordHosts are the hosts Discord hands out webhook URLs on. It is
// the allow-list used when DiscordConfig.AllowedHosts is empty; do not modify it.
var DefaultDiscordHosts = []string{"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"}

// DefaultMaxRetryAfter caps the wait a destination's 429 can impose on a job.
const DefaultMaxRetryAfter = time.Hour

// discordBanRetryAfter is the wait after a 429 that carries neither rate-limit
// headers nor a JSON body: Cloudflare banning this relay's IP, which lasts
// much longer than any route limit, so back off for a long while.
const discordBanRetryAfter = 60 * time.Second

// discordUserAgent follows Discord's required "DiscordBot ($url, $version)" form.
const discordUserAgent = "DiscordBot (https://github.com/heraldrelay/herald, 1)"

// DiscordConfig configures the Discord channel. The zero value is valid: zero
// fields take their defaults.
type DiscordConfig struct {
	// AllowedHosts are the host names a webhook URL may point at, matched
	// exactly and case-insensitively (a port in the URL is ignored). Empty means
	// DefaultDiscordHosts; a non-empty list replaces it. Tests list "127.0.0.1"
	// here to reach a fake: this is the only way to widen the list.
	AllowedHosts []string
	// AllowHTTP accepts http:// webhook URLs besides https://. For tests against
	// a local fake only.
	AllowHTTP bool
	// MaxRetryAfter caps the wait a 429 may ask for. Zero means
	// DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// Observe, when set, is called after every response Discord sends, with the
	// destination key (Discord.Destination), the response's rate-limit headers
	// and its HTTP status. It runs on the sending goroutine, so it must be quick
	// and safe for concurrent use. Nil means no-op.
	Observe func(dest string, rl RateLimit, status int)
}

// Validate checks the configuration: MaxRetryAfter not negative, and every
// allowed host a bare host name or IP address (no scheme, port, path,
// wildcard or user info).
func (c DiscordConfig) Validate() error {
	if c.MaxRetryAfter < 0 {
		return errors.New("discord: MaxRetryAfter must not be negative")
	}
	for _, h := range c.AllowedHosts {
		if err := validHostName(h); err != nil {
			return fmt.Errorf("discord: allowed host %q: %w", h, err)
		}
	}
	return nil
}

func (c DiscordConfig) withDefaults() DiscordConfig {
	if len(c.AllowedHosts) == 0 {
		c.AllowedHosts = DefaultDiscordHosts
	}
	c.AllowedHosts = slices.Clone(c.AllowedHosts)
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	return c
}

// validHostName accepts a DNS name or an IP literal, nothing else.
func validHostName(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	if len(h) > 253 {
		return errors.New("host name too long")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("not a host name (empty or long label)")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return errors.New("not a host name (only letters, digits, '-' and '.' are allowed)")
			}
		}
	}
	return nil
}

// Discord delivers notifications to Discord webhooks. It is safe for
// concurrent use.
type Discord struct {
	cfg      DiscordConfig
	client   *http.Client
	hosts    map[string]struct{}
	now      func() time.Time
	destHash *destinationHasher // hashes the token in Destination
}

// NewDiscord returns a Discord channel. client is used for every call (a copy
// of it that never follows redirects, whatever its CheckRedirect says); nil
// means NewHTTPClient(DefaultTimeout).
func NewDiscord(cfg DiscordConfig, client *http.Client) (*Discord, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	d := &Discord{cfg: cfg, client: clientOrDefault(client), hosts: make(map[string]struct{}), now: time.Now, destHash: newDestinationHasher()}
	for _, h := range cfg.AllowedHosts {
		d.hosts[strings.ToLower(h)] = struct{}{}
	}
	return d, nil
}

// CheckTarget validates t.WebhookURL with ParseWebhook, without any I/O.
func (d *Discord) CheckTarget(t herald.Target) error {
	_, err := d.ParseWebhook(t.WebhookURL)
	return err
}

// Destination returns the key of t's per-destination state (breakers,
// pacing): "discord:<host>/<webhook id>:<keyed hash of the token>". It names
// the whole destination: two URLs that share the id but not the token or the
// host (or, with AllowHTTP, the port) are different destinations, so a URL
// an outsider makes from a victim's id (another token gets 401 there, never
// the owner's 429) can neither open the victim's breaker nor spend its
// bucket. The hash is keyed per process: it reveals nothing of the token. A
// target that does not parse gets "discord:invalid".
func (d *Discord) Destination(t herald.Target) string {
	w, err := d.ParseWebhook(t.WebhookURL)
	if err != nil {
		return "discord:invalid"
	}
	return d.destination(w)
}

func (d *Discord) destination(w Webhook) string {
	return "discord:" + w.host + "/" + w.ID + ":" + d.destHash.sum(w.Token)
}

// Send posts n.Message as one embed to the webhook n.Target.WebhookURL, at its
// versioned /api/v10/ form. ctx bounds the call (together with the client's
// Timeout). It returns:
//   - nil when Discord answers 2xx;
//   - an error wrapping ErrInvalidTarget and herald.ErrPermanent when the URL
//     is not an allowed webhook URL (nothing is sent);
//   - *herald.RetryAfterError (wrapping a *herald.DestinationError) on 429,
//     After taken from the body's retry_after or the Retry-After header,
//     clamped to MaxRetryAfter; Global when the limit is global or the 429 is
//     a Cloudflare IP ban (no rate-limit headers, no JSON);
//   - herald.Permanent(*herald.DestinationError) on 400, 401, 403, 404, 413;
//   - *herald.DestinationError on any other status (transient);
//   - a transport error, "discord: send: ...", that keeps errors.Is for
//     context errors and errors.As for net.Error but names no URL.
func (d *Discord) Send(ctx context.Context, n herald.Notification) error {
	w, err := d.ParseWebhook(n.Target.WebhookURL)
	if err != nil {
		return err
	}
	body, err := d.requestBody(n.Message)
	if err != nil {
		return herald.Permanent(fmt.Errorf("discord: encode message: %w", err))
	}
	endpoint := w.endpoint()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		// The error would quote the URL; ParseWebhook makes this unreachable.
		return herald.Permanent(errors.New("discord: build request: invalid webhook URL"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", discordUserAgent)

	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("discord: send: %w", scrubTransport(err, endpoint, n.Target.WebhookURL, w.Token))
	}
	defer drainClose(resp.Body)
	data, _ := readBody(resp.Body) // a cut or failed read only loses error detail
	if d.cfg.Observe != nil {
		rl := ParseRateLimit(resp.Header)
		rl.Covers = Classify429(resp.StatusCode, rl, data)
		d.cfg.Observe(d.destination(w), rl, resp.StatusCode)
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	return d.classify(resp.StatusCode, resp.Header, data, w.Token, endpoint, n.Target.WebhookURL)
}

func (d *Discord) requestBody(m herald.Message) ([]byte, error) {
	return marshalJSON(newDiscordPayload(m, d.now()))
}

// discordError is the JSON body of Discord's error answers.
type discordError struct {
	Message    string          `json:"message"`
	Code       int             `json:"code"`
	RetryAfter *float64        `json:"retry_after"`
	Global     bool            `json:"global"`
	Errors     json.RawMessage `json:"errors"`
}

// classify turns a non-2xx answer into the error that decides the job's fate.
func (d *Discord) classify(status int, h http.Header, data []byte, secrets ...string) error {
	var body discordError
	isJSON := isJSONObject(data) && json.Unmarshal(data, &body) == nil
	de := &herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: status, Code: body.Code}
	if isJSON {
		de.Description = description(discordDescription(body), secrets...)
	}
	switch status {
	case http.StatusTooManyRequests:
		return d.rateLimited(h, data, body, isJSON, de)
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusRequestEntityTooLarge:
		// Unknown Webhook (404, code 10015), a bad token (401/403), a body
		// Discord refuses (400/413): sending the same again cannot succeed.
		return herald.Permanent(de)
	default:
		return de
	}
}

func (d *Discord) rateLimited(h http.Header, data []byte, body discordError, isJSON bool, de *herald.DestinationError) error {
	rl := ParseRateLimit(h)
	limit := Classify429(http.StatusTooManyRequests, rl, data)
	var seconds float64
	found := false
	switch {
	case isJSON && body.RetryAfter != nil:
		// The body's float is the most precise; v10 gives seconds.
		seconds, found = *body.RetryAfter, true
	default:
		seconds, found = parseRetryAfterHeader(h.Get("Retry-After"), d.now())
		if !found && rl.ResetAfter > 0 {
			seconds, found = rl.ResetAfter.Seconds(), true
		}
	}
	if limit == LimitBan {
		// Cloudflare's ban answers a plain 429: it covers every webhook this
		// relay's IP calls.
		if de.Description == "" {
			de.Description = "rate limited without rate-limit headers (IP likely banned by Cloudflare)"
		}
		if !found {
			seconds, found = discordBanRetryAfter.Seconds(), true
		}
	}
	if !found {
		seconds = discordBanRetryAfter.Seconds()
	}
	return &herald.RetryAfterError{After: clampRetryAfter(seconds, d.cfg.MaxRetryAfter), Global: limit.Global(), Err: de}
}

// discordDescription is Discord's message plus, for "Invalid Form Body", the
// first field error, e.g. "Invalid Form Body (embeds.0.title: Must be 256 or
// fewer in length.)".
func discordDescription(body discordError) string {
	msg := body.Message
	if len(body.Errors) == 0 {
		return msg
	}
	var tree any
	if json.Unmarshal(body.Errors, &tree) != nil {
		return msg
	}
	if path, detail, ok := firstFormError(tree, ""); ok {
		if path != "" {
			detail = path + ": " + detail
		}
		return msg + " (" + detail + ")"
	}
	return msg
}

// firstFormError walks Discord's nested form-error tree ({"embeds":{"0":
// {"title":{"_errors":[{"code","message"}]}}}}) in key order and returns the
// first error's path and message.
func firstFormError(node any, path string) (string, string, bool) {
	m, ok := node.(map[string]any)
	if !ok {
		return "", "", false
	}
	if errs, ok := m["_errors"].([]any); ok && len(errs) > 0 {
		if e, ok := errs[0].(map[string]any); ok {
			if s, ok := e["message"].(string); ok {
				return path, s, true
			}
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "_errors" {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		// Numeric keys (array indexes) in numeric order.
		a, errA := strconv.Atoi(keys[i])
		b, errB := strconv.Atoi(keys[j])
		if errA == nil && errB == nil {
			return a < b
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		p := k
		if path != "" {
			p = path + "." + k
		}
		if pp, s, ok := firstFormError(m[k], p); ok {
			return pp, s, true
		}
	}
	return "", "", false
}

// marshalJSON encodes v without HTML escaping (Discord and Telegram read
// plain JSON; "<" need not become \u003c).
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
