package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrelay/herald/internal/testkit"
)

// docker-compose.yml's topology run as processes, since no Docker engine
// runs here: three NATS nodes in a cluster, one `herald ingest` and two
// `herald worker`s, each with the environment Compose gives its service
// (loaded by the Compose loader), changed only where the machine differs:
// the NATS URLs, free ports, a data directory, and the fake Discord allowed.
// The NATS nodes ask for the token the operator set, as Compose starts them
// (--auth). A credential stored through the ingest is delivered by a
// worker: the processes share the keys Compose gives them. Every Herald
// service's health check, run as written (its port moved), passes, and the
// ingest serves /metrics on its metrics address, not its public port.
func TestComposeTopologyAsProcesses(t *testing.T) {
	bin := buildHerald(t)
	project, err := composeProject(t, composeEnv)
	if err != nil {
		t.Fatal(err)
	}
	token := composeNATSToken(t, project)
	cluster := testkit.NewCluster(t, 3, testkit.WithToken(token))
	discord := unlimitedDiscord(t)

	ingestAddr := testkit.Addr(testkit.FreePort(t))
	metricsAddr := testkit.Addr(testkit.FreePort(t))
	start := func(service string, changes map[string]string) *proc {
		svc, ok := project.Services[service]
		if !ok {
			t.Fatalf("no service %s in docker-compose.yml", service)
		}
		env := map[string]string{}
		for k, v := range svc.Environment {
			if v != nil {
				env[k] = *v
			}
		}
		env["HERALD_NATS_URL"] = cluster.URLs()
		env["HERALD_DATA_DIR"] = t.TempDir()
		env["HERALD_CHANNELS_DISCORD_ALLOWED_HOSTS"] = "127.0.0.1"
		env["HERALD_CHANNELS_DISCORD_ALLOW_HTTP"] = "true"
		for k, v := range changes {
			env[k] = v
		}
		list := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		for k, v := range env {
			list = append(list, k+"="+v)
		}
		return startHeraldAs(t, bin, svc.Command[0], list)
	}
	// All at once, as compose starts them: they create the same replicated
	// streams at the same moment.
	ingest := start("ingest", map[string]string{"HERALD_HTTP_ADDR": ingestAddr, "HERALD_HTTP_METRICS_ADDR": metricsAddr})
	addrs := map[string]string{"ingest": ingestAddr}
	for _, w := range []string{"worker-1", "worker-2"} {
		addrs[w] = testkit.Addr(testkit.FreePort(t))
		start(w, map[string]string{"HERALD_WORKER_HTTP_ADDR": addrs[w]})
	}
	url := "http://" + ingestAddr
	waitReady(t, url)

	// The health checks Compose runs, as written but for the port.
	for name, addr := range addrs {
		test := project.Services[name].HealthCheck.Test
		args := slices.Clone(test[2:])
		for i, a := range args {
			args[i] = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`).ReplaceAllString(a, addr)
		}
		testkit.WaitFor(t, 30*time.Second, name+"'s health check to pass", func() bool {
			return exec.Command(bin, args...).Run() == nil
		})
	}
	if code, _, _ := call(t, http.MethodGet, url+"/metrics", "", "", ""); code != http.StatusNotFound {
		t.Errorf("the ingest's public port answers /metrics: %d", code)
	}
	if m := get(t, "http://"+metricsAddr+"/metrics"); !strings.Contains(m, "herald_build_info") {
		t.Errorf("the ingest's metrics address serves no metrics")
	}

	secret := "compose-vps-secret"
	webhook := discord.WebhookURL("7070", "topology-token")
	code, out := jsonCall(t, http.MethodPost, url+"/v1/credentials", "X-API-Secret", secret,
		fmt.Sprintf(`{"channel":"discord","webhook":%q}`, webhook), webhook, "topology-token")
	id, _ := out["id"].(string)
	if code != http.StatusCreated || id == "" {
		t.Fatalf("store the credential: %d %v\n%s", code, out, ingest.logs.String())
	}
	code, out = jsonCall(t, http.MethodPost, url+"/v1/notifications", "X-API-Secret", secret,
		notificationByID("discord", id, "through the compose topology"), webhook)
	if code != http.StatusAccepted {
		t.Fatalf("job by credential id: %d %v", code, out)
	}
	testkit.WaitFor(t, 30*time.Second, "a worker to deliver it", func() bool { return discord.Count() >= 1 })
	if r := discord.Requests()[0]; r.WebhookID != "7070" || r.Token != "topology-token" {
		t.Errorf("delivered to webhook %s", r.WebhookID)
	}
}
