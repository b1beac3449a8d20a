package metrics_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldrelay/herald/internal/metrics"
)

func TestNewRegistersAndCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.Deliveries.WithLabelValues("discord", "delivered").Inc()
	if got := testutil.ToFloat64(m.Deliveries.WithLabelValues("discord", "delivered")); got != 1 {
		t.Fatalf("deliveries = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "herald_deliveries_total"); err != nil || n != 1 {
		t.Fatalf("gathered %d series, err %v", n, err)
	}
}

// Every metric Herald registers is documented in the README's list of
// metrics, so that a new one cannot be left out.
func TestEveryMetricIsDocumented(t *testing.T) {
	var names describedNames
	metrics.New(&names)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	herald := 0
	for _, name := range names {
		if !strings.HasPrefix(name, "herald_") {
			continue // the Go and process collectors' own
		}
		herald++
		// As a whole name: followed by a label list, a backquote or a space.
		if !regexp.MustCompile("`" + name + "[`{ ]").Match(readme) {
			t.Errorf("README.md does not document %s", name)
		}
	}
	if herald < 40 {
		t.Fatalf("only %d herald_ metrics found: the test lost track of them", herald)
	}
}

// describedNames is a prometheus.Registerer that keeps the names of the
// metrics registered with it.
type describedNames []string

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describedNames) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			*d = append(*d, m[1])
		}
	}
	return nil
}

func (d *describedNames) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describedNames) Unregister(prometheus.Collector) bool { return false }

// A Sampled gauge reads its function at every scrape, per label value, and
// a series whose function is removed is no longer exported.
func TestSampledReadsAtScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := metrics.NewSampled("herald_test_sampled", "A test gauge.", "channel")
	reg.MustRegister(s)
	v := 1.0
	s.Set(func() float64 { return v }, "discord")
	if got := testutil.ToFloat64(s); got != 1 {
		t.Fatalf("first scrape = %v, want 1", got)
	}
	v = 2
	if got := testutil.ToFloat64(s); got != 2 {
		t.Fatalf("second scrape = %v, want 2", got)
	}
	s.Set(func() float64 { return 3 }, "telegram")
	if n, err := testutil.GatherAndCount(reg, "herald_test_sampled"); err != nil || n != 2 {
		t.Fatalf("%d series, err %v; want 2", n, err)
	}
	s.Set(nil, "discord")
	if got := testutil.ToFloat64(s); got != 3 {
		t.Fatalf("after removing discord = %v, want telegram's 3", got)
	}
}
