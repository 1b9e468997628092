//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
	"github.com/hakuriver/hakuriver-ha/ops/monitoring"
)

// TestMonitoring runs a replica as a service would (JSON logs into
// --log-file) with a native runner and a running task, and checks what
// operators rely on: logrotate's rename + SIGHUP moves the logs to a new
// file without stopping the process, and Prometheus, configured as
// ops/monitoring/prometheus.yml says (a viewer's token in a file), scrapes
// a /metrics that serves every metric the Grafana dashboard queries.
func TestMonitoring(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "hakuriver-host.log")
	c := startCluster(t, harness.Options{Replicas: 1, HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor,
		Args: []string{"--log-file", logPath, "--log-format", "json"}})
	c.StartRunner("r1", twoCores)
	id := submitOne(t, c, 0, native("sleep", "60"))
	killOnFailure(t, c, id)
	c.WaitTask(id, taskTimeout, "running", func(tk api.Task) bool { return tk.Status == fsm.StatusRunning })

	t.Run("LogFileReopenedOnSIGHUP", func(t *testing.T) {
		pid := c.Replica(0).PID()
		records := func(path string) []map[string]any {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			var out []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if line == "" {
					continue // a file just reopened holds nothing yet
				}
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("%s holds a line that is not JSON: %q", path, line)
				}
				out = append(out, rec)
			}
			return out
		}
		has := func(recs []map[string]any, msg string) bool {
			return slices.ContainsFunc(recs, func(r map[string]any) bool { return r["msg"] == msg })
		}
		if recs := records(logPath); !has(recs, "host replica started") {
			t.Fatalf("the log file does not say the replica started: %v", recs)
		}
		if err := os.Rename(logPath, logPath+".1"); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		c.Poll(10*time.Second, "a new log file after SIGHUP", func() (bool, string) {
			recs := records(logPath)
			return has(recs, "log file reopened on SIGHUP"), fmt.Sprint(recs)
		})
		// A call without a token is refused and logged: in the new file.
		ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
		defer cancel()
		if a, err := c.CallAs(ctx, 0, http.MethodGet, "/api/tasks", "", nil); err != nil || a.Status != http.StatusUnauthorized {
			t.Fatalf("anonymous GET /api/tasks: %v, %v", a, err)
		}
		c.Poll(10*time.Second, "the refused call logged in the new file", func() (bool, string) {
			return has(records(logPath), "rejected call"), ""
		})
		if old := records(logPath + ".1"); !has(old, "host replica started") || has(old, "rejected call") {
			t.Errorf("the rotated file: %v", old)
		}
		for _, path := range []string{logPath + ".1", logPath} {
			for _, rec := range records(path) {
				if rec["level"] == "WARN" || rec["level"] == "ERROR" {
					t.Errorf("%s: a healthy replica logged %v", filepath.Base(path), rec)
				}
			}
		}
		if st, err := harness.ReadProcStat(pid); err != nil || st.State == 'Z' {
			t.Fatalf("the replica did not survive SIGHUP: %+v, %v", st, err)
		}
	})

	// Prometheus's account, as ops/monitoring/prometheus.yml says: a viewer
	// whose token alone is in a file.
	tokenFile := viewerTokenFile(t, c)

	t.Run("PrometheusScrape", func(t *testing.T) {
		if !strings.Contains(string(monitoring.PrometheusConfig), "credentials_file:") {
			t.Fatal("the example Prometheus config does not read a bearer token file")
		}
		scrape := func() string {
			t.Helper()
			b, err := os.ReadFile(tokenFile)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
			defer cancel()
			a, err := c.CallAs(ctx, 0, http.MethodGet, "/metrics", strings.TrimSpace(string(b)), nil)
			if err != nil || a.Status != http.StatusOK {
				t.Fatalf("scrape with the viewer's token: %v, %v", a, err)
			}
			return string(a.Body)
		}
		value := func(body, series string) float64 {
			for _, line := range strings.Split(body, "\n") {
				if rest, ok := strings.CutPrefix(line, series+" "); ok {
					v, err := strconv.ParseFloat(rest, 64)
					if err == nil {
						return v
					}
				}
			}
			return -1
		}
		body := scrape()
		for series, ok := range map[string]func(float64) bool{
			`hakuriver_node_tasks{node="r1",status="running"}`:  func(v float64) bool { return v == 1 },
			`hakuriver_runners{status="online"}`:                func(v float64) bool { return v == 1 },
			"hakuriver_scheduler_placements_total":              func(v float64) bool { return v >= 1 },
			`hakuriver_runner_heartbeat_age_seconds{node="r1"}`: func(v float64) bool { return v >= 0 && v <= hbTimeout.Seconds() },
			"hakuriver_raft_is_leader":                          func(v float64) bool { return v == 1 },
			"hakuriver_raft_store_duration_seconds_count":       func(v float64) bool { return v > 0 },
		} {
			if v := value(body, series); !ok(v) {
				t.Errorf("%s = %v", series, v)
			}
		}
		names, err := monitoring.DashboardMetrics(monitoring.Dashboard)
		if err != nil {
			t.Fatal(err)
		}
		names = slices.DeleteFunc(names, func(n string) bool { return n == noSnapshotYet })
		if missing := monitoring.Missing(names, body); len(missing) > 0 {
			t.Errorf("the dashboard queries metrics the replica does not serve: %q", missing)
		}
		if missing := monitoring.Missing([]string{"hakuriver_made_up_total", names[0]}, body); !slices.Equal(missing, []string{"hakuriver_made_up_total"}) {
			t.Errorf("positive control: missing = %q", missing)
		}
	})

	t.Run("RealPrometheus", func(t *testing.T) { realPrometheus(t, c, tokenFile) })
}

