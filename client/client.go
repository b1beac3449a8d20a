// Package client is a small Go client for Herald's HTTP API: it sends
// notifications (POST /v1/notifications), reads their status
// (GET /v1/notifications/{id}) and, when allowed to, solves the
// proof-of-work challenge Herald attaches to a 429 answer, so that a
// rate-limited client can carry on without waiting.
//
//	c, err := client.New(client.Options{BaseURL: "https://herald.example.com", Secret: secret, SolveChallenges: true})
//	acc, err := c.Send(ctx, client.Notification{Channel: herald.ChannelDiscord,
//		Credentials: herald.Credentials{Webhook: sealed}, Message: herald.Message{Text: "hi"}}, "deploy-42")
//	st, err := c.Status(ctx, acc.ID)
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldrelay/herald"
)

// Defaults of Options.
const (
	// DefaultMaxDifficulty is the hardest challenge solved when
	// Options.MaxDifficulty is 0: 16^6 hashes, a few seconds of one core.
	DefaultMaxDifficulty = 6
	// DefaultTimeout is the timeout of the HTTP client made when
	// Options.HTTPClient is nil.
	DefaultTimeout = 30 * time.Second
	// maxBodyBytes bounds the answers read into memory.
	maxBodyBytes = 1 << 20
)

// Header names of Herald's API.
const (
	secretHeader      = "X-API-Secret"
	clearanceHeader   = "X-Herald-Clearance"
	idempotencyHeader = "Idempotency-Key"
)

// Options configures a Client.
type Options struct {
	// BaseURL is Herald's address, such as "https://herald.example.com"
	// (required).
	BaseURL string
	// Secret is the API secret, sent as X-API-Secret on Herald's API.
	Secret string
	// HTTPClient sends the requests; a client with DefaultTimeout when nil.
	HTTPClient *http.Client
	// SolveChallenges lets the client answer a 429 carrying a challenge by
	// solving it, posting the solution, keeping the clearance it earns (sent
	// as X-Herald-Clearance from then on) and retrying the request once.
	SolveChallenges bool
	// MaxDifficulty is the hardest challenge the client solves;
	// DefaultMaxDifficulty when 0. A harder one leaves the 429 as it is.
	MaxDifficulty int
}

// Client talks to one Herald. It is safe for concurrent use.
type Client struct {
	base string   // BaseURL without a trailing slash
	host *url.URL // BaseURL parsed: the clearance goes to its host only
	opts Options
	hc   *http.Client

	mu        sync.Mutex
	clearance string
}

// New returns a Client for opts.
func New(opts Options) (*Client, error) {
	base, err := url.Parse(opts.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" ||
		base.RawQuery != "" || base.Fragment != "" {
		return nil, errors.New("client: BaseURL must be an http or https URL without query")
	}
	if opts.MaxDifficulty < 0 {
		return nil, fmt.Errorf("client: max difficulty %d is negative", opts.MaxDifficulty)
	}
	if opts.MaxDifficulty == 0 {
		opts.MaxDifficulty = DefaultMaxDifficulty
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	return &Client{base: strings.TrimSuffix(opts.BaseURL, "/"), host: base, opts: opts, hc: hc}, nil
}

// Clearance returns the clearance token the client holds, or "".
func (c *Client) Clearance() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clearance
}

// Error is an answer of Herald other than a success.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is Herald's stable error code ("unauthorized", "rate_limited",
	// "used", ...), or "" when the answer had none.
	Code string
	// Message says what is wrong.
	Message string
	// RetryAfter is the answer's Retry-After, or 0.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("herald: HTTP %d", e.StatusCode)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Notification is the body of POST /v1/notifications; credentials are sealed
// (see herald encrypt, or package crypto).
type Notification struct {
	Channel     herald.Channel     `json:"channel"`
	Credentials herald.Credentials `json:"credentials"`
	Message     herald.Message     `json:"message"`
}

// Accepted is Herald's answer to a notification it stored.
type Accepted struct {
	// ID is the job id, for Status.
	ID string `json:"id"`
	// Status is "queued".
	Status herald.State `json:"status"`
	// Duplicate is true when the idempotency key was seen before: nothing
	// new was stored.
	Duplicate bool `json:"duplicate"`
}

// Send posts n to POST /v1/notifications and returns the stored job's id. A
// non-empty idempotencyKey (1-200 printable ASCII characters) makes a retry
// with the same key return the same job instead of a second one. Errors
// other than transport failures are *Error.
func (c *Client) Send(ctx context.Context, n Notification, idempotencyKey string) (Accepted, error) {
	body, err := json.Marshal(n)
	if err != nil {
		return Accepted{}, fmt.Errorf("client: encode notification: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/v1/notifications"), bytes.NewReader(body))
	if err != nil {
		return Accepted{}, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if idempotencyKey != "" {
		req.Header.Set(idempotencyHeader, idempotencyKey)
	}
	var acc Accepted
	if err := c.call(req, http.StatusAccepted, &acc); err != nil {
		return Accepted{}, err
	}
	return acc, nil
}

// Status returns the status record of job id (GET /v1/notifications/{id}).
// An unknown job is an *Error with StatusCode 404.
func (c *Client) Status(ctx context.Context, id string) (herald.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v1/notifications/"+url.PathEscape(id)), nil)
	if err != nil {
		return herald.Status{}, fmt.Errorf("client: %w", err)
	}
	var st herald.Status
	if err := c.call(req, http.StatusOK, &st); err != nil {
		return herald.Status{}, err
	}
	return st, nil
}

// call sends req through Do and decodes a want answer into out.
func (c *Client) call(req *http.Request, want int, out any) error {
	req.Header.Set("Accept", "application/json")
	if c.opts.Secret != "" {
		req.Header.Set(secretHeader, c.opts.Secret)
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBodyBytes))
	if err != nil {
		return fmt.Errorf("client: read answer: %w", err)
	}
	if res.StatusCode != want {
		return answerError(res, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: decode answer: %w", err)
	}
	return nil
}

// url is the address of path (already escaped) on Herald.
func (c *Client) url(path string) string { return c.base + path }

// answerError builds the *Error of an unsuccessful answer. Herald's API
// answers {"error":{"code","message"}}; rate limits and challenges
// {"error":"<code>","reason":"<text>"}.
func answerError(res *http.Response, body []byte) *Error {
	e := &Error{StatusCode: res.StatusCode, RetryAfter: retryAfter(res)}
	var doc struct {
		Error  json.RawMessage `json:"error"`
		Reason string          `json:"reason"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return e
	}
	var nested struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(doc.Error, &e.Code) != nil && json.Unmarshal(doc.Error, &nested) == nil {
		e.Code, e.Message = nested.Code, nested.Message
	}
	if e.Message == "" {
		e.Message = doc.Reason
	}
	return e
}

func retryAfter(res *http.Response) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(res.Header.Get("Retry-After")))
	if err != nil || s < 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}
