package channels

import (
	"strings"
	"unicode/utf8"

	"github.com/heraldrelay/herald"
)

// telegramMaxText is Telegram's limit on a message's text after entity
// parsing. Telegram counts UTF-16 code units, so this package does too.
const telegramMaxText = 4096

var (
	htmlText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	htmlAttr = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
)

// telegramParts is a message's visible pieces, unescaped, before rendering.
type telegramParts struct {
	title, href, text, footer string
	fields                    []telegramField
}

type telegramField struct{ icon, name, value string }

// renderTelegramHTML renders m for parse_mode HTML:
//
//	<b>Title</b>                       (<b><a href="URL">Title</a></b> with an http(s) URL)
//
//	Text
//
//	Icon <b>Name:</b> Value            (one line per field; "Icon " only when set)
//
//	<i>Footer</i>
//
// Empty parts and their blank lines are left out. Every piece is escaped (<, >
// and &; also " in the href), and pieces are cut before escaping, so tags stay
// balanced and no escape is ever split. The visible text fits
// telegramMaxText UTF-16 units: the text is cut first (ending in "…"), then
// field values, the footer, field names, whole fields, the title.
func renderTelegramHTML(m herald.Message) string {
	p := telegramParts{title: m.Title, href: safeLink(m.URL), text: m.Text, footer: m.Footer}
	for _, f := range m.Fields {
		p.fields = append(p.fields, telegramField{icon: f.Icon, name: f.Name, value: f.Value})
	}
	p.fit(telegramMaxText)
	return p.html()
}

// visibleLen is the length, in UTF-16 units, of the text Telegram shows once
// it has parsed html(): the same layout without tags, escapes unescaped.
func (p *telegramParts) visibleLen() int {
	total, sections := 0, 0
	if p.title != "" {
		total += utf16Len(p.title)
		sections++
	}
	if p.text != "" {
		total += utf16Len(p.text)
		sections++
	}
	if len(p.fields) > 0 {
		for i, f := range p.fields {
			if i > 0 {
				total++ // "\n"
			}
			if f.icon != "" {
				total += utf16Len(f.icon) + 1 // icon + " "
			}
			total += utf16Len(f.name) + 2 + utf16Len(f.value) // name + ": " + value
		}
		sections++
	}
	if p.footer != "" {
		total += utf16Len(p.footer)
		sections++
	}
	if sections > 1 {
		total += 2 * (sections - 1) // "\n\n" between sections
	}
	return total
}

// fit cuts p until its visible text is at most limit UTF-16 units.
func (p *telegramParts) fit(limit int) {
	shrink := func(s *string, min int) {
		over := p.visibleLen() - limit
		if over <= 0 {
			return
		}
		*s = truncateUTF16(*s, max(min, utf16Len(*s)-over))
	}
	shrink(&p.text, 0)
	for i := len(p.fields) - 1; i >= 0; i-- {
		shrink(&p.fields[i].value, 1)
	}
	shrink(&p.footer, 0)
	for i := len(p.fields) - 1; i >= 0; i-- {
		shrink(&p.fields[i].name, 1)
		shrink(&p.fields[i].icon, 0)
	}
	for len(p.fields) > 0 && p.visibleLen() > limit {
		p.fields = p.fields[:len(p.fields)-1]
	}
	shrink(&p.title, 0)
}

func (p *telegramParts) html() string {
	var b strings.Builder
	b.Grow(p.visibleLen() + 64)
	sep := func() {
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
	}
	if p.title != "" {
		b.WriteString("<b>")
		if p.href != "" {
			b.WriteString(`<a href="`)
			_, _ = htmlAttr.WriteString(&b, p.href)
			b.WriteString(`">`)
			_, _ = htmlText.WriteString(&b, p.title)
			b.WriteString("</a>")
		} else {
			_, _ = htmlText.WriteString(&b, p.title)
		}
		b.WriteString("</b>")
	}
	if p.text != "" {
		sep()
		_, _ = htmlText.WriteString(&b, p.text)
	}
	if len(p.fields) > 0 {
		sep()
		for i, f := range p.fields {
			if i > 0 {
				b.WriteByte('\n')
			}
			if f.icon != "" {
				_, _ = htmlText.WriteString(&b, f.icon)
				b.WriteByte(' ')
			}
			b.WriteString("<b>")
			_, _ = htmlText.WriteString(&b, f.name)
			b.WriteString(":</b> ")
			_, _ = htmlText.WriteString(&b, f.value)
		}
	}
	if p.footer != "" {
		sep()
		b.WriteString("<i>")
		_, _ = htmlText.WriteString(&b, p.footer)
		b.WriteString("</i>")
	}
	return b.String()
}

// utf16Len is the length of s in UTF-16 code units. An invalid byte counts as
// one unit: it is sent as U+FFFD.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// truncateUTF16 shortens s to at most n UTF-16 units, ending with "…" when
// anything was cut. It cuts between runes, so no surrogate pair is split.
func truncateUTF16(s string, n int) string {
	if utf16Len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	units, i := 0, 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		w := 1
		if r >= 0x10000 {
			w = 2
		}
		if units+w > n-1 { // keep one unit for "…"
			break
		}
		units += w
		i += size
	}
	return s[:i] + "…"
}
