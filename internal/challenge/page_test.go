package challenge

import (
	"bytes"
	"strings"
	"testing"
)

func TestPageEscapesWhatItShows(t *testing.T) {
	page, err := parsePage()
	if err != nil {
		t.Fatal(err)
	}
	evil := `</script><script>alert(1)</script>"'&`
	var buf bytes.Buffer
	err = page.Execute(&buf, pageData{
		Nonce:      `n"onload="x`,
		RetryAfter: 3,
		Challenge:  &pageChallenge{ID: evil, Seed: evil, Difficulty: 4, VerifyURL: evil},
		Expected:   evil,
	})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "<script>alert(1)") || strings.Contains(out, `"onload="`) {
		t.Errorf("page holds unescaped input:\n%s", out)
	}
	// The page loads nothing from anywhere: no src or href attributes.
	for _, attr := range []string{" src=", " href=", "@import", "url("} {
		if strings.Contains(out, attr) {
			t.Errorf("page refers to an outside resource (%s)", attr)
		}
	}
}

func TestPageWithoutChallengeRefreshes(t *testing.T) {
	page, _ := parsePage()
	var buf bytes.Buffer
	if err := page.Execute(&buf, pageData{Nonce: "n", RetryAfter: 7}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, `<meta http-equiv="refresh" content="7">`) || strings.Contains(out, "<script") {
		t.Errorf("page without a challenge:\n%s", out)
	}
}
