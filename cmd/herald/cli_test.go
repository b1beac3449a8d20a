package main

import (
	"context"
	"strings"
	"testing"

	"github.com/heraldrelay/herald/internal/bench"
)

// `herald --version` says what `herald version` says.
func TestVersionFlag(t *testing.T) {
	ctx := context.Background()
	want, _, err := execute(ctx, newRootCmd(envMap(nil), nil, nil), "", "version")
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := execute(ctx, newRootCmd(envMap(nil), nil, nil), "", "--version")
	if err != nil || got != want || !strings.HasPrefix(got, "herald ") {
		t.Fatalf("--version = %q, %v; want %q", got, err, want)
	}
}

// A misspelt flag is answered with the nearest flag of the command,
// inherited ones included; a flag near none gets no guess.
func TestMisspeltFlagSuggestsTheNearest(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // "" : no suggestion
	}{
		{[]string{"serve", "--confg", "c.yaml"}, "unknown flag: --confg (did you mean --config?)"},
		{[]string{"dlq", "list", "--chanel", "discord"}, "(did you mean --channel?)"},
		{[]string{"dlq", "replay", "--dry-rn"}, "(did you mean --dry-run?)"},
		{[]string{"bench", "--jbos=5"}, "(did you mean --jobs?)"},
		{[]string{"encrypt", "-key", "k"}, "(did you mean --key?)"},
		{[]string{"serve", "--zzzzzzzzzzzz"}, ""},
	} {
		_, _, err := execute(context.Background(), newRootCmd(envMap(nil), nil, nil), "", tt.args...)
		if err == nil {
			t.Errorf("%v: accepted", tt.args)
			continue
		}
		if tt.want == "" {
			if strings.Contains(err.Error(), "did you mean") {
				t.Errorf("%v: %q guesses a flag far from what was typed", tt.args, err)
			}
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %q does not say %q", tt.args, err, tt.want)
		}
	}
}

// bench --help does not give --via a default that the suite (the run
// without --via) does not use.
func TestBenchHelpOnVia(t *testing.T) {
	out, _, err := execute(context.Background(), newRootCmd(envMap(nil), nil, nil), "", "bench", "--help")
	if err != nil {
		t.Fatal(err)
	}
	var via string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "--via string") {
			via = line
		}
	}
	if via == "" {
		t.Fatalf("no --via in:\n%s", out)
	}
	if strings.Contains(via, "(default") {
		t.Errorf("--via shows a default, yet without --via the suite runs: %s", via)
	}
	for _, want := range []string{"the suite runs", "a single run goes through streaky with --streaky-wait, else through api", "--ingest-only through streaky"} {
		if !strings.Contains(via, want) {
			t.Errorf("--via help lacks %q: %s", want, via)
		}
	}
}

// --streaky-wait alone sends the jobs in through the Streaky endpoint, the
// only one a wait applies to; --via still wins.
func TestBenchStreakyWaitGoesInThroughStreaky(t *testing.T) {
	for _, tt := range []struct {
		via                         bench.Via
		viaGiven, waitGiven, ingest bool
		want                        bench.Via
	}{
		{"", false, true, false, bench.ViaStreaky},
		{bench.ViaAPI, true, true, false, bench.ViaAPI},
		{"", false, false, false, ""},
		{"", false, true, true, ""},
		{bench.ViaNATS, true, false, false, bench.ViaNATS},
	} {
		if got := benchVia(tt.via, tt.viaGiven, tt.waitGiven, tt.ingest); got != tt.want {
			t.Errorf("benchVia(%q, via given %v, wait given %v, ingest-only %v) = %q, want %q", tt.via, tt.viaGiven, tt.waitGiven, tt.ingest, got, tt.want)
		}
	}
}
