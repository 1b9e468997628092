//go:build integration

package integration

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// usageBusyScript keeps the shell busy until it has used 2 s of CPU time
// (utime+stime of /proc/$$/stat, in 1/100 s), with builtins only: the
// work is fixed, not the wall-clock time, so a loaded machine makes it
// slower but not different.
const usageBusyScript = `while :; do read -r _ _ _ _ _ _ _ _ _ _ _ _ _ ut st _ < /proc/$$/stat; ` +
	`[ $((ut+st)) -ge 200 ] && break; i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; done`

// usageTimeout bounds the wait for the accounting tasks (2 s of CPU work
// each on a machine shared with other tests).
const usageTimeout = 3 * time.Minute

// TestAccounting runs native tasks of two users on two runners of a
// 3-replica cluster (real cgroups) and checks, through followers: the CPU
// time of 2 s of CPU work and the peak memory of a 200 MiB buffer as the
// runners measured them, in `task status` too; that GET /api/usage (and
// `hakuriver usage`) sums equal the sums over the tasks, by user and by
// node; that a runner's absurd figures are refused (400 naming the field)
// with nothing changed; that a task killed by its user gets its figures
// from the runner's report of its end; and that bad query parameters get
// 400 naming the parameter.
func TestAccounting(t *testing.T) {
	r1, r2 := "acct1-"+uniqueSuffix(), "acct2-"+uniqueSuffix()
	c := startWithRunners(t, runnerSpec{r1, twoCores}, runnerSpec{r2, twoCores})
	leader := c.WaitLeader(harness.LeaderTimeout)
	alice := createAccount(t, c, leader, "alice", fsm.RoleUser)
	bob := createAccount(t, c, leader, "bob", fsm.RoleUser)

	submitAs := func(token string, req api.SubmitRequest) string {
		t.Helper()
		a := callAs(t, c, leader, "POST", "/api/submit", token, req)
		var sr api.SubmitResponse
		if a.Status != http.StatusAccepted || a.Decode(&sr) != nil || len(sr.TaskIDs) != 1 {
			t.Fatalf("submit: %s", a)
		}
		return sr.TaskIDs[0]
	}
	busy := submitAs(alice.Token, onTarget(inRoot(shell(usageBusyScript)), r1))
	mem := submitAs(bob.Token, onTarget(inRoot(shell("dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null")), r2))
	fail := submitAs(alice.Token, onTarget(inRoot(shell("exit 3")), r2))
	long := submitAs(bob.Token, onTarget(inRoot(native("sleep", "300")), r1))

	ended := c.WaitAllFinal([]string{busy, mem, fail}, usageTimeout)
	f := c.Followers()[0]
	// The end and its figures are committed in one entry: a follower that
	// shows the end shows the figures.
	task := func(id string) api.Task {
		t.Helper()
		var out api.Task
		c.Poll(harness.WriteTimeout, "task "+id+" ended on follower "+c.Replica(f).ID, func() (bool, string) {
			tk, err := c.Task(f, id)
			out = tk
			return err == nil && tk.Status.Final(), fmt.Sprint(tk.Status, err)
		})
		return out
	}
	if b := ended[busy]; b.Status != fsm.StatusCompleted {
		t.Fatalf("busy loop: %s %q", b.Status, b.ErrorMessage)
	}
	b := task(busy)
	if b.Usage == nil || b.Usage.Source != "cgroup" {
		t.Fatalf("busy loop: usage %+v, want figures from its cgroup", b.Usage)
	}
	cpu := b.Usage.CPUTime()
	t.Logf("busy loop: CPU %s (user %s, system %s) in %s", cpu, time.Duration(b.Usage.CPUUserNs), time.Duration(b.Usage.CPUSystemNs), fsm.TaskElapsed(&b, time.Time{}))
	if cpu < 1500*time.Millisecond || cpu > 2600*time.Millisecond {
		t.Errorf("busy loop of 2 s of CPU work: measured %s, want 1.5 s to 2.6 s", cpu)
	}
	m := task(mem)
	if m.Status != fsm.StatusCompleted || m.Usage == nil || m.Usage.PeakMemoryBytes < 200<<20 {
		t.Fatalf("200 MiB buffer: status %s usage %+v, want completed with a peak of at least %d bytes", m.Status, m.Usage, 200<<20)
	}
	t.Logf("200 MiB buffer: peak %.1f MiB", float64(m.Usage.PeakMemoryBytes)/(1<<20))
	if fl := task(fail); fl.Status != fsm.StatusFailed || fl.ExitCode == nil || *fl.ExitCode != 3 || fl.Usage == nil {
		t.Fatalf("exit 3: status %s exit %v usage %+v", fl.Status, fl.ExitCode, fl.Usage)
	}
	st := c.CLIOK("task", "status", busy).Stdout
	for _, want := range []string{"Elapsed:", "CPU time:", "Peak memory:"} {
		if !strings.Contains(st, want) {
			t.Errorf("task status %s: no %q in\n%s", busy, want, st)
		}
	}

	// task list -o csv: one accounting record per task.
	lines := strings.Split(c.CLIOK("task", "list", "-o", "csv").Stdout, "\n")
	if !strings.HasPrefix(lines[0], "task_id,name,batch_id,owner,status,exit_code") {
		t.Errorf("task list -o csv: header %q", lines[0])
	}
	found := false
	for _, l := range lines {
		found = found || strings.HasPrefix(l, busy+",") && strings.Contains(l, ",alice,completed,0,")
	}
	if !found {
		t.Errorf("task list -o csv: no record of %s:\n%s", busy, strings.Join(lines, "\n"))
	}

	t.Run("BadFiguresRefused", func(t *testing.T) { testBadFigures(t, c.For(t), long) })

	// The user kills the long task: the runner's report of its end brings
	// the figures to the killed task.
	c.KillTask(leader, long)
	killed := c.WaitTask(long, usageTimeout, "killed with figures", func(tk api.Task) bool { return tk.Usage != nil })
	if killed.Status != fsm.StatusKilled {
		t.Fatalf("killed task: status %s", killed.Status)
	}

	t.Run("SumsMatchTasks", func(t *testing.T) { testUsageSums(t, c.For(t), f) })
	t.Run("BadQueryParameters", func(t *testing.T) { testUsageBadQuery(t, c.For(t), f) })
}

