package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/crypto"
	"github.com/heraldrelay/herald/internal/testkit"
)

const (
	testKey    = "0123456789abcdef0123456789abcdef"
	testSecret = "bench-test-secret"
)

// toyRelay stands in for a running Herald in URL mode: it opens the sealed
// webhook and posts the text to it before answering. It can misbehave on
// purpose: drop a job it accepted, deliver one twice, refuse one.
type toyRelay struct {
	keys                *crypto.Keyring
	drop, twice, refuse string // text suffixes ("-3") of the jobs concerned
	client              *http.Client
}

func newToyRelay(t *testing.T, r *toyRelay) string {
	t.Helper()
	r.keys = testkit.Keyring(t, testKey)
	r.client = &http.Client{Timeout: 5 * time.Second}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv.URL
}

func (r *toyRelay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/readyz" {
		return
	}
	if req.Header.Get("X-API-Secret") != testSecret {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var body struct {
		EncryptedWebhook string `json:"encrypted_webhook"`
		Credentials      struct {
			Webhook string `json:"webhook"`
		} `json:"credentials"`
		Message struct {
			Text    string `json:"text"`
			Message string `json:"message"`
		} `json:"message"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sealed, text := body.Credentials.Webhook, body.Message.Text
	if req.URL.Path == "/send-notification" {
		sealed, text = body.EncryptedWebhook, body.Message.Message
	}
	webhook, err := r.keys.Open(sealed)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.refuse != "" && strings.HasSuffix(text, r.refuse) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	sends := 1
	switch {
	case r.drop != "" && strings.HasSuffix(text, r.drop):
		sends = 0
	case r.twice != "" && strings.HasSuffix(text, r.twice):
		sends = 2
	}
	for range sends {
		msg, _ := json.Marshal(map[string]any{"embeds": []any{map[string]any{"description": text}}})
		resp, err := r.client.Post(webhook, "application/json", bytes.NewReader(msg))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if req.URL.Path == "/send-notification" {
		_, _ = io.WriteString(w, `{"success":true,"error":null}`)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"id":"x","status":"queued"}`)
}

func runAgainst(t *testing.T, url string, via Via, jobs int, drain time.Duration) *Report {
	t.Helper()
	r, err := Run(context.Background(), Config{
		URL: url, Key: testKey, Secret: testSecret, Via: via,
		Jobs: jobs, Concurrency: 4, Webhooks: 3, DrainTimeout: drain,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

func TestRunAccountsForEveryJob(t *testing.T) {
	for _, via := range []Via{ViaAPI, ViaStreaky} {
		t.Run(string(via), func(t *testing.T) {
			url := newToyRelay(t, &toyRelay{})
			r := runAgainst(t, url, via, 120, 10*time.Second)
			if r.Sent != 120 || r.Accepted != 120 || r.Delivered != 120 || r.Lost != 0 || r.Duplicates != 0 ||
				r.Unexpected != 0 || r.DeliveredUnaccepted != 0 || len(r.Refused) != 0 {
				t.Fatalf("report %+v", r)
			}
			if r.Destination.Delivered != 120 || r.Destination.Foreign != 0 || r.Destination.Refused != 0 {
				t.Errorf("the fake saw %+v", r.Destination)
			}
			if r.DeliveryLatency.Count != 120 || r.HTTPLatency.Count != 120 || r.AcceptedPerSecond <= 0 || r.DeliveredPerSecond <= 0 {
				t.Errorf("figures: %+v %+v %v %v", r.DeliveryLatency, r.HTTPLatency, r.AcceptedPerSecond, r.DeliveredPerSecond)
			}
			if r.Herald != nil || r.Baseline != nil || r.BaselineSkipped != "no NATS URL" || r.Run.Target != url {
				t.Errorf("remote run without pid or NATS: herald %v baseline %v (%q), target %q", r.Herald, r.Baseline, r.BaselineSkipped, r.Run.Target)
			}
			if err := r.LostError(); err != nil {
				t.Errorf("LostError = %v", err)
			}
		})
	}
}

func TestRunFindsLossesDuplicatesAndRefusals(t *testing.T) {
	url := newToyRelay(t, &toyRelay{drop: "-3", twice: "-5", refuse: "-7"})
	r := runAgainst(t, url, ViaAPI, 10, 300*time.Millisecond)
	if r.Sent != 10 || r.Accepted != 9 || r.Delivered != 8 || r.Lost != 1 || r.Duplicates != 1 || r.Refused["503"] != 1 {
		t.Fatalf("report: sent %d accepted %d delivered %d lost %d duplicates %d refused %v",
			r.Sent, r.Accepted, r.Delivered, r.Lost, r.Duplicates, r.Refused)
	}
	if len(r.LostSample) != 1 || !strings.HasSuffix(r.LostSample[0], "-3") {
		t.Errorf("lost sample %v, want job 3", r.LostSample)
	}
	err := r.LostError()
	if !errors.Is(err, errLost) || !strings.Contains(err.Error(), "1 of 9") {
		t.Errorf("LostError = %v", err)
	}
}

func TestRunRefusesBadConfigBeforeStarting(t *testing.T) {
	if _, err := Run(context.Background(), Config{Via: "smtp"}); err == nil {
		t.Fatal("Run accepted an invalid config")
	}
	_, err := Run(context.Background(), Config{URL: "http://127.0.0.1:1", Key: "tiny-key-value", Secret: testSecret})
	if err == nil || strings.Contains(err.Error(), "tiny-key-value") {
		t.Fatalf("bad key: %v (must fail without quoting the key)", err)
	}
}

func TestParentEnvDropsHeraldSettings(t *testing.T) {
	got := parentEnv([]string{"PATH=/bin", "HERALD_NATS_URL=nats://elsewhere", "ENCRYPTION_KEY=k", "VPS_SECRET=s", "PORT=80", "HOME=/h", "HERALDRY=kept"})
	if fmt.Sprint(got) != "[PATH=/bin HOME=/h HERALDRY=kept]" {
		t.Errorf("parentEnv = %v", got)
	}
}
