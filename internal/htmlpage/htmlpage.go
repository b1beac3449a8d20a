// Package htmlpage writes Herald's server-rendered pages (the /register
// page, the operator console) with the headers that keep them out of
// frames, caches and other sites: a strict Content-Security-Policy (no
// script, inline styles only, forms to this origin), no framing, no
// sniffing, no referrer, no caching.
package htmlpage

import "net/http"

// CSP is the pages' Content-Security-Policy.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Write answers code with body, an HTML page, and the headers above.
func Write(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
