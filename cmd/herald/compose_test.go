package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// No Docker engine runs in CI, so check what can be checked of
// docker-compose.yml: it parses, every HERALD_* variable it sets is a real
// config key, and every command it runs is a real subcommand.
func TestDockerComposeIsConsistent(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Command     any               `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Image       string            `yaml:"image"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	envKeys := map[string]bool{}
	for k := range defaults {
		envKeys[envName(k)] = true
	}
	subcommands := map[string]bool{}
	for _, c := range newRootCmd(envMap(nil), nil, nil).Commands() {
		subcommands[c.Name()] = true
	}
	var nats, heralds, workers int
	for name, svc := range doc.Services {
		if strings.HasPrefix(svc.Image, "nats") {
			nats++
			if cmd, _ := svc.Command.([]any); !containsArg(cmd, "--jetstream") {
				t.Errorf("%s: NATS without JetStream", name)
			}
			continue
		}
		if svc.Image != "herald:latest" {
			continue
		}
		heralds++
		cmd, _ := svc.Command.([]any)
		if len(cmd) == 0 || !subcommands[cmd[0].(string)] {
			t.Errorf("%s: command %v is not a herald subcommand", name, svc.Command)
		} else if cmd[0] == "worker" {
			workers++
		}
		for k := range svc.Environment {
			if strings.HasPrefix(k, "HERALD_") && !envKeys[k] {
				t.Errorf("%s: %s is not a config key", name, k)
			}
		}
		if svc.Environment["HERALD_NATS_URL"] == "" || svc.Environment["HERALD_NATS_STREAM_REPLICAS"] != "3" {
			t.Errorf("%s: not pointed at the cluster with 3 replicas", name)
		}
		// Processes sharing NATS generate no keys: each must be given the
		// same ones, required (${VAR:?...}) so none starts without.
		for _, k := range []string{"ENCRYPTION_KEY", "VPS_SECRET", "HERALD_VAULT_KEYS", "HERALD_CHALLENGE_KEYS"} {
			if v := svc.Environment[k]; !strings.HasPrefix(v, "${"+k+":?") {
				t.Errorf("%s: %s is %q, want the shared, required ${%s:?...}", name, k, v, k)
			}
		}
	}
	if nats != 3 || heralds != 3 || workers != 2 {
		t.Errorf("want 3 NATS nodes, 1 ingest and 2 workers; got %d NATS, %d herald, %d workers", nats, heralds, workers)
	}
}

// The build context leaves out the repository's history and any local data
// directory with its generated secrets.
func TestDockerIgnore(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for _, want := range []string{".git", "data/", "**/data/"} {
		found := false
		for _, l := range lines {
			found = found || strings.TrimSpace(l) == want
		}
		if !found {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

func containsArg(args []any, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}
