package channels

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
)

// maxWebhookURL bounds the length of a webhook URL ParseWebhook looks at.
// Discord's are about 120 characters.
const maxWebhookURL = 2048

// matchWebhookPath splits a webhook path, /api/webhooks/{id}/{token} or
// /api/v{N}/webhooks/{id}/{token} (N of 1 to 3 digits), into id and token.
// Ids are snowflakes (decimal, up to 20 digits); tokens are URL-safe
// base64-like strings (68 characters today), of 1 to 256 [A-Za-z0-9_-].
// It is the regular expression
//
//	^/api/(?:v[0-9]{1,3}/)?webhooks/([0-9]{1,20})/([A-Za-z0-9_-]{1,256})$
//
// written out: every send parses its webhook, and the regexp engine was most
// of that cost.
func matchWebhookPath(p string) (id, token string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/api/")
	if !ok {
		return "", "", false
	}
	if v, after, found := strings.Cut(rest, "/"); found && len(v) >= 2 && v[0] == 'v' && isDigits(v[1:], 3) {
		rest = after
	}
	if rest, ok = strings.CutPrefix(rest, "webhooks/"); !ok {
		return "", "", false
	}
	id, token, ok = strings.Cut(rest, "/")
	if !ok || !isDigits(id, 20) || !isTokenChars(token, 256) {
		return "", "", false
	}
	return id, token, true
}

// isTokenChars reports whether s is 1 to max characters of [A-Za-z0-9_-].
func isTokenChars(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Webhook is a parsed, validated Discord webhook. Its Token is secret: a
// Webhook prints, formats and logs as its id only.
type Webhook struct {
	// ID is the webhook's snowflake id. It is not secret.
	ID string
	// Token authorizes executing the webhook. It is secret.
	Token string

	scheme   string // "https", or "http" when DiscordConfig.AllowHTTP
	host     string // lower-case host, with the port if the URL had one
	threadID string // thread_id query parameter, numeric, or ""
}

// String implements fmt.Stringer, without the token.
func (w Webhook) String() string { return "discord webhook " + w.ID }

// GoString implements fmt.GoStringer, without the token.
func (w Webhook) GoString() string { return w.String() }

// Format implements fmt.Formatter: every verb prints String().
func (w Webhook) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, w.String()) }

// LogValue implements slog.LogValuer: the id only.
func (w Webhook) LogValue() slog.Value { return slog.GroupValue(slog.String("id", w.ID)) }

// endpoint is the URL Send posts to: always the versioned v10 form, whose 429
// retry_after is in seconds (the unversioned URL Discord hands out runs an old
// API version that used milliseconds), with thread_id kept.
func (w Webhook) endpoint() string {
	u := url.URL{Scheme: w.scheme, Host: w.host, Path: "/api/v10/webhooks/" + w.ID + "/" + w.Token}
	if u.Scheme == "" {
		u.Scheme = "https"
	}
	if u.Host == "" {
		u.Host = DefaultDiscordHosts[0]
	}
	if w.threadID != "" {
		u.RawQuery = "thread_id=" + w.threadID
	}
	return u.String()
}

