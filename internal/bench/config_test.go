package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		in      string
		want    RateLimit
		wantErr bool
	}{
		{"", RateLimit{}, false},
		{"0", RateLimit{}, false},
		{"5/2s", RateLimit{5, 2 * time.Second}, false},
		{" 30 / s ", RateLimit{30, time.Second}, false},
		{"30/1s", RateLimit{30, time.Second}, false},
		{"20/m", RateLimit{20, time.Minute}, false},
		{"50/500ms", RateLimit{50, 500 * time.Millisecond}, false},
		{"5", RateLimit{}, true},
		{"0/2s", RateLimit{}, true},
		{"-1/2s", RateLimit{}, true},
		{"x/2s", RateLimit{}, true},
		{"5/", RateLimit{}, true},
		{"5/0s", RateLimit{}, true},
		{"5/soon", RateLimit{}, true},
	}
	for _, tt := range tests {
		got, err := ParseRateLimit(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseRateLimit(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if s := (RateLimit{5, 2 * time.Second}).String(); s != "5/2s" {
		t.Errorf("String = %q", s)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.Via != ViaAPI || c.Jobs != DefaultJobs || c.Concurrency != DefaultConcurrency || c.Webhooks != DefaultWebhooks ||
		c.DrainTimeout != DefaultDrainTimeout || c.FakeListen != DefaultFakeListen {
		t.Errorf("defaults: %+v", c)
	}
	if c := (Config{Rate: 1000, Duration: 20 * time.Second}).withDefaults(); c.Jobs != 20000 {
		t.Errorf("rate × duration: jobs = %d, want 20000", c.Jobs)
	}
	if c := (Config{IngestOnly: true}).withDefaults(); c.Via != ViaStreaky || c.Rounds != DefaultRounds || c.Jobs != DefaultJobs {
		t.Errorf("ingest-only defaults: via %s rounds %d jobs %d", c.Via, c.Rounds, c.Jobs)
	}
	if c := (Config{IngestOnly: true, Via: ViaAPI, Rounds: 5}).withDefaults(); c.Via != ViaAPI || c.Rounds != 5 {
		t.Errorf("ingest-only settings overridden: via %s rounds %d", c.Via, c.Rounds)
	}
	if c := (Config{Duration: time.Second}).withDefaults(); c.Jobs != 0 {
		t.Errorf("duration alone, as fast as possible: jobs = %d, want 0 (unbounded)", c.Jobs)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Executable: "/bin/herald"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing to run", Config{}, "no herald executable"},
		{"bad via", Config{Executable: "h", Via: "smtp"}, "via must be"},
		{"remote without secrets", Config{URL: "http://127.0.0.1:8000"}, "encryption key and API secret"},
		{"remote nats without URL", Config{URL: "http://h", Via: ViaNATS, Key: "k"}, "NATS URL"},
		{"remote not http", Config{URL: "127.0.0.1:8000", Key: "k", Secret: "s"}, "http(s) URL"},
		{"negative rate", Config{Executable: "h", Rate: -1}, "rate"},
		{"negative repeat", Config{Executable: "h", Repeat: -1}, "repeat"},
		{"streaky wait too long", Config{Executable: "h", StreakyWait: 15 * time.Second}, "streaky wait"},
		{"env without =", Config{Executable: "h", Env: []string{"ENCRYPTION_KEY"}}, "env entry 1"},
		{"ingest only remote", Config{URL: "http://h", Key: "k", Secret: "s", IngestOnly: true}, "no url"},
		{"ingest only via nats", Config{Executable: "h", IngestOnly: true, Via: ViaNATS}, "not nats"},
		{"ingest only paced", Config{Executable: "h", IngestOnly: true, Rate: 100}, "no rate or duration"},
		{"ingest only waiting", Config{Executable: "h", IngestOnly: true, StreakyWait: time.Second}, "no streaky wait"},
		{"ingest only too few jobs", Config{Executable: "h", IngestOnly: true, Jobs: 2}, "one job per round"},
		{"ingest only no rounds", Config{Executable: "h", IngestOnly: true, Rounds: -1}, "rounds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error about %q", err, tt.want)
			}
		})
	}
}
