package herald_test

import (
	"testing"

	"github.com/heraldrelay/herald"
)

func TestJobIDSubject(t *testing.T) {
	if got := herald.JobIDSubject(herald.ChannelDiscord, "ab-1_Z"); got != "herald.jobs.discord.ab-1_Z" {
		t.Errorf("JobIDSubject = %q", got)
	}
	if got := herald.JobIDSubjectPattern("ab-1_Z"); got != "herald.jobs.*.ab-1_Z" {
		t.Errorf("JobIDSubjectPattern = %q", got)
	}
}

func TestSubjectChannel(t *testing.T) {
	tests := []struct {
		subject string
		want    herald.Channel
	}{
		{"herald.jobs.discord", herald.ChannelDiscord},
		{"herald.jobs.telegram.01hzy3k9", herald.ChannelTelegram},
		{"herald.jobs.discord.a.b", herald.ChannelDiscord},
		{"herald.jobs.pigeon", "pigeon"},
		{"herald.jobs.", ""},
		{"herald.dlq.discord", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := herald.SubjectChannel(tt.subject); got != tt.want {
			t.Errorf("SubjectChannel(%q) = %q, want %q", tt.subject, got, tt.want)
		}
	}
}
