package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// heraldImage is the image docker-compose.yml builds from this repository.
const heraldImage = "herald:latest"

// composeServiceEnv is svc's environment as the process gets it.
func composeServiceEnv(svc types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// composeNATSToken is the token every NATS node of docker-compose.yml asks
// for (--auth), the same for all of them.
func composeNATSToken(t *testing.T, p *types.Project) string {
	t.Helper()
	var token string
	for name, svc := range p.Services {
		if !strings.HasPrefix(svc.Image, "nats:") {
			continue
		}
		i := slices.Index(svc.Command, "--auth")
		if i < 0 || i+1 >= len(svc.Command) || svc.Command[i+1] == "" {
			t.Fatalf("%s: NATS started without --auth <token>: anyone on the network could purge the queues", name)
		}
		if token != "" && svc.Command[i+1] != token {
			t.Fatalf("%s: NATS nodes ask for different tokens", name)
		}
		token = svc.Command[i+1]
	}
	if token == "" {
		t.Fatal("no NATS service in docker-compose.yml")
	}
	return token
}

// No Docker engine runs in CI, so check what can be checked of
// docker-compose.yml, loaded as `docker compose` loads it: every Herald
// service's environment passes the binary's own configuration loader, its
// command is a subcommand, and together they follow the operations doc.
func TestDockerComposeIsConsistent(t *testing.T) {
	p, err := composeProject(t, composeEnv)
	if err != nil {
		t.Fatal(err)
	}
	token := composeNATSToken(t, p)
	subcommands := map[string]bool{}
	for _, c := range newRootCmd(envMap(nil), nil, nil).Commands() {
		subcommands[c.Name()] = true
	}
	var nats, heralds, workers int
	var rate float64
	var invalid int
	for name, svc := range p.Services {
		if strings.HasPrefix(svc.Image, "nats:") {
			nats++
			if !slices.Contains(svc.Command, "--jetstream") {
				t.Errorf("%s: NATS without JetStream", name)
			}
			continue
		}
		if svc.Image != heraldImage {
			continue
		}
		heralds++
		if len(svc.Command) == 0 || !subcommands[svc.Command[0]] {
			t.Errorf("%s: command %v is not a herald subcommand", name, svc.Command)
			continue
		}
		env := composeServiceEnv(svc)
		var environ []string
		for k, v := range env {
			environ = append(environ, k+"="+v)
		}
		if err := checkEnvironment(environ); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		cfg, err := loadConfig(writeFile(t, "c.yaml", "{}"), envMap(env))
		if err != nil {
			t.Errorf("%s: the configuration loader refuses its environment: %v", name, err)
			continue
		}
		if cfg.NATS.URL == "" || cfg.NATS.Stream.Replicas != 3 {
			t.Errorf("%s: not pointed at the cluster with 3 replicas", name)
		}
		if cfg.NATS.Token != token {
			t.Errorf("%s: HERALD_NATS_TOKEN is not the token the NATS nodes ask for", name)
		}
		// Processes sharing NATS generate no keys: each must be given the
		// same ones, required (${VAR:?...}) so none starts without.
		for _, k := range composeShared {
			if env[k] == "" {
				t.Errorf("%s: %s is not set", name, k)
			}
		}
		if _, ok := env["HERALD_CHALLENGE_KEYS"]; ok {
			t.Errorf("%s: sets HERALD_CHALLENGE_KEYS, which are derived from the vault keys", name)
		}
		if len(svc.Ports) > 0 && name != "caddy" {
			t.Errorf("%s publishes %v: Herald's ports stay on the compose network (TLS is Caddy's)", name, svc.Ports)
		}
		if svc.Command[0] == "worker" {
			workers++
			rate += cfg.Channels.Discord.GlobalRate
			invalid += cfg.Channels.Discord.InvalidBudget
		}
	}
	if nats != 3 || heralds != 3 || workers != 2 {
		t.Errorf("want 3 NATS nodes, 1 ingest and 2 workers; got %d NATS, %d herald, %d workers", nats, heralds, workers)
	}
	// docs/operations.md: N workers behind one IP share Discord's per-IP
	// limits, global_rate 50/N and invalid_budget 5000/N each.
	one, err := loadConfig(writeFile(t, "c.yaml", "{}"), envMap(nil)) // one process's defaults
	if err != nil {
		t.Fatal(err)
	}
	if want := one.Channels.Discord.GlobalRate; rate > want {
		t.Errorf("the workers send %v requests/s to Discord together, above its per-IP %v", rate, want)
	}
	if want := one.Channels.Discord.InvalidBudget; invalid > want {
		t.Errorf("the workers' invalid budgets add up to %d, above the one IP's %d", invalid, want)
	}
}

// Every image is pinned to a release, and NATS to the minor of the server
// Herald embeds (go.mod), which its tests run against.
func TestComposeImagesArePinned(t *testing.T) {
	p, err := composeProject(t, composeEnv)
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	embedded := regexp.MustCompile(`github\.com/nats-io/nats-server/v2 v(\d+\.\d+)\.\d+`).FindSubmatch(gomod)
	if embedded == nil {
		t.Fatal("go.mod names no nats-server")
	}
	release := regexp.MustCompile(`^[a-z0-9./-]+:v?(\d+\.\d+)\.\d+(-alpine)?$`)
	for name, svc := range p.Services {
		if svc.Image == heraldImage {
			continue
		}
		m := release.FindStringSubmatch(svc.Image)
		if m == nil {
			t.Errorf("%s: image %q is not pinned to a release (name:X.Y.Z)", name, svc.Image)
			continue
		}
		if strings.HasPrefix(svc.Image, "nats:") && m[1] != string(embedded[1]) {
			t.Errorf("%s: NATS %s, but Herald embeds and is tested on %s", name, m[1], embedded[1])
		}
	}
}

// depends_on waits for health, and every health check can run in its
// image: Herald's image has no shell, curl or wget (distroless), so its
// checks run the binary's own `health` command, at the service's port.
func TestComposeHealthChecks(t *testing.T) {
	p, err := composeProject(t, composeEnv)
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllSubmatch(dockerfile, -1)
	if len(froms) == 0 || !strings.HasPrefix(string(froms[len(froms)-1][1]), "gcr.io/distroless/static") ||
		!strings.Contains(string(dockerfile), `ENTRYPOINT ["/herald"]`) {
		t.Fatal("the image is no longer distroless with /herald as its entrypoint: revisit the health checks")
	}
	for name, svc := range p.Services {
		for dep, d := range svc.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				t.Errorf("%s waits for %s to be %q, want service_healthy", name, dep, d.Condition)
			}
			if p.Services[dep].HealthCheck == nil || len(p.Services[dep].HealthCheck.Test) == 0 {
				t.Errorf("%s waits for %s's health, which has no health check", name, dep)
			}
		}
		hc := svc.HealthCheck
		switch {
		case svc.Image == heraldImage:
			if hc == nil || len(hc.Test) < 3 || hc.Test[0] != "CMD" || hc.Test[1] != "/herald" {
				t.Errorf("%s: health check %v, want [CMD /herald health ...] (the image has no shell)", name, hcTest(hc))
				continue
			}
			// The arguments are the health command's, with its flags.
			root := newRootCmd(envMap(nil), nil, nil)
			cmd, rest, err := root.Find(hc.Test[2:])
			if err != nil || cmd.Name() != "health" {
				t.Errorf("%s: %v is not `herald health`: %v", name, hc.Test[2:], err)
				continue
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("%s: health check flags: %v", name, err)
				continue
			}
			u, _ := cmd.Flags().GetString("url")
			env := composeServiceEnv(svc)
			addr := env["HERALD_HTTP_ADDR"]
			if svc.Command[0] == "worker" {
				addr = env["HERALD_WORKER_HTTP_ADDR"]
			}
			if want := "http://127.0.0.1:" + portOf(addr) + "/readyz"; u != want {
				t.Errorf("%s: health check asks %s, want %s (its own /readyz)", name, u, want)
			}
		case hc != nil && slices.Contains(hc.Test, "wget"):
			// Alpine's busybox has wget; scratch and distroless images do not.
			if hc.Test[0] != "CMD" || !strings.HasSuffix(svc.Image, "-alpine") {
				t.Errorf("%s: health check %v needs wget, which %s may lack", name, hc.Test, svc.Image)
			}
		case hc != nil:
			t.Errorf("%s: health check %v: nothing here says its image can run it", name, hc.Test)
		}
	}
}

