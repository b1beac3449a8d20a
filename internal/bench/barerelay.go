package bench

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldrelay/herald/crypto"
)

// BareRelay is the least a relay of Streaky's notifications can do, the way
// Streaky's own Rust proxy does it: check the secret, decode the body, open
// the webhook, POST the message to Discord and answer with the outcome. It
// stores nothing, retries nothing, paces nothing: a job is lost when the
// relay or Discord fails. The suite (RunSuite) measures Herald's default
// path against it; `herald bench relay` serves it as a child process.
type BareRelay struct {
	keys   *crypto.Keyring
	secret string
	client *http.Client
}

// NewBareRelay returns a BareRelay opening webhooks with keys and accepting
// requests that carry secret in X-API-Secret.
func NewBareRelay(keys *crypto.Keyring, secret string) *BareRelay {
	return &BareRelay{keys: keys, secret: secret, client: newHTTPClient(1024)}
}

// bareRequest is Streaky's /send-notification body (Discord only).
type bareRequest struct {
	Type             string `json:"type"`
	EncryptedWebhook string `json:"encrypted_webhook"`
	Message          struct {
		Username      string `json:"username"`
		CurrentStreak int    `json:"current_streak"`
		Message       string `json:"message"`
	} `json:"message"`
}

// bareEmbed is the message the proxy sends: one embed with the text and
// two fields.
type bareEmbed struct {
	Title       string       `json:"title"`
	Description string       `json:"description"`
	Color       int          `json:"color"`
	Fields      []bareField  `json:"fields"`
	Footer      bareFooterJS `json:"footer"`
	Timestamp   string       `json:"timestamp"`
}

type bareField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type bareFooterJS struct {
	Text string `json:"text"`
}

func (b *BareRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/readyz" || r.URL.Path == "/health":
		w.WriteHeader(http.StatusOK)
		return
	case r.URL.Path != "/send-notification" || r.Method != http.MethodPost:
		http.NotFound(w, r)
		return
	case subtle.ConstantTimeCompare([]byte(r.Header.Get("X-API-Secret")), []byte(b.secret)) != 1:
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFakeBody))
	if err != nil {
		return
	}
	var req bareRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Type != "discord" {
		http.Error(w, "malformed request", http.StatusBadRequest)
		return
	}
	webhook, err := b.keys.Open(req.EncryptedWebhook)
	if err != nil {
		bareAnswer(w, errors.New("Decryption failed"))
		return
	}
	msg, _ := json.Marshal(struct {
		Username string      `json:"username"`
		Embeds   []bareEmbed `json:"embeds"`
	}{
		Username: "Streaky Bot",
		Embeds: []bareEmbed{{
			Title:       "⚠️ GitHub Streak Alert",
			Description: req.Message.Message,
			Color:       16739947,
			Fields: []bareField{
				{Name: "👤 GitHub Username", Value: req.Message.Username, Inline: true},
				{Name: "🔥 Current Streak", Value: strconv.Itoa(req.Message.CurrentStreak) + " days", Inline: true},
			},
			Footer:    bareFooterJS{Text: "Streaky - Never lose your GitHub streak"},
			Timestamp: time.Now().UTC().Format(time.RFC3339),
		}},
	})
	post, err := http.NewRequestWithContext(r.Context(), http.MethodPost, webhook, bytes.NewReader(msg))
	if err != nil {
		bareAnswer(w, errors.New("Invalid webhook URL"))
		return
	}
	post.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(post)
	if err != nil {
		bareAnswer(w, errors.New("Discord request failed"))
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		bareAnswer(w, errors.New("Discord API error: "+resp.Status))
		return
	}
	bareAnswer(w, nil)
}

// bareAnswer writes the proxy's JSON answer.
func bareAnswer(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err == nil {
		_, _ = io.WriteString(w, `{"success":true,"error":null}`)
		return
	}
	msg, _ := json.Marshal(err.Error())
	_, _ = io.WriteString(w, `{"success":false,"error":`+string(msg)+`}`)
}

// Serve serves the relay on ln until ctx ends.
func (b *BareRelay) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
