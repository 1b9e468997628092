// Package monitoring ships the example Prometheus scrape configuration and
// the Grafana dashboard for a HakuRiver HA cluster (prometheus.yml,
// grafana-dashboard.json), and reads which metrics the dashboard's PromQL
// uses, so that a test can check each against a replica's /metrics.
package monitoring

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Dashboard is the Grafana dashboard (JSON).
//
//go:embed grafana-dashboard.json
var Dashboard []byte

// PrometheusConfig is the example Prometheus scrape configuration (YAML).
//
//go:embed prometheus.yml
var PrometheusConfig []byte

// dashboard is the part of a Grafana dashboard that holds queries: panels
// (rows may nest theirs) and their targets.
type dashboard struct {
	Panels []panel `json:"panels"`
}

type panel struct {
	Title   string   `json:"title"`
	Panels  []panel  `json:"panels"`
	Targets []target `json:"targets"`
}

type target struct {
	Expr string `json:"expr"`
}

// Query is one PromQL expression of a dashboard and its panel's title.
type Query struct {
	Panel, Expr string
}

// Exprs returns every PromQL expression of a Grafana dashboard, in panel
// order.
func Exprs(dash []byte) ([]Query, error) {
	var d dashboard
	if err := json.Unmarshal(dash, &d); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	var out []Query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) != "" {
					out = append(out, Query{Panel: p.Title, Expr: t.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out, nil
}

var (
	// Strings, label matchers and range/subquery selectors hold no metric
	// names; grouping clauses hold label names.
	stringRE   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`") })
	matcherRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{[^}]*\}`) })
	rangeRE    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\[[^\]]*\]`) })
	groupingRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	})
	identRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`) })
	// keywords are PromQL words that are not metric names.
	keywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
		"and", "or", "unless", "offset", "atan2", "inf", "nan", "Inf", "NaN"}
)

// MetricNames returns the metric names a PromQL expression selects, in
// order of first use: identifiers that are not functions (followed by "("),
// keywords, label names in grouping clauses, or inside strings, label
// matchers and range selectors.
func MetricNames(expr string) []string {
	e := stringRE().ReplaceAllString(expr, `""`)
	e = matcherRE().ReplaceAllString(e, " ")
	e = rangeRE().ReplaceAllString(e, " ")
	e = groupingRE().ReplaceAllString(e, " ")
	var out []string
	for _, loc := range identRE().FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		if loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.') {
			continue // the exponent or unit of a number (1e3, 5m)
		}
		if rest := strings.TrimLeft(e[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function or aggregation
		}
		if slices.Contains(keywords, name) || slices.Contains(out, name) {
			continue
		}
		out = append(out, name)
	}
	return out
}

// DashboardMetrics returns every metric name the dashboard's expressions
// select, each once, in order of first use.
func DashboardMetrics(dash []byte) ([]string, error) {
	exprs, err := Exprs(dash)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, q := range exprs {
		for _, n := range MetricNames(q.Expr) {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// Missing returns the names of which the Prometheus text exposition holds
// no sample (a histogram NAME has samples NAME_bucket, NAME_sum and
// NAME_count).
func Missing(names []string, exposition string) []string {
	served := map[string]bool{}
	for _, line := range strings.Split(exposition, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			served[line[:i]] = true
		}
	}
	var missing []string
	for _, n := range names {
		if !served[n] {
			missing = append(missing, n)
		}
	}
	return missing
}
