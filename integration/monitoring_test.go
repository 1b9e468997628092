//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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

	t.Run("PrometheusScrape", func(t *testing.T) {
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
		// credentials_file of the Prometheus example: the token alone.
		tokenFile := filepath.Join(t.TempDir(), "hakuriver.token")
		if err := os.WriteFile(tokenFile, []byte(tok.Token+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
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
		// Snapshot age needs a snapshot: this young cluster has none, and
		// the cluster package's TestMetrics checks it.
		names = slices.DeleteFunc(names, func(n string) bool { return n == "hakuriver_raft_snapshot_age_seconds" })
		if missing := monitoring.Missing(names, body); len(missing) > 0 {
			t.Errorf("the dashboard queries metrics the replica does not serve: %q", missing)
		}
		if missing := monitoring.Missing([]string{"hakuriver_made_up_total", names[0]}, body); !slices.Equal(missing, []string{"hakuriver_made_up_total"}) {
			t.Errorf("positive control: missing = %q", missing)
		}
	})
}
