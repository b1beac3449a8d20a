package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFakeDiscordPrintsMessagesNotTokens(t *testing.T) {
	var out bytes.Buffer
	srv := httptest.NewServer(fakeDiscord(&out))
	defer srv.Close()
	post := func(path, body string) int {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/api/v10/webhooks/42/secret-token-x", `{"username":"bot","embeds":[{"title":"Hi","description":"there","fields":[{"name":"a","value":"b"}]}]}`); code != http.StatusNoContent {
		t.Errorf("message: %d, want 204", code)
	}
	if code := post("/api/webhooks/42/secret-token-x/", `{"content":"plain"}`); code != http.StatusNoContent {
		t.Errorf("trailing slash: %d, want 204", code)
	}
	if code := post("/api/channels/1/messages", `{}`); code != http.StatusNotFound {
		t.Errorf("not a webhook: %d, want 404", code)
	}
	if code := post("/api/webhooks/42/tok", `not json`); code != http.StatusBadRequest {
		t.Errorf("not JSON: %d, want 400", code)
	}
	got := out.String()
	for _, want := range []string{`webhook 42 as "bot": Hi there [a: b]`, "webhook 42: plain"} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "secret-token-x") {
		t.Errorf("output shows the token: %q", got)
	}
}