// testBadFigures sends final reports with impossible figures for the
// running task id, as a runner would (cluster token): each is refused
// with 400 naming the field, and the task stays running without figures.
func testBadFigures(t *testing.T, c *harness.Cluster, id string) {
	leader := c.WaitLeader(harness.LeaderTimeout)
	c.WaitStatus(id, "running", usageTimeout)
	tid, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	code := 0
	report := func(u fsm.Usage) api.UpdateRequest {
		return api.UpdateRequest{TaskID: tid, Status: "completed", ExitCode: &code, CompletedAt: &now, Usage: &u}
	}
	cases := []struct {
		path  string
		body  any
		field string
	}{
		{"/api/update", report(fsm.Usage{CPUUserNs: -1}), "usage.cpu_user_ns"},
		{"/api/update", report(fsm.Usage{PeakMemoryBytes: fsm.MaxPeakMemoryBytes * 4}), "usage.peak_memory_bytes"},
		// Ten hours of CPU time for a task that ran seconds on 2 cores.
		{"/api/update", report(fsm.Usage{CPUUserNs: int64(10 * time.Hour)}), "usage.cpu_user_ns+cpu_system_ns"},
		{"/api/update", report(fsm.Usage{Signal: 1000}), "usage.signal"},
		// In a batch, the report is refused alone (its result), the
		// request answered.
		{"/api/updates", api.UpdatesRequest{Updates: []api.UpdateRequest{report(fsm.Usage{CPUSystemNs: math.MinInt64})}}, "updates[0].usage.cpu_system_ns"},
		{"/api/update", api.UpdateRequest{TaskID: tid, Status: "running", Usage: &fsm.Usage{}}, "usage: figures come with a final status only"},
	}
	before, err := c.Status(leader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
		a, err := c.CallInternal(ctx, leader, "POST", tc.path, tc.body)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		status := a.Status
		var ur api.UpdatesResponse
		if tc.path == "/api/updates" && a.Status == http.StatusOK && a.Decode(&ur) == nil && len(ur.Results) == 1 {
			status = ur.Results[0].Status
		}
		if status != http.StatusBadRequest || !strings.Contains(a.String(), tc.field) {
			t.Errorf("POST %s with %s: got %s, want 400 naming %s", tc.path, tc.field, a, tc.field)
		}
	}
	after, err := c.Status(leader)
	if err != nil {
		t.Fatal(err)
	}
	if after.Term == before.Term && after.AppliedIndex != before.AppliedIndex {
		// Heartbeats add no entries (invariant 2); nothing else runs.
		t.Errorf("applied index moved %d → %d while only refused reports were sent", before.AppliedIndex, after.AppliedIndex)
	}
	if tk, err := c.Task(leader, id); err != nil || tk.Status != fsm.StatusRunning || tk.Usage != nil {
		t.Fatalf("task %s after refused reports: %s usage %+v (%v), want running without figures", id, tk.Status, tk.Usage, err)
	}
}

