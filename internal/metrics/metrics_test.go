package metrics_test

import (
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
