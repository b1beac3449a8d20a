// Package deploy holds the files that deploy Herald beside it (the Grafana
// dashboard, the Prometheus alert rules); its test checks them against the
// metrics Herald exports.
package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/heraldrelay/herald/internal/metrics"
)

const (
	dashboardFile = "grafana/herald.json"
	rulesFile     = "prometheus/alerts.yml"
	operationsDoc = "../docs/operations.md"
)

// The alerts the runbook promises.
var requiredAlerts = []string{
	"HeraldOldestJobAging", "HeraldDeadLettersRising", "HeraldInvalidBudgetHalfSpent",
	"HeraldBreakerOpen", "HeraldQueueStalled", "HeraldIngest5xx", "HeraldNATSDisconnected",
}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// scrapeSeries are the series Prometheus makes itself for every target.
var scrapeSeries = map[string][]string{"up": nil}

// exported is what Herald's /metrics can show: each series name with the
// labels it carries (target labels aside).
type exported map[string][]string

// heraldMetrics builds the set from a real registry: metrics.New registers
// with it through a recorder of every collector's descriptors (so labelled
// metrics without a sample yet are known), histograms add their _bucket
// (with le), _sum and _count series, and the Go and process collectors'
// summaries and histograms are read from a Gather.
func heraldMetrics(t *testing.T) exported {
	t.Helper()
	reg := prometheus.NewRegistry()
	rec := &recorder{Registerer: reg, labels: map[string][]string{}}
	m := metrics.New(rec)
	out := exported{}
	for name, ls := range rec.labels {
		out[name] = ls
	}
	// Histograms of Herald's, known by their Go type.
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		switch c.(type) {
		case *prometheus.HistogramVec, prometheus.Histogram:
			for _, name := range describe(c) {
				addHistogram(out, name, rec.labels[name])
			}
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			if ls, ok := out[f.GetName()]; ok {
				addHistogram(out, f.GetName(), ls)
			}
		case dto.MetricType_SUMMARY:
			out[f.GetName()] = append(out[f.GetName()], "quantile")
			out[f.GetName()+"_sum"] = out[f.GetName()]
			out[f.GetName()+"_count"] = out[f.GetName()]
		}
	}
	for name, ls := range scrapeSeries {
		out[name] = ls
	}
	return out
}

// addHistogram replaces a histogram's name by its series.
func addHistogram(out exported, name string, ls []string) {
	out[name+"_bucket"] = append(slices.Clone(ls), "le")
	out[name+"_sum"] = ls
	out[name+"_count"] = ls
	delete(out, name)
}

// recorder registers with a real registry and keeps the names and variable
// labels of the descriptors it saw.
type recorder struct {
	prometheus.Registerer
	labels map[string][]string
}

