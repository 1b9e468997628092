package cluster

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/monitoring"
	"github.com/hakuriver/hakuriver-ha/sshproxy"
	"github.com/hakuriver/hakuriver-ha/sshproxy/sshtest"
)

// scrape returns h's /metrics, fetched with the cluster token.
func scrape(t *testing.T, h *Host) string {
	t.Helper()
	resp, body := do(t, "GET", h.APIURL()+"/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on %s: %d %s", h.cfg.NodeID, resp.StatusCode, body)
	}
	return string(body)
}

// sample returns the value of the series written exactly as series (name
// and sorted labels) in a /metrics body.
func sample(body, series string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// TestMetrics checks /metrics of a 3-replica cluster holding a runner node
// that heart-beats, a running VPS reached through a follower's SSH proxy, a
// running command and two waiting tasks: each figure the issue asks for
// has its series with the right value, labels stay bounded, and every
// metric the Grafana dashboard (ops/monitoring) queries is served.
func TestMetrics(t *testing.T) {
	hosts := startCluster(t, 3)
	var leader, follower *Host
	for _, h := range hosts {
		if h.IsLeader() {
			leader = h
		} else if follower == nil {
			follower = h
		}
	}
	owner := sshtest.NewKey(t).Signer
	port := sshtest.EchoServer(t)
	applyOnLeader(t, hosts, &fsm.RegisterNode{Node: &fsm.Node{Hostname: "n1", URL: "http://127.0.0.1:1", TotalCores: 4}, At: time.Now()})
	const vpsID, cmdID, afterID, bigID = 201, 202, 203, 204
	key := string(ssh.MarshalAuthorizedKey(owner.PublicKey()))
	leader = applyOnLeader(t, hosts, &fsm.SubmitTasks{RequestID: "metrics-fixture", Tasks: []*fsm.Task{
		{TaskID: vpsID, TaskType: fsm.TaskVPS, Status: fsm.StatusRunning, AssignedNode: "n1", SSHPort: port, Command: key, RequiredCores: 1},
		{TaskID: cmdID, TaskType: fsm.TaskCommand, Status: fsm.StatusRunning, AssignedNode: "n1", Command: "sleep", RequiredCores: 1},
		// Pending: one waits for cmdID, one fits no node.
		{TaskID: afterID, TaskType: fsm.TaskCommand, Status: fsm.StatusPending, Command: "true", RequiredCores: 1, After: []int64{cmdID}},
		{TaskID: bigID, TaskType: fsm.TaskCommand, Status: fsm.StatusPending, Command: "true", RequiredCores: 64},
	}})
	// The runner's heartbeat, as a runner sends it, through a follower.
	if resp, body := do(t, "PUT", follower.APIURL()+"/api/heartbeat/n1", api.HeartbeatRequest{RunningTasks: []int64{vpsID, cmdID}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("heartbeat: %d %s", resp.StatusCode, body)
	}
	waitFor(t, 10*time.Second, func() bool { return follower.machine.AppliedIndex() >= leader.machine.AppliedIndex() })
	if err := leader.raft.r.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}

	t.Run("SSHSessionAndBytes", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := sshproxy.DialTunnel(ctx, follower.SSHProxyAddr(), vpsID, 5*time.Second)
		if err != nil {
			t.Fatalf("tunnel: %v", err)
		}
		defer conn.Close()
		msg := "metrics through the proxy\n"
		sshEcho(t, conn, msg)
		waitFor(t, 10*time.Second, func() bool {
			body := scrape(t, follower)
			s, _ := sample(body, "hakuriver_ssh_proxy_sessions")
			to, _ := sample(body, `hakuriver_ssh_proxy_bytes_total{direction="to_vps"}`)
			from, _ := sample(body, `hakuriver_ssh_proxy_bytes_total{direction="from_vps"}`)
			return s == 1 && to == float64(len(msg)) && from == float64(len(msg))
		})
		conn.Close()
		waitFor(t, 10*time.Second, func() bool {
			s, ok := sample(scrape(t, follower), "hakuriver_ssh_proxy_sessions")
			return ok && s == 0
		})
	})

	t.Run("Values", func(t *testing.T) {
		// The leader's next scheduling pass sees the two waiting tasks.
		waitFor(t, 10*time.Second, func() bool {
			body := scrape(t, leader)
			dep, _ := sample(body, `hakuriver_scheduler_queue_tasks{reason="dependency"}`)
			capacity, _ := sample(body, `hakuriver_scheduler_queue_tasks{reason="capacity"}`)
			placing, ok := sample(body, `hakuriver_scheduler_queue_tasks{reason="placing"}`)
			return dep == 1 && capacity == 1 && ok && placing == 0
		})
		lb, fb := scrape(t, leader), scrape(t, follower)
		for _, c := range []struct {
			body, series string
			want         float64
		}{
			{lb, "hakuriver_raft_is_leader", 1},
			{fb, "hakuriver_raft_is_leader", 0},
			{lb, "hakuriver_raft_last_contact_seconds", 0},
			{lb, `hakuriver_runners{status="online"}`, 1},
			{fb, `hakuriver_runners{status="offline"}`, 0},
			{fb, `hakuriver_node_tasks{node="n1",status="running"}`, 2},
			{lb, `hakuriver_tasks{status="pending"}`, 2},
			{lb, "hakuriver_scheduler_placements_total", 0},
		} {
			if got, ok := sample(c.body, c.series); !ok || got != c.want {
				t.Errorf("%s = %v (served: %v), want %v", c.series, got, ok, c.want)
			}
		}
		// Ranges and presence.
		checks := []struct {
			body, series string
			ok           func(float64) bool
		}{
			{fb, "hakuriver_raft_last_contact_seconds", func(v float64) bool { return v >= 0 && v < 30 }},
			{lb, `hakuriver_runner_heartbeat_age_seconds{node="n1"}`, func(v float64) bool { return v >= 0 && v < 30 }},
			{lb, "hakuriver_raft_snapshot_age_seconds", func(v float64) bool { return v >= 0 && v < 60 }},
			{lb, "hakuriver_raft_last_snapshot_index", func(v float64) bool { return v > 0 }},
			{lb, "hakuriver_raft_apply_duration_seconds_count", func(v float64) bool { return v > 0 }},
			{fb, "hakuriver_raft_store_duration_seconds_count", func(v float64) bool { return v > 0 }},
			{fb, "hakuriver_raft_term", func(v float64) bool { return v >= 1 }},
			{fb, "hakuriver_raft_commit_index", func(v float64) bool { return v >= float64(leader.machine.AppliedIndex()) }},
		}
		for _, c := range checks {
			if got, ok := sample(c.body, c.series); !ok || !c.ok(got) {
				t.Errorf("%s = %v (served: %v)", c.series, got, ok)
			}
		}
		// The leader's own figures: a follower serves none of them.
		for _, name := range []string{"hakuriver_runner_heartbeat_age_seconds", "hakuriver_scheduler_queue_tasks"} {
			if strings.Contains(fb, "\n"+name+"{") {
				t.Errorf("the follower serves %s", name)
			}
		}
	})

	// Labels of the API metrics are route patterns and known methods, not
	// what a client sends.
	t.Run("BoundedRouteLabels", func(t *testing.T) {
		for _, r := range []struct{ method, path string }{
			{"GET", "/api/status/987654321"}, {"GET", "/status/987654322"}, {"GET", "/api/no-such-thing/987654323"},
			{"GET", "/987654324/x"}, {"BREW987654325", "/api/tasks"}, {"DELETE", "/api/status/987654326"},
			{"GET", "/api/status/987654327?wait=1s&unless=pending"},
		} {
			do(t, r.method, follower.APIURL()+r.path, nil)
		}
		// An unknown path or method under /api gets the mount's pattern.
		allowed := map[string]bool{routeUnmatched: true, "/metrics": true, "/": true, "/ui": true, "/ui/*": true, "/api/*": true}
		for _, rt := range follower.apiTable() {
			allowed[rt.path], allowed["/api"+rt.path] = true, true
		}
		allowed["/api/status/{id}?wait"], allowed["/status/{id}?wait"] = true, true
		body := scrape(t, follower)
		labelRE := regexp.MustCompile(`^hakuriver_http_requests_total\{code="(\d+)",method="([^"]*)",route="([^"]*)"\}`)
		seen := 0
		for _, line := range strings.Split(body, "\n") {
			if !strings.HasPrefix(line, "hakuriver_http_requests_total") {
				continue
			}
			m := labelRE.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("unexpected series %s", line)
				continue
			}
			seen++
			if !allowed[m[3]] || strings.Contains(line, "98765432") {
				t.Errorf("route label %q is not a route pattern: %s", m[3], line)
			}
			if !slices.Contains([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, m[2]) {
				t.Errorf("method label %q: %s", m[2], line)
			}
		}
		for _, series := range []string{
			`hakuriver_http_requests_total{code="404",method="GET",route="/api/status/{id}"}`,
			`hakuriver_http_requests_total{code="404",method="GET",route="/status/{id}"}`,
			`hakuriver_http_requests_total{code="404",method="GET",route="/api/status/{id}?wait"}`,
		} {
			if _, ok := sample(body, series); !ok {
				t.Errorf("no series %s", series)
			}
		}
		if seen < 5 {
			t.Errorf("only %d request series", seen)
		}
	})

	// Every metric of the Grafana dashboard is served by the leader (a
	// follower serves all but the leader's own figures); a name that is
	// not is reported.
	t.Run("DashboardMetricsExist", func(t *testing.T) {
		names, err := monitoring.DashboardMetrics(monitoring.Dashboard)
		if err != nil || len(names) < 20 {
			t.Fatalf("dashboard metrics: %q, %v", names, err)
		}
		body := scrape(t, leader)
		if missing := monitoring.Missing(names, body); len(missing) > 0 {
			t.Errorf("the dashboard queries metrics the leader does not serve: %q", missing)
		}
		control := append(slices.Clone(names), "hakuriver_made_up_total")
		if missing := monitoring.Missing(control, body); !slices.Equal(missing, []string{"hakuriver_made_up_total"}) {
			t.Errorf("positive control: missing = %q, want the made-up name only", missing)
		}
		t.Logf("%d dashboard metrics served", len(names))
	})
}
