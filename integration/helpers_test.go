//go:build integration

package integration

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// Heartbeat timing of the clusters with runners: a runner silent for
// hbInterval × hbFactor is offline.
const (
	hbInterval = 1
	hbFactor   = 3
	hbTimeout  = hbInterval * hbFactor * time.Second
)

// taskTimeout bounds the wait for a short task to end.
const taskTimeout = 30 * time.Second

// runnerSpec names a runner to start and how.
type runnerSpec struct {
	name string
	opts harness.RunnerOptions
}

// startWithRunners starts 3 replicas with fast heartbeats and the given
// runners, and returns once every runner is online.
func startWithRunners(t *testing.T, runners ...runnerSpec) *harness.Cluster {
	t.Helper()
	c := startCluster(t, harness.Options{HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor})
	for _, r := range runners {
		c.StartRunner(r.name, r.opts)
	}
	return c
}

// twoCores is a runner offering 2 cores and 4 GiB, whatever the machine
// has, for native tasks only (it stays away from Docker and so from the
// containers of other clusters on this machine).
var twoCores = harness.RunnerOptions{Cores: 2, Memory: "4G", NoDocker: true}

// native returns a request for a native task (no container).
func native(command string, args ...string) api.SubmitRequest {
	null := "NULL"
	return api.SubmitRequest{Command: command, Arguments: args, ContainerName: &null}
}

// shell returns a request for a native `sh -c script`.
func shell(script string) api.SubmitRequest { return native("sh", "-c", script) }

// onTarget returns req aimed at node.
func onTarget(req api.SubmitRequest, node string) api.SubmitRequest {
	req.Targets = []string{node}
	return req
}

// submitOne submits req through replica i and returns its single task ID.
func submitOne(t *testing.T, c *harness.Cluster, i int, req api.SubmitRequest) string {
	t.Helper()
	ids := c.SubmitOK(i, req)
	if len(ids) != 1 {
		t.Fatalf("submit %q: want 1 task, got %v", req.Command, ids)
	}
	return ids[0]
}

// sharedDir makes a directory in the cluster's shared dir for the tasks of
// one test to write into.
func sharedDir(t *testing.T, c *harness.Cluster, name string) string {
	t.Helper()
	dir := filepath.Join(c.SharedDir(), name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// markScript is a shell script that appends the task's ID to its own file
// in dir, then runs rest: every execution of the task leaves one line.
func markScript(dir, rest string) string {
	s := fmt.Sprintf(`echo "$HAKURIVER_TASK_ID" >> %s/"$HAKURIVER_TASK_ID"`, dir)
	if rest != "" {
		s += "; " + rest
	}
	return s
}

// checkRanOnce checks that each task in ids that completed left exactly
// one line in dir, that no task left more than one, and that nothing else
// ran; it returns how many ran.
func checkRanOnce(t *testing.T, dir string, tasks map[string]api.Task) int {
	t.Helper()
	ran := 0
	for id, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, id))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		lines := strings.Fields(string(b))
		for _, l := range lines {
			if l != id {
				t.Errorf("task %s: output file holds %q", id, l)
			}
		}
		switch {
		case len(lines) > 1:
			t.Errorf("task %s ran %d times (status %s on %s)", id, len(lines), task.Status, task.AssignedNode)
		case task.Status == "completed" && len(lines) != 1:
			t.Errorf("task %s completed but left %d lines", id, len(lines))
		}
		if len(lines) > 0 {
			ran++
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, ok := tasks[e.Name()]; !ok {
			t.Errorf("unexpected output %s in %s", e.Name(), dir)
		}
	}
	return ran
}

// statusCounts counts tasks by status, for messages.
func statusCounts(tasks map[string]api.Task) map[string]int {
	out := map[string]int{}
	for _, t := range tasks {
		out[string(t.Status)]++
	}
	return out
}

