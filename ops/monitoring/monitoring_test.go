package monitoring

import (
	"slices"
	"strings"
	"testing"
)

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`hakuriver_raft_is_leader{job="$job"}`, []string{"hakuriver_raft_is_leader"}},
		{`histogram_quantile(0.99, sum by (le, route) (rate(hakuriver_http_request_duration_seconds_bucket{job="$job"}[$__rate_interval])))`,
			[]string{"hakuriver_http_request_duration_seconds_bucket"}},
		{`hakuriver_raft_commit_index{job="a"} - on (instance) group_left hakuriver_raft_applied_index`,
			[]string{"hakuriver_raft_commit_index", "hakuriver_raft_applied_index"}},
		{`sum without (node) (rate(x_total[5m] offset 1h)) > 1e3 and up{job=~"h.*"} == bool 1`, []string{"x_total", "up"}},
		{`max by (status) (hakuriver_tasks) or vector(0)`, []string{"hakuriver_tasks"}},
		{`label_replace(a_metric, "dst", "$1", "src", "(.*)") / ignoring(code) b_metric`, []string{"a_metric", "b_metric"}},
	} {
		if got := MetricNames(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("MetricNames(%s) = %q, want %q", c.expr, got, c.want)
		}
	}
}

// TestDashboardParses: the shipped dashboard is valid JSON with queries,
// every one of them on hakuriver_ metrics.
func TestDashboardParses(t *testing.T) {
	exprs, err := Exprs(Dashboard)
	if err != nil || len(exprs) < 20 {
		t.Fatalf("dashboard: %d expressions, %v", len(exprs), err)
	}
	names, err := DashboardMetrics(Dashboard)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "hakuriver_") {
			t.Errorf("dashboard metric %q is not one of hakuriver's", n)
		}
	}
	t.Logf("%d expressions over %d metrics", len(exprs), len(names))
}

// TestMissing is the positive control of the dashboard check: a name the
// exposition does not serve is reported, histogram series are served by
// their sample names only.
func TestMissing(t *testing.T) {
	expo := `# HELP a_total A.
# TYPE a_total counter
a_total{route="/x"} 3
# TYPE lat_seconds histogram
lat_seconds_bucket{le="+Inf"} 1
lat_seconds_sum 0.1
lat_seconds_count 1
# TYPE declared_only gauge
g 1
`
	got := Missing([]string{"a_total", "lat_seconds_bucket", "lat_seconds_count", "g", "lat_seconds", "declared_only", "hakuriver_made_up_total"}, expo)
	if want := []string{"lat_seconds", "declared_only", "hakuriver_made_up_total"}; !slices.Equal(got, want) {
		t.Fatalf("Missing = %q, want %q", got, want)
	}
}
