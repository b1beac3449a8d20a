package fake

import (
	"strings"
	"testing"
)

func TestParseTelegramHTML(t *testing.T) {
	valid := []struct{ in, visible string }{
		{"plain text", "plain text"},
		{"<b>bold</b> and <i>it</i>", "bold and it"},
		{"<B>upper</B>", "upper"},
		{`<a href="https://x.example/?a=1&amp;b=&quot;2&quot;">link</a>`, "link"},
		{`<a href='https://x.example'>single</a>`, "single"},
		{"<b><i>nested</i></b>", "nested"},
		{`<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>`, "st"},
		{"<pre><code class=\"language-go\">x</code></pre>", "x"},
		{"<blockquote expandable>q</blockquote>", "q"},
		{"&lt;script&gt; &amp; &quot; &#60; &#x3C; &#128512;", `<script> & " < < 😀`},
		{"a > b", "a > b"},
		{"", ""},
	}
	for _, tt := range valid {
		got, err := ParseTelegramHTML(tt.in)
		if err != nil || got != tt.visible {
			t.Errorf("ParseTelegramHTML(%q) = %q, %v; want %q", tt.in, got, err, tt.visible)
		}
	}
	invalid := []struct{ in, wantErr string }{
		{"<script>x</script>", `Unsupported start tag "script" at byte offset 0`},
		{"a < b", `Unsupported start tag "" at byte offset 2`},
		{"<b>open", `Can't find end tag corresponding to start tag "b"`},
		{"<b><i>x</b></i>", `Unmatched end tag at byte offset 7, expected "</i>", found "</b>"`},
		{"x</b>", "Unexpected end tag at byte offset 1"},
		{"</script>", "Unmatched end tag"},
		{"a & b", "Can't find end of the entity starting at byte offset 2"},
		{"&nbsp;", `Unsupported HTML entity "&nbsp;"`},
		{"&#xD800;", "Unsupported HTML entity"},
		{"&#0;", "Unsupported HTML entity"},
		{"<b", "Can't find end of the tag"},
		{`<a href="x>y`, "Unclosed start tag"},
		{`<a href="a & b">x</a>`, "entity in the attribute"},
		{"<b/>", "Expected equal sign"},
		{"</ b>", "Empty end tag"},
	}
	for _, tt := range invalid {
		_, err := ParseTelegramHTML(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseTelegramHTML(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestUTF16Len(t *testing.T) {
	for _, tt := range []struct {
		s string
		n int
	}{{"", 0}, {"abc", 3}, {"é", 1}, {"中", 1}, {"😀", 2}, {"⚠️", 2}, {"\xff", 1}} {
		if got := UTF16Len(tt.s); got != tt.n {
			t.Errorf("UTF16Len(%q) = %d, want %d", tt.s, got, tt.n)
		}
	}
}
