package challenge

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"
)

//go:embed page.html
var pageSource string

func parsePage() (*template.Template, error) {
	t, err := template.New("page").Parse(pageSource)
	if err != nil {
		return nil, fmt.Errorf("challenge: page template: %w", err)
	}
	return t, nil
}

// pageChallenge is what the page's script needs to solve and verify.
type pageChallenge struct {
	ID         string `json:"id"`
	Seed       string `json:"seed"`
	Difficulty int    `json:"difficulty"`
	VerifyURL  string `json:"verify_url"`
	// Reload says the page answered a GET (or HEAD), which may simply be
	// reloaded; any other method is continued with a GET of the same URL.
	Reload bool `json:"reload"`
}

type pageData struct {
	Nonce      string         // the CSP nonce of the inline script and style
	RetryAfter int            // seconds
	Challenge  *pageChallenge // nil when none was issued
	Expected   string         // hashes tried on average, spelled out
	// When no challenge was issued: how long to wait, in words, and the
	// time to come back (UTC).
	Wait   string
	BackAt string
}

// writePage writes the HTML 429: a page that solves c in Web Workers, posts
// the solution and continues to the page asked for. Everything is inline; the
// Content-Security-Policy allows only the page's own nonce-tagged script and
// style, workers from blob: URLs and requests to the same origin.
func (s *Service) writePage(w http.ResponseWriter, r *http.Request, c *Challenge, retryAfter int) {
	nonceRaw := make([]byte, 16)
	rand.Read(nonceRaw)
	d := pageData{Nonce: b64.EncodeToString(nonceRaw), RetryAfter: retryAfter,
		Wait:   spellWait(retryAfter),
		BackAt: s.cfg.Now().Add(time.Duration(retryAfter) * time.Second).UTC().Format("15:04:05 UTC"),
	}
	if c != nil {
		d.Challenge = &pageChallenge{
			ID: c.ID, Seed: c.Seed, Difficulty: c.Difficulty, VerifyURL: c.VerifyURL,
			Reload: r.Method == http.MethodGet || r.Method == http.MethodHead,
		}
		d.Expected = groupDigits(1 << (4 * c.Difficulty))
	}
	var buf bytes.Buffer
	if err := s.page.Execute(&buf, d); err != nil {
		s.log.Error("challenge: render page", "err", err)
		http.Error(w, "Too many requests; retry later.", http.StatusTooManyRequests)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", fmt.Sprintf("default-src 'none'; script-src 'nonce-%[1]s'; style-src 'nonce-%[1]s'; "+
		"worker-src blob:; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'", d.Nonce))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(buf.Bytes())
}

// spellWait spells a wait of secs seconds: in seconds up to a minute and a
// half, else in whole minutes, rounded up.
func spellWait(secs int) string {
	switch {
	case secs == 1:
		return "1 second"
	case secs < 90:
		return strconv.Itoa(secs) + " seconds"
	}
	return "about " + strconv.Itoa((secs+59)/60) + " minutes"
}

// groupDigits spells n with thousands separators.
func groupDigits(n int) string {
	s := strconv.Itoa(n)
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}