func hcTest(hc *types.HealthCheckConfig) []string {
	if hc == nil {
		return nil
	}
	return hc.Test
}

// /metrics stays on the compose network: the ingest serves it on its
// metrics address, apart from the port Caddy proxies to, and Prometheus
// scrapes exactly the Herald processes' metrics addresses.
func TestComposeMetricsStayPrivate(t *testing.T) {
	p, err := composeProject(t, composeEnv)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &prom); err != nil {
		t.Fatalf("deploy/prometheus.yml: %v", err)
	}
	var targets, want []string
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	for name, svc := range p.Services {
		if svc.Image != heraldImage {
			continue
		}
		env := composeServiceEnv(svc)
		switch svc.Command[0] {
		case "worker":
			want = append(want, name+":"+portOf(env["HERALD_WORKER_HTTP_ADDR"]))
		case "ingest":
			m := env["HERALD_HTTP_METRICS_ADDR"]
			if m == "" || portOf(m) == portOf(env["HERALD_HTTP_ADDR"]) {
				t.Errorf("%s: metrics address %q is not apart from the public %q", name, m, env["HERALD_HTTP_ADDR"])
			}
			want = append(want, name+":"+portOf(m))
		}
	}
	slices.Sort(targets)
	slices.Sort(want)
	if !slices.Equal(targets, want) {
		t.Errorf("Prometheus scrapes %v, want %v", targets, want)
	}
	prometheus := p.Services["prometheus"]
	for _, port := range prometheus.Ports {
		if ip := net.ParseIP(port.HostIP); ip == nil || !ip.IsLoopback() {
			t.Errorf("Prometheus (no login) is published on %q, want loopback only", port.HostIP)
		}
	}
	if !mountsFile(prometheus, "deploy/prometheus.yml") {
		t.Error("Prometheus does not mount deploy/prometheus.yml")
	}
}