var descRE = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*variableLabels: \{([^}]*)\}\}$`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := descRE.FindStringSubmatch(d.String()); m != nil {
			var ls []string
			for _, l := range strings.Split(m[2], ",") {
				if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
					ls = append(ls, l)
				}
			}
			r.labels[m[1]] = ls
		}
	}
	return r.Registerer.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// describe returns the metric names c describes.
func describe(c prometheus.Collector) []string {
	rec := &recorder{Registerer: prometheus.NewRegistry(), labels: map[string][]string{}}
	_ = rec.Register(c)
	var names []string
	for name := range rec.labels {
		names = append(names, name)
	}
	return names
}

var promql = parser.NewParser(parser.Options{})

// checkExpr parses expr with the PromQL parser and reports, through errorf,
// every series it selects that Herald does not export, and every label it
// matches on that the series does not carry.
func checkExpr(known exported, where, expr string, errorf func(string, ...any)) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		errorf("%s: %v\n%s", where, err, expr)
		return
	}
	selectors := 0
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		selectors++
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		ls, ok := known[name]
		if !ok {
			errorf("%s: %q is not a metric Herald exports\n%s", where, name, expr)
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name != labels.MetricName && !slices.Contains(ls, m.Name) && !slices.Contains(targetLabels, m.Name) {
				errorf("%s: %s has no label %q (it has %v)\n%s", where, name, m.Name, ls, expr)
			}
		}
		return nil
	})
	if selectors == 0 {
		errorf("%s: selects no metric\n%s", where, expr)
	}
}

// grafanaVars are the dashboard's variables as PromQL can read them: an
// interval for the interval variables, a regular expression for the others.
var grafanaVars = regexp.MustCompile(`\$\{?(\w+)(?::\w+)?\}?`)

func expandGrafana(expr string) string {
	return grafanaVars.ReplaceAllStringFunc(expr, func(v string) string {
		name := grafanaVars.FindStringSubmatch(v)[1]
		if strings.HasPrefix(name, "__") && (strings.HasSuffix(name, "interval") || name == "__range") {
			return "5m"
		}
		return ".*"
	})
}

func TestAlertRules(t *testing.T) {
	known := heraldMetrics(t)
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("rulefmt: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	anchors := runbookAnchors(t)
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			where := fmt.Sprintf("%s: %s", rulesFile, r.Alert)
			alerts = append(alerts, r.Alert)
			checkExpr(known, where, r.Expr, t.Errorf)
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", where, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", where)
			}
			doc, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#")
			if doc != "docs/operations.md" || !anchors[anchor] {
				t.Errorf("%s: runbook_url %q is not a heading of docs/operations.md", where, r.Annotations["runbook_url"])
			}
		}
	}
	for _, a := range requiredAlerts {
		if !slices.Contains(alerts, a) {
			t.Errorf("%s: no alert %s", rulesFile, a)
		}
	}
}

// runbookAnchors are the anchors of docs/operations.md's headings, as
// GitHub makes them.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			anchors[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	return anchors
}

// panel is what the test reads of a Grafana panel.
type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *datasource     `json:"datasource"`
	Targets    []target        `json:"targets"`
	Panels     []panel         `json:"panels"` // a collapsed row's
	GridPos    json.RawMessage `json:"gridPos"`
}

type target struct {
	Expr       string      `json:"expr"`
	RefID      string      `json:"refId"`
	Datasource *datasource `json:"datasource"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func TestDashboard(t *testing.T) {
	known := heraldMetrics(t)
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("%s: no uid or title", dashboardFile)
	}
	// The data source is a variable, so the file provisions as it is.
	hasDS := false
	labelValues := regexp.MustCompile(`^label_values\((.+?)(,\s*\w+)?\)$`)
	for _, v := range dash.Templating.List {
		switch v.Type {
		case "datasource":
			hasDS = hasDS || (v.Name == "datasource" && v.Query == "prometheus")
		case "query":
			q, _ := v.Query.(map[string]any)
			s, _ := q["query"].(string)
			m := labelValues.FindStringSubmatch(s)
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(...)", dashboardFile, v.Name, s)
				continue
			}
			checkExpr(known, "variable "+v.Name, expandGrafana(m[1]), t.Errorf)
		}
	}
	if !hasDS {
		t.Errorf("%s: no Prometheus data source variable named datasource", dashboardFile)
	}
	ids := map[int]bool{}
	exprs := 0
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q: no query", p.Title)
			}
			for _, tg := range p.Targets {
				exprs++
				for _, ds := range []*datasource{p.Datasource, tg.Datasource} {
					if ds == nil || ds.UID != "${datasource}" {
						t.Errorf("panel %q: data source %+v, want the ${datasource} variable", p.Title, ds)
					}
				}
				checkExpr(known, fmt.Sprintf("panel %q %s", p.Title, tg.RefID), expandGrafana(tg.Expr), t.Errorf)
			}
		}
	}
	walk(dash.Panels)
	// What the dashboard must cover: at least one query on each.
	all := string(raw)
	for _, name := range []string{
		"herald_deliveries_total", "herald_jobs_accepted_total", // throughput
		"herald_delivery_latency_seconds_bucket", "herald_send_duration_seconds_bucket", // latency
		"herald_queue_depth", "herald_queue_oldest_age_seconds", // queue depth and age
		"herald_retries_total", "herald_dead_lettered_total", // retries, dead letters
		"herald_breakers",                                                                                                     // breakers
		"herald_pacing_waits_total", "herald_invalid_budget_spent", "herald_global_pause_seconds", "herald_channel_suspended", // pacing
		"herald_parked_jobs", "herald_http_requests_total", "herald_nats_connected",
	} {
		if !strings.Contains(all, name) {
			t.Errorf("%s: no panel shows %s", dashboardFile, name)
		}
	}
	t.Logf("%d panels, %d queries checked against %d exported series names", len(ids), exprs, len(known))
}

// The check itself: a name Herald does not export, or a label a metric does
// not carry, is reported.
func TestCheckExprRefusesUnknownNames(t *testing.T) {
	known := heraldMetrics(t)
	for expr, want := range map[string]string{
		`rate(herald_deliveries_total[5m])`:                                         "",
		`histogram_quantile(0.9, rate(herald_delivery_latency_seconds_bucket[5m]))`: "",
		`rate(herald_delivery_total[5m])`:                                           `"herald_delivery_total" is not a metric`,
		`herald_queue_depth{queue="jobs"}`:                                          `has no label "queue"`,
		`herald_delivery_latency_seconds`:                                           `"herald_delivery_latency_seconds" is not a metric`,
		`sum(rate(herald_http_requests_total{code=~"5.."}[5m]))`:                    "",
	} {
		var got []string
		checkExpr(known, "test", expr, func(f string, a ...any) { got = append(got, fmt.Sprintf(f, a...)) })
		sort.Strings(got)
		if want == "" && len(got) > 0 || want != "" && (len(got) != 1 || !strings.Contains(got[0], want)) {
			t.Errorf("%s: %q, want %q", expr, got, want)
		}
	}
}

// docker-compose.yml's Prometheus loads alerts.yml: the file is mounted
// where its configuration's rule_files looks.
func TestComposePrometheusLoadsTheRules(t *testing.T) {
	env := []string{
		"ENCRYPTION_KEY=0123456789abcdef0123456789abcdef", "VPS_SECRET=s",
		"HERALD_VAULT_KEYS=k", "HERALD_NATS_TOKEN=t",
	}
	opts, err := cli.NewProjectOptions([]string{"../docker-compose.yml"},
		cli.WithName("herald"), cli.WithEnv(env), cli.WithWorkingDirectory(".."))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	svc, ok := p.Services["prometheus"]
	if !ok {
		t.Fatal("docker-compose.yml: no prometheus service")
	}
	mounted := map[string]string{} // target → the host file mounted there
	for _, v := range svc.Volumes {
		if v.Type == "bind" {
			mounted[v.Target] = v.Source
		}
	}
	config, err := os.ReadFile(mounted["/etc/prometheus/prometheus.yml"])
	if err != nil {
		t.Fatalf("the prometheus service's /etc/prometheus/prometheus.yml (mounted: %v): %v", mounted, err)
	}
	var prom struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal(config, &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	abs, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	loaded := false
	for _, f := range prom.RuleFiles {
		loaded = loaded || mounted[f] == abs
	}
	if !loaded {
		t.Errorf("rule_files %v: none is %s mounted (mounted: %v)", prom.RuleFiles, rulesFile, mounted)
	}
}
