package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseMemory(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"", 0, ""},
		{"0", 0, ""},
		{"536870912", 512 << 20, ""},
		{"512MiB", 512 << 20, ""},
		{"512M", 512 << 20, ""},
		{"512 mib", 512 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"0.5GiB", 512 << 20, ""},
		{"500MB", 500e6, ""},
		{"64KiB", 64 << 10, ""},
		{"lots", 0, "want a size"},
		{"5 parsecs", 0, "unknown unit"},
		{"-1MiB", 0, "want a size"},
	} {
		got, err := ParseMemory(tc.in)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseMemory(%q) = %d, %v; want an error saying %q", tc.in, got, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestLimits(t *testing.T) {
	if s := (Limits{CPUs: 0.1, Memory: 512 << 20}).String(); s != "0.1 CPU, 512 MiB" {
		t.Errorf("String = %q", s)
	}
	if s := (Limits{}).String(); s != "" {
		t.Errorf("zero String = %q", s)
	}
	for _, tc := range []struct {
		l       Limits
		wantErr string
	}{
		{Limits{CPUs: 0.1, Memory: 512 << 20}, ""},
		{Limits{CPUs: 0.001}, "below 0.01"},
		{Limits{CPUs: -1}, "negative"},
		{Limits{Memory: 1 << 20}, "below 16 MiB"},
	} {
		err := tc.l.validate()
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("validate(%+v) = %v, want %q", tc.l, err, tc.wantErr)
		}
	}
	if err := (Config{Executable: "herald", Idle: -time.Second}).Validate(); err == nil || !strings.Contains(err.Error(), "idle") {
		t.Errorf("negative idle: %v, want refused", err)
	}
	cfg := Config{Executable: "herald", URL: "http://127.0.0.1:1", Key: "k", Secret: "s", Limits: Limits{CPUs: 0.1}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "no url") {
		t.Errorf("limits on a running Herald: %v, want refused", err)
	}
}
