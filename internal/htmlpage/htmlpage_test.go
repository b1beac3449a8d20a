package htmlpage

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriteSetsThePageHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, http.StatusTeapot, []byte("<p>hi</p>"))
	if rec.Code != http.StatusTeapot || rec.Body.String() != "<p>hi</p>" {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
	for k, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": CSP,
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}
