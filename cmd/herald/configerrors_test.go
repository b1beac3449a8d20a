package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A value of the wrong kind is one line naming what the user typed (the
// variable, or the file and line) and the kind of value wanted, not the
// decoder's multi-line report on consumer.workers.
func TestConfigErrorsNameWhatWasTyped(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		want       string // the whole error, with FILE for the file's path
	}{
		{"variable, whole number", "", map[string]string{"HERALD_CONSUMER_WORKERS": "many"},
			`config: HERALD_CONSUMER_WORKERS must be a whole number (it sets consumer.workers), not "many"`},
		{"variable, duration", "", map[string]string{"HERALD_INGEST_STREAKY_WAIT": "soon"},
			`config: HERALD_INGEST_STREAKY_WAIT must be a duration such as 500ms, 30s, 5m or 1h (it sets ingest.streaky.wait), not "soon"`},
		{"variable, boolean", "", map[string]string{"HERALD_CHANNELS_DISCORD_ALLOW_HTTP": "maybe"},
			`config: HERALD_CHANNELS_DISCORD_ALLOW_HTTP must be true or false (it sets channels.discord.allow_http), not "maybe"`},
		{"file, whole number", "# workers\nconsumer:\n  workers: many\n", nil,
			`config: FILE:3: consumer.workers must be a whole number, not "many"`},
		{"file, number", "pacing:\n  hung_share: half\n", nil,
			`config: FILE:2: pacing.hung_share must be a number, not "half"`},
		{"variable out of range", "", map[string]string{"HERALD_CONSUMER_WORKERS": "0"},
			`config: HERALD_CONSUMER_WORKERS (consumer.workers): must be at least 1, not 0`},
		{"file out of range", "consumer:\n  workers: 0\n", nil,
			`config: FILE:2: consumer.workers: must be at least 1, not 0`},
		{"indentation on line 3", "http:\n  addr: \":8000\"\n   read_timeout: 5s\n", nil,
			`config: FILE:3: not valid YAML: did not find expected key`},
		{"a tab on line 2", "consumer:\n\tworkers: 2\n", nil,
			`config: FILE:2: not valid YAML: found character that cannot start any token`},
		{"a quote left open on line 2", "log:\n  level: \"info\n  format: text\n", nil,
			`config: FILE:2: not valid YAML: found unexpected end of stream`},
		{"short ENCRYPTION_KEY", "", map[string]string{"ENCRYPTION_KEY": "short-key"},
			`config: ENCRYPTION_KEY: invalid encryption key: it has 9 characters, at least 32 are needed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "c.yaml", tt.file)
			if tt.file == "" {
				path = writeFile(t, "c.yaml", "{}\n")
			}
			_, err := loadConfig(path, envMap(tt.env))
			if err == nil {
				t.Fatal("accepted")
			}
			if want := strings.ReplaceAll(tt.want, "FILE", path); err.Error() != want {
				t.Fatalf("error:\n%s\nwant:\n%s", err, want)
			}
		})
	}
}

// Several bad values are one line each.
func TestConfigErrorsOneLineEach(t *testing.T) {
	_, err := loadConfig(filepath.Join(t.TempDir(), "none.yaml"), envMap(nil))
	if err == nil {
		t.Fatal("a missing --config file was accepted")
	}
	_, err = loadConfig(writeFile(t, "c.yaml", "consumer:\n  workers: many\n"), envMap(map[string]string{"HERALD_RETRY_MAX_ATTEMPTS": "lots"}))
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "consumer.workers must be") || !strings.HasPrefix(lines[1], "config: HERALD_RETRY_MAX_ATTEMPTS must be a whole number") {
		t.Fatalf("want one line per bad value, got:\n%s", err)
	}
}