// Inline configs (configs.content) need Compose 2.23.1 or later: the file
// does without them, mounting files from deploy/ instead.
func TestComposeNeedsNoInlineConfigs(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Configs map[string]map[string]any `yaml:"configs"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for name, c := range doc.Configs {
		if _, ok := c["content"]; ok {
			t.Errorf("config %s is inline (content:), which needs Compose 2.23.1", name)
		}
	}
	p, err := composeProject(t, composeEnv)
	if err != nil {
		t.Fatal(err)
	}
	for name, svc := range p.Services {
		for _, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s: %v", name, v.Source, err)
			}
		}
	}
}

// TLS: Caddy alone is published, proxies to the ingest's port, drops a
// client's own CF-Connecting-IP, and is the ingest's one trusted proxy, at
// an address inside the network's subnet; the operations doc shows the
// same Caddyfile.
func TestComposeTLSInFront(t *testing.T) {
	p, err := composeProject(t, composeEnv)
	if err != nil {
		t.Fatal(err)
	}
	caddy, ok := p.Services["caddy"]
	if !ok || !strings.HasPrefix(caddy.Image, "caddy:") {
		t.Fatal("no Caddy in front of the ingest")
	}
	if !mountsFile(caddy, "deploy/Caddyfile") {
		t.Fatal("Caddy does not mount deploy/Caddyfile")
	}
	var published []string
	for _, port := range caddy.Ports {
		published = append(published, port.Published)
	}
	if slices.Sort(published); !slices.Equal(published, []string{"443", "80"}) {
		t.Errorf("Caddy publishes %v, want 80 (redirects, certificates) and 443", published)
	}
	caddyfile, err := os.ReadFile(filepath.Join("..", "..", "deploy", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	ingestEnv := composeServiceEnv(p.Services["ingest"])
	if !regexp.MustCompile(`reverse_proxy ingest:` + portOf(ingestEnv["HERALD_HTTP_ADDR"]) + `\b`).Match(caddyfile) {
		t.Errorf("the Caddyfile does not proxy to the ingest's port %s", portOf(ingestEnv["HERALD_HTTP_ADDR"]))
	}
	if !strings.Contains(string(caddyfile), "header_up -CF-Connecting-IP") {
		t.Error("the Caddyfile passes on a client's CF-Connecting-IP, which the ingest believes from a trusted proxy")
	}

	cn := caddy.Networks["default"]
	if cn == nil || cn.Ipv4Address == "" {
		t.Fatal("Caddy has no fixed address for the ingest to trust")
	}
	if got := ingestEnv["HERALD_INGEST_TRUSTED_PROXIES"]; got != cn.Ipv4Address {
		t.Errorf("the ingest trusts %q, Caddy is at %s", got, cn.Ipv4Address)
	}
	inSubnet := false
	for _, c := range p.Networks["default"].Ipam.Config {
		_, subnet, err := net.ParseCIDR(c.Subnet)
		inSubnet = inSubnet || err == nil && subnet.Contains(net.ParseIP(cn.Ipv4Address))
	}
	if !inSubnet {
		t.Errorf("Caddy's address %s is not in the network's subnet", cn.Ipv4Address)
	}

	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), string(caddyfile)) {
		t.Error("docs/operations.md does not show deploy/Caddyfile as it is")
	}
}

// mountsFile reports whether svc bind-mounts the repository's file rel.
func mountsFile(svc types.ServiceConfig, rel string) bool {
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeBind && strings.HasSuffix(filepath.ToSlash(v.Source), "/"+rel) && v.ReadOnly {
			return true
		}
	}
	return false
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
