package ingest

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzStreakyDecode feeds arbitrary bodies to /send-notification: decoding
// never panics, fails only as "not JSON" (400) or "wrong shape" (422), and the
// full handler never answers 5xx.
func FuzzStreakyDecode(f *testing.F) {
	e := newTestEnv(f)
	seeds := []string{
		e.discordBody(),
		e.telegramBody(),
		`{"type":"discord","encrypted_webhook":"AAAA","message":{"username":"a","current_streak":1,"message":"m"}}`,
		`{"type":"telegram","encrypted_token":null,"message":{"username":"a","current_streak":-2147483648,"contributions_today":null,"message":""}}`,
		`{"type":"x","message":{"username":"a","current_streak":2147483648,"message":"m"}}`,
		`{"type":"discord","type":"discord"}`,
		`{"message":{"current_streak":1.0}}`,
		`{"message":[]}`,
		`[]`, `null`, `""`, `1e309`, `{`, "{\"type\":\"\xff\"}", `{"type":"\ud800"}`, ``,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := decodeStreaky(body)
		if err != nil && !errors.Is(err, errMalformedJSON) && !errors.Is(err, errWrongShape) {
			t.Fatalf("decode error of unexpected kind: %v", err)
		}
		req := httptest.NewRequest("POST", "/send-notification", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Secret", testAPISecret)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if err != nil {
			want := 400
			if errors.Is(err, errWrongShape) {
				want = 422
			}
			if rec.Code != want {
				t.Fatalf("status %d, decode says %d (%v)", rec.Code, want, err)
			}
		} else if rec.Code != 202 && rec.Code != 400 || rec.Header().Get("Content-Type") != "application/json" {
			// Stored (202), or refused by the business rules (400 JSON).
			t.Fatalf("status %d (%s) for a body that decodes", rec.Code, rec.Header().Get("Content-Type"))
		}
		assertNoSecrets(t, "response", rec.Body.String())
	})
}