// ParseWebhook validates raw as a Discord webhook URL this relay may post to
// and returns its parts. raw must be https (http only with AllowHTTP), on an
// allowed host (exact, case-insensitive match of the host name) without a
// port (443 is dropped; any port only with AllowHTTP, for fakes), without user info or fragment, with the path
// /api/webhooks/{id}/{token} or /api/v{N}/webhooks/{id}/{token} (a trailing
// slash allowed), a numeric id, a token of [A-Za-z0-9_-], and no query other
// than a numeric thread_id (kept) and wait=true|false (dropped: Herald needs
// no message back). The /slack and /github forms, which take other
// services' payloads, are refused saying so.
//
// Errors wrap ErrInvalidTarget and herald.ErrPermanent, say what is wrong, and
// never include raw.
func (d *Discord) ParseWebhook(raw string) (Webhook, error) {
	if raw == "" {
		return Webhook{}, invalidTarget("discord webhook URL is empty")
	}
	if len(raw) > maxWebhookURL {
		return Webhook{}, invalidTarget("discord webhook URL is too long")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" {
		// url.Parse's error quotes the input: never wrap it.
		return Webhook{}, invalidTarget("not a Discord webhook URL")
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "https":
	case scheme == "http" && d.cfg.AllowHTTP:
	default:
		return Webhook{}, invalidTarget("webhook URL must use https")
	}
	if u.User != nil {
		return Webhook{}, invalidTarget("webhook URL must not contain user info")
	}
	if !d.allowedHost(u.Hostname()) {
		return Webhook{}, invalidTarget("webhook host is not an allowed Discord host")
	}
	host := strings.ToLower(u.Hostname())
	switch port := u.Port(); {
	case port == "" || port == "443" && scheme == "https":
		// Discord's own: the key and the endpoint carry no port.
	case d.cfg.AllowHTTP:
		host = strings.ToLower(u.Host) // a fake on loopback (tests)
	default:
		// Real webhook URLs never carry a port, and one that Discord does
		// not answer on would hold a worker until the send timeout.
		return Webhook{}, invalidTarget("webhook URL must not carry a port: Discord answers on the https port only")
	}
	if u.Fragment != "" || u.RawFragment != "" || strings.Contains(raw, "#") {
		return Webhook{}, invalidTarget("not a Discord webhook URL: it has a fragment")
	}
	// RawPath is set when the path has escapes that decode differently; a real
	// webhook path has none.
	if u.RawPath != "" {
		return Webhook{}, invalidTarget("not a Discord webhook URL")
	}
	// A trailing slash is how many people paste the URL; Discord takes it.
	path := strings.TrimSuffix(u.Path, "/")
	for _, suffix := range []string{"/slack", "/github"} {
		if base, ok := strings.CutSuffix(path, suffix); ok {
			if _, _, ok := matchWebhookPath(base); ok {
				return Webhook{}, invalidTarget(fmt.Sprintf("webhook URLs ending in %s take that service's message format, not Herald's: use the URL without %s", suffix, suffix))
			}
		}
	}
	id, token, ok := matchWebhookPath(path)
	if !ok {
		return Webhook{}, invalidTarget("not a Discord webhook URL: the path must be /api/webhooks/{numeric id}/{token}")
	}
	w := Webhook{ID: id, Token: token, scheme: scheme, host: host}
	if u.RawQuery != "" || u.ForceQuery {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return Webhook{}, invalidTarget("webhook URL has a malformed query")
		}
		for k, vs := range q {
			switch {
			case len(vs) != 1:
				return Webhook{}, invalidTarget("webhook URL repeats its " + queryName(k) + " parameter")
			case k == "thread_id":
				if !isDigits(vs[0], 20) {
					return Webhook{}, invalidTarget("webhook thread_id must be one numeric id")
				}
				w.threadID = vs[0]
			case k == "wait":
				// Discord then answers 200 with the message instead of 204;
				// Herald has no use for it, so the endpoint drops it.
				if v := strings.ToLower(vs[0]); v != "true" && v != "false" {
					return Webhook{}, invalidTarget("webhook wait parameter must be true or false")
				}
			default:
				return Webhook{}, invalidTarget("webhook URL may carry no query parameter other than thread_id and wait")
			}
		}
	}
	return w, nil
}

// queryName is a query parameter's name for an error text: a known one, or
// "query" (a name could be anything the sender typed).
func queryName(k string) string {
	if k == "thread_id" || k == "wait" {
		return k
	}
	return "query"
}

func (d *Discord) allowedHost(host string) bool {
	_, ok := d.hosts[strings.ToLower(host)]
	return ok
}

// isDigits reports whether s is 1 to max ASCII digits.
func isDigits(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
