package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// composeEnv is what an operator sets before `docker compose up`.
var composeEnv = []string{
	"ENCRYPTION_KEY=0123456789abcdef0123456789abcdef",
	"VPS_SECRET=compose-vps-secret",
	"HERALD_VAULT_KEYS=" + testVaultKey,
	"HERALD_NATS_TOKEN=compose-nats-token-0123456789abcdef",
	"VERSION=v9.9.9",
}

// composeShared are the variables every Herald service must get, the same
// for all: none starts without them.
var composeShared = []string{"ENCRYPTION_KEY", "VPS_SECRET", "HERALD_VAULT_KEYS", "HERALD_NATS_TOKEN"}

// composeProject loads docker-compose.yml with the Compose specification's
// own loader, as `docker compose` does (interpolation, merge keys,
// validation), in the environment env.
func composeProject(t *testing.T, env []string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join("..", "..", "docker-compose.yml")},
		cli.WithName("herald"), cli.WithEnv(env), cli.WithWorkingDirectory(filepath.Join("..", "..")))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

// loadCompose loads docker-compose.yml in env and checks what every Herald
// service gets from it.
func loadCompose(t *testing.T, env []string) error {
	t.Helper()
	p, err := composeProject(t, env)
	if err != nil {
		return err
	}
	var heralds int
	for name, svc := range p.Services {
		if svc.Image != "herald:latest" {
			continue
		}
		heralds++
		for _, k := range composeShared {
			v := svc.Environment[k]
			if v == nil || !strings.Contains(strings.Join(env, "\n"), k+"="+*v) {
				t.Errorf("%s: %s is not the value the operator set", name, k)
			}
		}
		if svc.Build == nil || svc.Build.Args["VERSION"] == nil || *svc.Build.Args["VERSION"] != "v9.9.9" {
			t.Errorf("%s: the image is not stamped with VERSION", name)
		}
	}
	if heralds != 3 {
		t.Errorf("%d Herald services, want 3", heralds)
	}
	return nil
}

func TestComposeLoadsWithTheComposeSpecLoader(t *testing.T) {
	if err := loadCompose(t, composeEnv); err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	// Without a shared key it refuses to start anything, naming it.
	for i, kv := range composeEnv[:4] {
		name, _, _ := strings.Cut(kv, "=")
		env := append(append([]string{}, composeEnv[:i]...), composeEnv[i+1:]...)
		err := loadCompose(t, env)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v, want an error naming it", name, err)
		}
	}
}