// requireAll fails unless every task has status.
func requireAll(t *testing.T, tasks map[string]api.Task, status string) {
	t.Helper()
	var bad []string
	for _, id := range slices.Sorted(maps.Keys(tasks)) {
		if task := tasks[id]; string(task.Status) != status {
			bad = append(bad, describe(task))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d tasks are not %s (%v): %s", len(bad), len(tasks), status, statusCounts(tasks), strings.Join(bad, "; "))
	}
}

// describe summarises a task for messages.
func describe(t api.Task) string {
	s := fmt.Sprintf("task %d %s on %q", t.TaskID, t.Status, t.AssignedNode)
	if t.ExitCode != nil {
		s += fmt.Sprintf(" exit %d", *t.ExitCode)
	}
	if t.ErrorMessage != "" {
		s += fmt.Sprintf(" (%s)", t.ErrorMessage)
	}
	return s
}

// maxConcurrent returns the most tasks that ran at the same time, from
// their started_at and completed_at (both stamped on the runners' clock,
// which on loopback is one clock). Every task must have both.
func maxConcurrent(t *testing.T, tasks map[string]api.Task) int {
	t.Helper()
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for id, task := range tasks {
		if task.StartedAt == nil || task.CompletedAt == nil {
			t.Errorf("task %s (%s) lacks started_at or completed_at", id, task.Status)
			continue
		}
		edges = append(edges, edge{*task.StartedAt, +1}, edge{*task.CompletedAt, -1})
	}
	// At equal times an end comes before a start: back-to-back is not
	// overlap.
	sort.Slice(edges, func(a, b int) bool {
		if !edges[a].at.Equal(edges[b].at) {
			return edges[a].at.Before(edges[b].at)
		}
		return edges[a].delta < edges[b].delta
	})
	cur, peak := 0, 0
	for _, e := range edges {
		cur += e.delta
		peak = max(peak, cur)
	}
	return peak
}

// readPID waits for a task to write its shell's PID into path and returns
// it with its start time.
func readPID(t *testing.T, c *harness.Cluster, path string) (int, int64) {
	t.Helper()
	var pid int
	var start int64
	c.Poll(taskTimeout, "the task's pid file "+path, func() (bool, string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err.Error()
		}
		if _, err := fmt.Sscan(string(b), &pid); err != nil {
			return false, fmt.Sprintf("%q: %v", b, err)
		}
		st, err := harness.ReadProcStat(pid)
		if err != nil {
			return false, err.Error()
		}
		start = st.StartTicks
		return true, ""
	})
	return pid, start
}

// cpuTicks returns the CPU time process pid has used, in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	st, err := harness.ReadProcStat(pid)
	if err != nil {
		t.Fatalf("read CPU time of pid %d: %v", pid, err)
	}
	return st.CPUTicks
}

// killOnFailure kills the listed tasks at cleanup when they have not ended,
// so a failed subtest does not leave work that disturbs the next one.
func killOnFailure(t *testing.T, c *harness.Cluster, ids ...string) {
	t.Cleanup(func() {
		for _, id := range ids {
			l, _, ok := c.Leader()
			if !ok {
				return
			}
			if task, err := c.Task(l, id); err == nil && !task.Status.Final() {
				ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
				a, err := c.Call(ctx, l, http.MethodPost, "/api/kill/"+id, nil)
				cancel()
				t.Logf("cleanup: kill task %s left %s: %v %v", id, task.Status, a, err)
			}
		}
	})
}

// netnsRequireEnv, set to 1 (as CI does), turns a missing network namespace
// or iptables into a failure instead of a skip.
const netnsRequireEnv = "HAKURIVER_REQUIRE_NETNS"

// skipUnlessRequired skips t with the reason, or fails it when the
// environment variable env is 1: what CI promises to provide must not
// silently go untested there.
func skipUnlessRequired(t *testing.T, env, format string, args ...any) {
	t.Helper()
	if os.Getenv(env) == "1" {
		t.Fatalf("%s=1 but "+format, append([]any{env}, args...)...)
	}
	t.Skipf("skipping: "+format+" (set "+env+"=1 to make this a failure)", args...)
}
