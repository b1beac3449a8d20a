package channels

import (
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldrelay/herald"
)

// Discord's embed limits, in characters (FACTS.md; Discord counts code points).
const (
	discordMaxTitle       = 256
	discordMaxDescription = 4096
	discordMaxFields      = 25
	discordMaxFieldName   = 256
	discordMaxFieldValue  = 1024
	discordMaxFooter      = 2048
	discordMaxEmbedTotal  = 6000 // title + description + field names and values + footer
	discordMaxUsername    = 80
)

// discordPayload is the webhook execute body: the same shape Streaky's proxy
// sends (username and one embed, no content).
type discordPayload struct {
	Username string         `json:"username,omitempty"`
	Embeds   []discordEmbed `json:"embeds"`
}

type discordEmbed struct {
	Title       string         `json:"title,omitempty"`
	Description string         `json:"description,omitempty"`
	URL         string         `json:"url,omitempty"`
	Color       *int           `json:"color,omitempty"`
	Fields      []discordField `json:"fields,omitempty"`
	Footer      *discordFooter `json:"footer,omitempty"`
	Timestamp   string         `json:"timestamp,omitempty"`
}

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type discordFooter struct {
	Text string `json:"text"`
}

// discordTimestamp is RFC 3339 in UTC with milliseconds.
const discordTimestamp = "2006-01-02T15:04:05.000Z07:00"

// newDiscordPayload renders m as one embed within Discord's limits. now is
// used when m has no Timestamp.
func newDiscordPayload(m herald.Message, now time.Time) discordPayload {
	ts := now
	if m.Timestamp != nil {
		ts = *m.Timestamp
	}
	e := discordEmbed{
		Title:       truncateRunes(m.Title, discordMaxTitle),
		Description: truncateRunes(m.Text, discordMaxDescription),
		URL:         safeLink(m.URL),
		Timestamp:   ts.UTC().Format(discordTimestamp),
	}
	if c := m.Color; c != nil && *c >= 0 && *c <= 0xFFFFFF {
		v := *c
		e.Color = &v
	}
	fields := m.Fields
	if len(fields) > discordMaxFields {
		fields = fields[:discordMaxFields]
	}
	for _, f := range fields {
		e.Fields = append(e.Fields, discordField{
			Name:   truncateRunes(f.Name, discordMaxFieldName),
			Value:  truncateRunes(f.Value, discordMaxFieldValue),
			Inline: f.Inline,
		})
	}
	if m.Footer != "" {
		e.Footer = &discordFooter{Text: truncateRunes(m.Footer, discordMaxFooter)}
	}
	fitEmbed(&e)
	return discordPayload{Username: discordUsername(m.Username), Embeds: []discordEmbed{e}}
}

// size is what Discord counts against the 6000-character total.
func (e *discordEmbed) size() int {
	n := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description)
	for _, f := range e.Fields {
		n += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
	}
	if e.Footer != nil {
		n += utf8.RuneCountInString(e.Footer.Text)
	}
	return n
}

// fitEmbed shrinks e to discordMaxEmbedTotal characters: the description
// first, then field values (last field first), footer, field names, title.
// Field names and values keep at least "…", since Discord refuses empty ones.
func fitEmbed(e *discordEmbed) {
	shrink := func(s *string, min int) {
		over := e.size() - discordMaxEmbedTotal
		if over <= 0 {
			return
		}
		n := utf8.RuneCountInString(*s)
		*s = truncateRunes(*s, max(min, n-over))
	}
	shrink(&e.Description, 0)
	for i := len(e.Fields) - 1; i >= 0; i-- {
		shrink(&e.Fields[i].Value, 1)
	}
	if e.Footer != nil {
		shrink(&e.Footer.Text, 0)
		if e.Footer.Text == "" {
			e.Footer = nil
		}
	}
	for i := len(e.Fields) - 1; i >= 0; i-- {
		shrink(&e.Fields[i].Name, 1)
	}
	shrink(&e.Title, 0)
}

// discordUsername returns the webhook username override, or "" (use the
// webhook's own name) when Discord would refuse it: webhook names may not
// contain "clyde" or "discord", and are 1 to 80 characters.
func discordUsername(s string) string {
	s = strings.TrimSpace(s)
	low := strings.ToLower(s)
	if strings.Contains(low, "clyde") || strings.Contains(low, "discord") {
		return ""
	}
	return truncateRunes(s, discordMaxUsername)
}

// safeLink returns raw when it is an absolute http(s) URL with a host, else "".
// Both Discord (embed url) and Telegram (<a href>) refuse anything else.
func safeLink(raw string) string {
	if raw == "" || len(raw) > 2048 {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return ""
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return raw
	}
	return ""
}
