package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

// startBareRelay serves a BareRelay on loopback until the test ends.
func startBareRelay(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewBareRelay(testkit.Keyring(t, testKey), testSecret).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// The bare relay delivers every job it answers success for, once.
func TestBareRelayDeliversEveryJob(t *testing.T) {
	url := startBareRelay(t)
	r := runAgainst(t, url, ViaStreaky, 120, 10*time.Second)
	if r.Sent != 120 || r.Accepted != 120 || r.Delivered != 120 || r.Lost != 0 || r.Duplicates != 0 || len(r.Refused) != 0 {
		t.Fatalf("report %+v", r)
	}
}

func TestBareRelayAnswersLikeTheProxy(t *testing.T) {
	url := startBareRelay(t)
	dest, err := NewDestination(DestinationConfig{Listen: "127.0.0.1:0", Marker: "m-"})
	if err != nil {
		t.Fatal(err)
	}
	defer dest.Close()
	keys := testkit.Keyring(t, testKey)
	seal := func(s string) string { return testkit.Seal(t, keys, s) }
	body := func(sealed string) string {
		return `{"type":"discord","encrypted_webhook":"` + sealed + `","message":{"username":"u","current_streak":3,"message":"m-1"}}`
	}
	bad := strings.Replace(dest.WebhookURL(0), "/api/webhooks/", "/api/webhooks/9", 1)
	tests := []struct {
		name, secret, body string
		status             int
		answer             string
	}{
		{"delivered", testSecret, body(seal(dest.WebhookURL(0))), 200, `{"success":true,"error":null}`},
		{"wrong secret", "nope", body(seal(dest.WebhookURL(0))), 401, ""},
		{"does not open", testSecret, body("garbage"), 200, `{"success":false,"error":"Decryption failed"}`},
		{"refused by Discord", testSecret, body(seal(bad)), 200, `{"success":false,"error":"Discord API error: 401 Unauthorized"}`},
		{"not JSON", testSecret, "{", 400, "malformed request\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, url+"/send-notification", strings.NewReader(tt.body))
			req.Header.Set("X-API-Secret", tt.secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || string(got) != tt.answer {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, got, tt.status, tt.answer)
			}
		})
	}
	if s := dest.Stats(); s.Delivered != 1 {
		t.Errorf("the fake received %d messages, want 1", s.Delivered)
	}
}
