package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

// fakeWebhookPath is a Discord webhook path, versioned or not, with an
// optional trailing slash.
var fakeWebhookPath = regexp.MustCompile(`^/api/(?:v[0-9]+/)?webhooks/([0-9]+)/[A-Za-z0-9_-]+/?$`)

// newFakeDiscordCmd is `herald fake-discord`: a stand-in for Discord on this
// machine, to try Herald without an account or a network. It accepts any
// webhook, answers 204 as Discord does, and prints each message it receives
// (never the token).
func newFakeDiscordCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "fake-discord",
		Short: "Run a local stand-in for Discord that prints the messages it receives",
		Long: `Run a local stand-in for Discord, to try Herald offline. Every webhook URL
http://<listen>/api/webhooks/<numeric id>/<token> is accepted: the message is
printed (webhook id, title, text, fields; never the token) and answered 204,
as Discord does. Herald must be allowed to send there:
channels.discord.allowed_hosts must list its host and channels.discord.allow_http
be true (see the README's "Try it in one minute").`,
		Example: `  herald fake-discord --listen 127.0.0.1:9999`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "fake Discord on http://%s: webhook URLs look like http://%s/api/webhooks/1/any-token\n", ln.Addr(), ln.Addr())
			srv := &http.Server{Handler: fakeDiscord(out), ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9999", "listen address")
	return cmd
}

// fakeDiscord is the handler of `herald fake-discord`.
func fakeDiscord(out io.Writer) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := fakeWebhookPath.FindStringSubmatch(r.URL.Path)
		if m == nil || r.Method != http.MethodPost {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"message": "404: Not Found", "code": 0}`)
			return
		}
		var msg struct {
			Username string `json:"username"`
			Content  string `json:"content"`
			Embeds   []struct {
				Title       string `json:"title"`
				Description string `json:"description"`
				Fields      []struct {
					Name  string `json:"name"`
					Value string `json:"value"`
				} `json:"fields"`
			} `json:"embeds"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&msg); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"message": "Cannot send an empty message", "code": 50006}`)
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s webhook %s", time.Now().Format("15:04:05"), m[1])
		if msg.Username != "" {
			fmt.Fprintf(&b, " as %q", msg.Username)
		}
		if msg.Content != "" {
			fmt.Fprintf(&b, ": %s", msg.Content)
		}
		for _, e := range msg.Embeds {
			fmt.Fprintf(&b, ": %s", strings.TrimSpace(e.Title+" "+e.Description))
			for _, f := range e.Fields {
				fmt.Fprintf(&b, " [%s: %s]", f.Name, f.Value)
			}
		}
		mu.Lock()
		fmt.Fprintln(out, b.String())
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
}
