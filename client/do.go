package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// challenge is the "challenge" object of Herald's 429 JSON answer.
type challenge struct {
	ID         string    `json:"id"`
	Algorithm  string    `json:"algorithm"`
	Seed       string    `json:"seed"`
	Difficulty int       `json:"difficulty"`
	ExpiresAt  time.Time `json:"expires_at"`
	VerifyURL  string    `json:"verify_url"`
}

// Do sends req, adding the clearance the client holds as X-Herald-Clearance
// when req goes to Herald's host. With Options.SolveChallenges, a 429 from
// Herald's host carrying a challenge the client can solve (algorithm sha256,
// difficulty at most Options.MaxDifficulty, a verify URL on the same host) is
// solved and verified, the clearance kept, and req sent once more; its body
// must then be replayable (req.GetBody, as set by http.NewRequest for
// in-memory bodies). Otherwise the 429 is returned as it came. A refused
// verification is an error wrapping *Error. The caller closes the response
// body.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	res, err := c.send(req)
	if err != nil || res.StatusCode != http.StatusTooManyRequests || !c.opts.SolveChallenges || !c.toHerald(req.URL) {
		return res, err
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return res, nil
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBodyBytes))
	res.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("client: read 429 answer: %w", err)
	}
	res.Body = io.NopCloser(bytes.NewReader(data))
	ch, verifyURL, ok := c.solvable(req.URL, data)
	if !ok {
		return res, nil
	}
	if err := c.solve(req.Context(), verifyURL, ch); err != nil {
		return nil, err
	}
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("client: replay request body: %w", err)
		}
	}
	return c.send(retry)
}

// send sends req once, with the current clearance if it goes to Herald.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if t := c.Clearance(); t != "" && c.toHerald(req.URL) {
		req.Header.Set(clearanceHeader, t)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return res, nil
}

// toHerald reports whether u is on Herald's host.
func (c *Client) toHerald(u *url.URL) bool {
	return u.Scheme == c.host.Scheme && u.Host == c.host.Host
}

// solvable returns the challenge of a 429 body and its verify URL, when the
// client will solve it.
func (c *Client) solvable(reqURL *url.URL, body []byte) (challenge, *url.URL, bool) {
	var doc struct {
		Challenge *challenge `json:"challenge"`
	}
	if json.Unmarshal(body, &doc) != nil || doc.Challenge == nil {
		return challenge{}, nil, false
	}
	ch := *doc.Challenge
	if ch.Algorithm != "sha256" || ch.ID == "" || ch.Difficulty < 0 || ch.Difficulty > c.opts.MaxDifficulty {
		return ch, nil, false
	}
	ref, err := url.Parse(ch.VerifyURL)
	if err != nil || ch.VerifyURL == "" {
		return ch, nil, false
	}
	// The solution goes back where the challenge came from, nowhere else.
	v := reqURL.ResolveReference(ref)
	if v.Scheme != reqURL.Scheme || v.Host != reqURL.Host {
		return ch, nil, false
	}
	return ch, v, true
}

// solve finds the nonce of ch, posts it to verifyURL and keeps the clearance.
func (c *Client) solve(ctx context.Context, verifyURL *url.URL, ch challenge) error {
	nonce, err := SolveContext(ctx, ch.Seed, ch.Difficulty)
	if err != nil {
		return fmt.Errorf("client: solve challenge: %w", err)
	}
	body, _ := json.Marshal(map[string]string{"id": ch.ID, "nonce": nonce})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, verifyURL.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("client: verify challenge: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: verify challenge: %w", err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxBodyBytes))
	if err != nil {
		return fmt.Errorf("client: verify challenge: read answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("client: verify challenge: %w", answerError(res, data))
	}
	var cleared struct {
		Clearance string `json:"clearance"`
	}
	if err := json.Unmarshal(data, &cleared); err != nil || cleared.Clearance == "" {
		return fmt.Errorf("client: verify challenge: answer holds no clearance")
	}
	c.mu.Lock()
	c.clearance = cleared.Clearance
	c.mu.Unlock()
	return nil
}