// testUsageSums checks GET /api/usage through replica f, and `hakuriver
// usage -o json`, against sums over every task, by user and by node.
func testUsageSums(t *testing.T, c *harness.Cluster, f int) {
	tasks, err := c.AllTasks(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, by := range []string{"user", "node"} {
		var res api.UsageResponse
		ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
		a, err := c.Call(ctx, f, "GET", "/api/usage?consistent=1&by="+by, nil)
		cancel()
		if err != nil || a.Status != http.StatusOK || a.Decode(&res) != nil {
			t.Fatalf("GET /api/usage?by=%s: %s %v", by, a, err)
		}
		var viaCLI api.UsageResponse
		if err := c.CLIOK("usage", "--by", by, "-o", "json").Decode(&viaCLI); err != nil {
			t.Fatal(err)
		}
		want := map[string]*fsm.UsageRow{}
		total := fsm.UsageRow{}
		for _, tk := range tasks {
			if tk.Status != fsm.StatusCompleted && tk.Status != fsm.StatusFailed && tk.Status != fsm.StatusKilled {
				t.Fatalf("task %d is %s: every task should have ended", tk.TaskID, tk.Status)
			}
			key := tk.Owner
			if by == "node" {
				key = tk.AssignedNode
			}
			if want[key] == nil {
				want[key] = &fsm.UsageRow{Key: key}
			}
			// Summed here from the task records, not with the FSM's
			// own FiguresOf: cores (GPUs) held × the time from start to
			// end, the runner's CPU counters, the largest peak.
			hours, cpuHours, peak := 0.0, 0.0, int64(0)
			if tk.StartedAt != nil && tk.CompletedAt != nil && tk.CompletedAt.After(*tk.StartedAt) {
				hours = tk.CompletedAt.Sub(*tk.StartedAt).Hours()
			}
			if tk.Usage != nil {
				cpuHours = float64(tk.Usage.CPUUserNs+tk.Usage.CPUSystemNs) / float64(time.Hour)
				peak = tk.Usage.PeakMemoryBytes
			}
			for _, r := range []*fsm.UsageRow{want[key], &total} {
				r.Tasks++
				r.ElapsedHours += hours
				r.CoreHours += float64(tk.RequiredCores) * hours
				r.CPUHours += cpuHours
				r.GPUHours += float64(len(tk.RequiredGPUs)) * hours
				r.MaxPeakMemoryBytes = max(r.MaxPeakMemoryBytes, peak)
				switch tk.Status {
				case fsm.StatusCompleted:
					r.Completed++
				case fsm.StatusKilled:
					r.Killed++
				default:
					r.Failed++
				}
			}
		}
		if len(res.Rows) != len(want) {
			t.Fatalf("by %s: rows %+v, want %d rows", by, res.Rows, len(want))
		}
		same := func(got, w fsm.UsageRow) bool {
			near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
			return got.Tasks == w.Tasks && got.Failed == w.Failed && got.Completed == w.Completed && got.Killed == w.Killed &&
				near(got.CoreHours, w.CoreHours) && near(got.ElapsedHours, w.ElapsedHours) && near(got.CPUHours, w.CPUHours) &&
				near(got.GPUHours, w.GPUHours) && got.MaxPeakMemoryBytes == w.MaxPeakMemoryBytes
		}
		for _, r := range res.Rows {
			if w := want[r.Key]; w == nil || !same(r, *w) {
				t.Errorf("by %s: row %+v, want %+v", by, r, w)
			}
		}
		if !same(res.Total, total) || !same(viaCLI.Total, total) || len(viaCLI.Rows) != len(res.Rows) {
			t.Errorf("by %s: total %+v (CLI %+v), want %+v", by, res.Total, viaCLI.Total, total)
		}
		if by == "user" {
			if w := want["alice"]; w == nil || w.Tasks != 2 || w.Failed != 1 || w.CPUHours < 1.5/3600 {
				t.Errorf("alice: %+v, want 2 tasks, 1 failed, at least 1.5 s of CPU", w)
			}
		}
	}
}

// testUsageBadQuery checks that bad parameters of GET /api/usage get 400
// naming the parameter, and the CLI exits non-zero saying so.
func testUsageBadQuery(t *testing.T, c *harness.Cluster, f int) {
	for q, field := range map[string]string{
		"by=week":                           "by",
		"since=yesterday":                   "since",
		"until=2026-13-45":                  "until",
		"since=2026-12-02&until=2026-12-01": "until",
		"user=not%20a%20name":               "user",
		"group=x":                           "group",
		"since=2026-12-01T00:00:00&until=tomorrow": "since",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
		a, err := c.Call(ctx, f, "GET", "/api/usage?"+q, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != http.StatusBadRequest || !strings.Contains(a.String(), field) {
			t.Errorf("GET /api/usage?%s: got %s, want 400 naming %s", q, a, field)
		}
	}
	r := c.CLI("usage", "--by", "week")
	if r.Code == 0 || !strings.Contains(r.Stderr, "HTTP 400") || !strings.Contains(r.Stderr, "by") {
		t.Errorf("usage --by week: exit %d, stderr %q; want a failure with HTTP 400 naming by", r.Code, r.Stderr)
	}
}