// noSnapshotYet is the dashboard's metric a young cluster does not serve:
// the age of a snapshot it has not taken (the cluster package's TestMetrics
// checks it after one).
const noSnapshotYet = "hakuriver_raft_snapshot_age_seconds"

// viewerTokenFile makes a viewer account and writes one API token of it,
// alone, to a file of mode 0400.
func viewerTokenFile(t *testing.T, c *harness.Cluster) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	if a, err := c.Call(ctx, 0, http.MethodPost, "/api/users", api.UserRequest{Name: "prometheus", Role: fsm.RoleViewer}); err != nil || a.Status != http.StatusCreated {
		t.Fatalf("create the viewer: %v, %v", a, err)
	}
	var tok api.TokenResponse
	a, err := c.Call(ctx, 0, http.MethodPost, "/api/tokens", api.TokenRequest{User: "prometheus", Name: "scrape"})
	if err != nil || a.Status != http.StatusCreated || a.Decode(&tok) != nil {
		t.Fatalf("create the viewer's token: %v, %v", a, err)
	}
	path := filepath.Join(t.TempDir(), "hakuriver.token")
	if err := os.WriteFile(path, []byte(tok.Token+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	return path
}

// prometheusBin returns Debian's prometheus binary: from PATH, or as
// .ci/test-deps.sh extracts it into bin/prometheus.
func prometheusBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	p, err := filepath.Abs("../bin/prometheus/usr/bin/prometheus")
	if err == nil {
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	skipUnlessRequired(t, "HAKURIVER_REQUIRE_PROMETHEUS", "no prometheus binary (make test-deps extracts Debian's into bin/prometheus): %v", err)
	return ""
}

// realPrometheus checks the shipped configuration with promtool, runs
// Prometheus with it (targets, interval and token file adapted) against
// replica 0, and evaluates every query of the Grafana dashboard: each must
// parse and return series.
func realPrometheus(t *testing.T, c *harness.Cluster, tokenFile string) {
	bin := prometheusBin(t)
	dir := t.TempDir()
	shipped := strings.ReplaceAll(string(monitoring.PrometheusConfig), "/etc/prometheus/hakuriver.token", tokenFile)
	check := filepath.Join(dir, "shipped.yml")
	if err := os.WriteFile(check, []byte(shipped), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(filepath.Dir(bin), "promtool"), "check", "config", check).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config of ops/monitoring/prometheus.yml: %v\n%s", err, out)
	}
	// The same file, scraping replica 0 every second.
	api0 := strings.TrimPrefix(c.Replica(0).API, "http://")
	cfg := regexp.MustCompile(`(?s)- targets:\n.*`).ReplaceAllString(shipped, "- targets: ['"+api0+"']\n")
	cfg = strings.NewReplacer("scrape_interval: 15s", "scrape_interval: 1s", "scrape_timeout: 10s", "scrape_timeout: 1s").Replace(cfg)
	if !strings.Contains(cfg, api0) || !strings.Contains(cfg, "scrape_interval: 1s") {
		t.Fatalf("could not adapt the shipped config:\n%s", cfg)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill() //nolint:errcheck // it may have exited
		cmd.Wait()         //nolint:errcheck // killed
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("prometheus log:\n%s", b)
		}
	}()
	query := func(q string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/query?query="+url.QueryEscape(q), nil)
		if err != nil {
			return 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var out struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return 0, fmt.Errorf("query %q: %d: %w", q, resp.StatusCode, err)
		}
		if out.Status != "success" {
			return 0, fmt.Errorf("query %q: %s", q, out.Error)
		}
		return len(out.Data.Result), nil
	}
	// Scraped with the viewer's token: up is 1.
	c.Poll(30*time.Second, "Prometheus to scrape the replica", func() (bool, string) {
		n, err := query(`up{job="hakuriver"} == 1`)
		return err == nil && n == 1, fmt.Sprint(n, err)
	})
	exprs, err := monitoring.Exprs(monitoring.Dashboard)
	if err != nil {
		t.Fatal(err)
	}
	grafana := strings.NewReplacer("$job", "hakuriver", "$__rate_interval", "10s")
	for _, q := range exprs {
		expr := grafana.Replace(q.Expr)
		if _, err := query(expr); err != nil { // a query Prometheus refuses never gets better
			t.Errorf("panel %q: %v", q.Panel, err)
			continue
		}
		c.Poll(20*time.Second, fmt.Sprintf("panel %q: %s", q.Panel, expr), func() (bool, string) {
			n, err := query(expr)
			if err != nil {
				return false, err.Error()
			}
			return n > 0 || strings.Contains(expr, noSnapshotYet), fmt.Sprintf("%d series", n)
		})
	}
	t.Logf("Prometheus evaluated the %d queries of the dashboard", len(exprs))
}
