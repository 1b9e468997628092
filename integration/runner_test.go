//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestRunnerTasks runs native tasks on 2 runner processes of a 3-replica
// cluster (issue 3): heartbeats stay out of the Raft log (invariant 2),
// output is readable through any replica, memory limits, pause/resume and
// kill act on the real processes. The subtests share one cluster and each
// waits for its own tasks to end.
func TestRunnerTasks(t *testing.T) {
	c := startWithRunners(t, runnerSpec{"r1", twoCores}, runnerSpec{"r2", twoCores})

	// First, while nothing has run yet: idle runners heart-beat without
	// adding Raft entries.
	t.Run("IdleHeartbeatsAddNoRaftEntries", func(t *testing.T) { testIdleHeartbeats(t, c.For(t)) })
	t.Run("EchoThroughFollower", func(t *testing.T) { testEchoThroughFollower(t, c.For(t)) })
	t.Run("MemoryLimitKilledOOM", func(t *testing.T) { testKilledOOM(t, c.For(t)) })
	t.Run("PauseStopsCPUResumeFinishes", func(t *testing.T) { testPauseResume(t, c.For(t)) })
	t.Run("KillRunningTask", func(t *testing.T) { testKillRunning(t, c.For(t)) })
	t.Run("InternalCallsNeedToken", func(t *testing.T) { testToken(t, c.For(t)) })
	t.Run("StaleReportsAddNoRaftEntries", func(t *testing.T) { testStaleReports(t, c.For(t)) })
}

// testIdleHeartbeats checks invariant 2: over 5 heartbeat intervals, two
// idle runners heart-beat (the leader's last_heartbeat moves) and the
// leader's applied_index does not move.
func testIdleHeartbeats(t *testing.T, c *harness.Cluster) {
	leader := c.WaitLeader(harness.LeaderTimeout)
	c.WaitSameApplied(10*time.Second, 0, 1, 2)
	// Let registrations and the first heartbeats settle.
	time.Sleep(hbInterval * time.Second)
	before, err := c.Status(leader)
	if err != nil {
		t.Fatal(err)
	}
	beats := lastHeartbeats(t, c, leader)
	time.Sleep(5 * hbInterval * time.Second)
	after, err := c.Status(leader)
	if err != nil {
		t.Fatal(err)
	}
	if after.Term != before.Term || after.LeaderID != before.LeaderID {
		t.Fatalf("leadership changed during the measurement (%s term %d → %s term %d)", before.LeaderID, before.Term, after.LeaderID, after.Term)
	}
	later := lastHeartbeats(t, c, leader)
	// Any replica serves the leader's live figures.
	f := c.Followers()[0]
	nodes, err := c.Nodes(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.LastHeartbeat == nil || n.CPUPercent == nil || n.MemoryUsedBytes == nil {
			t.Errorf("node %s through follower %s: no live figures (last_heartbeat %v, cpu_percent %v, memory_used_bytes %v)",
				n.Hostname, c.Replica(f).ID, n.LastHeartbeat, n.CPUPercent, n.MemoryUsedBytes)
		}
	}
	for name, at := range beats {
		if !later[name].After(at) {
			t.Errorf("runner %s: last_heartbeat %s did not move over %d intervals (now %s)", name, at, 5, later[name])
		}
	}
	if d := after.AppliedIndex - before.AppliedIndex; d != 0 {
		t.Errorf("applied_index grew by %d (%d → %d) over 5 heartbeat intervals of 2 idle runners; heartbeats must stay out of the Raft log",
			d, before.AppliedIndex, after.AppliedIndex)
	}
	t.Logf("applied_index %d → %d over %s; last heartbeats %v → %v", before.AppliedIndex, after.AppliedIndex, 5*hbInterval*time.Second, beats, later)
}

// lastHeartbeats returns each online node's last_heartbeat as the leader
// reports it.
func lastHeartbeats(t *testing.T, c *harness.Cluster, leader int) map[string]time.Time {
	t.Helper()
	nodes, err := c.Nodes(leader)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, n := range nodes {
		if n.LastHeartbeat == nil {
			t.Fatalf("node %s: no last_heartbeat on the leader", n.Hostname)
		}
		at, err := time.Parse(time.RFC3339Nano, *n.LastHeartbeat)
		if err != nil {
			t.Fatalf("node %s: last_heartbeat %q: %v", n.Hostname, *n.LastHeartbeat, err)
		}
		out[n.Hostname] = at
	}
	if len(out) != 2 {
		t.Fatalf("want 2 nodes, got %v", out)
	}
	return out
}

// testEchoThroughFollower submits echo tasks through a follower; they run
// on the runners, and their stdout reads the same through another replica.
func testEchoThroughFollower(t *testing.T, c *harness.Cluster) {
	fs := c.Followers()
	via, other := fs[0], fs[1]
	const n = 4
	want := map[string]string{}
	var ids []string
	for k := range n {
		id := submitOne(t, c, via, native("echo", "hello", fmt.Sprint(k), "from "+c.Replica(via).ID))
		want[id] = fmt.Sprintf("hello %d from %s\n", k, c.Replica(via).ID)
		ids = append(ids, id)
	}
	killOnFailure(t, c, ids...)
	tasks := c.WaitAllFinal(ids, taskTimeout)
	requireAll(t, tasks, "completed")
	for _, id := range ids {
		task := tasks[id]
		if task.AssignedNode != "r1" && task.AssignedNode != "r2" {
			t.Errorf("task %s ran on %q, want a runner", id, task.AssignedNode)
		}
		if task.ExitCode == nil || *task.ExitCode != 0 {
			t.Errorf("task %s: exit code %v, want 0", id, task.ExitCode)
		}
		got, err := c.Stdout(other, id)
		if err != nil {
			t.Fatal(err)
		}
		if got != want[id] {
			t.Errorf("stdout of task %s through %s: %q, want %q", id, c.Replica(other).ID, got, want[id])
		}
	}
}

// testKilledOOM runs a task that allocates ~200 MB under a 32 MiB limit:
// the kernel kills it and the task ends killed_oom.
func testKilledOOM(t *testing.T, c *harness.Cluster) {
	req := shell("head -c 200000000 /dev/zero | tail")
	mem := int64(32 << 20)
	req.RequiredMemoryBytes = &mem
	id := submitOne(t, c, c.Followers()[0], req)
	killOnFailure(t, c, id)
	task := c.WaitFinal(id, taskTimeout)
	if task.Status != "killed_oom" {
		t.Errorf("task over its memory limit: %s, want killed_oom", describe(task))
	}
}

// testPauseResume pauses a busy-looping task: its process then uses no CPU
// at all (frozen); after resume it uses CPU again and, told to stop, ends
// completed.
func testPauseResume(t *testing.T, c *harness.Cluster) {
	dir := sharedDir(t, c, "pause")
	script := fmt.Sprintf(`echo $$ > %[1]s/"$HAKURIVER_TASK_ID".pid; while [ ! -e %[1]s/"$HAKURIVER_TASK_ID".stop ]; do :; done`, dir)
	via := c.Followers()[0]
	id := submitOne(t, c, via, shell(script))
	killOnFailure(t, c, id)
	c.WaitStatus(id, "running", taskTimeout)
	pid, _ := readPID(t, c, filepath.Join(dir, id+".pid"))

	busy := func(what string) {
		t.Helper()
		start, at := cpuTicks(t, pid), time.Now()
		c.Poll(20*time.Second, "the task to use CPU "+what, func() (bool, string) {
			d := cpuTicks(t, pid) - start
			return d >= 5, fmt.Sprintf("%d ticks", d)
		})
		t.Logf("task used 5 ticks of CPU %s within %s", what, time.Since(at).Round(time.Millisecond))
	}
	busy("before pause")

	c.PauseTask(via, id)
	c.WaitStatus(id, "paused", 10*time.Second)
	// The pause answers once the freezer reports FROZEN.
	frozenAt := cpuTicks(t, pid)
	time.Sleep(time.Second)
	if d := cpuTicks(t, pid) - frozenAt; d != 0 {
		t.Errorf("paused task used %d ticks of CPU in 1 s, want 0", d)
	}

	c.ResumeTask(via, id)
	c.WaitStatus(id, "running", 10*time.Second)
	busy("after resume")
	if err := os.WriteFile(filepath.Join(dir, id+".stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	task := c.WaitFinal(id, taskTimeout)
	if task.Status != "completed" || task.ExitCode == nil || *task.ExitCode != 0 {
		t.Errorf("resumed task: %s, want completed with exit code 0", describe(task))
	}
}

// testKillRunning kills a running task: it ends killed and its process is
// gone.
func testKillRunning(t *testing.T, c *harness.Cluster) {
	dir := sharedDir(t, c, "kill")
	script := fmt.Sprintf(`echo $$ > %s/"$HAKURIVER_TASK_ID".pid; exec sleep 60`, dir)
	via := c.Followers()[0]
	id := submitOne(t, c, via, shell(script))
	killOnFailure(t, c, id)
	c.WaitStatus(id, "running", taskTimeout)
	pid, start := readPID(t, c, filepath.Join(dir, id+".pid"))
	c.KillTask(via, id)
	task := c.WaitFinal(id, 10*time.Second)
	if task.Status != "killed" {
		t.Errorf("killed task: %s, want killed", describe(task))
	}
	c.Poll(10*time.Second, fmt.Sprintf("process %d of the killed task to be gone", pid), func() (bool, string) {
		return harness.ProcessGone(pid, start), "still there"
	})
}

// TestRunnerSIGKILL kills runner processes (issue 3, invariant 5): a runner
// that stays dead goes offline within the heartbeat timeout and its
// running task becomes lost; a runner restarted at once loses nothing, its
// native task runs on and reports its real exit code.
func TestRunnerSIGKILL(t *testing.T) {
	c := startWithRunners(t, runnerSpec{"r1", twoCores}, runnerSpec{"r2", twoCores})
	t.Run("StaysDeadTaskLost", func(t *testing.T) { testRunnerLost(t, c.For(t), "r1") })
	t.Run("RestartedTaskCompletes", func(t *testing.T) { testRunnerRestart(t, c.For(t), "r2") })
}

func testRunnerLost(t *testing.T, c *harness.Cluster, name string) {
	via := c.Followers()[0]
	id := submitOne(t, c, via, onTarget(native("sleep", "60"), name))
	killOnFailure(t, c, id)
	c.WaitStatus(id, "running", taskTimeout)

	killedAt := time.Now()
	c.KillRunner(name)
	// The leader commits offline after hbTimeout of silence, checking every
	// half interval; the last heartbeat came up to one interval before the
	// kill. Allow a loaded 2-core machine one more second on top.
	const slack = time.Second
	// What a client sees also waits for the leader's liveness loop and
	// this test's polls, which a loaded 2-core machine delays: the strict
	// bound is on the leader's own measure (silence, below).
	bound := 2*hbTimeout + slack
	var node api.NodeView
	c.Poll(bound+5*time.Second, "runner "+name+" offline and its task lost", func() (bool, string) {
		n, err := c.Node(name)
		if err != nil {
			return false, err.Error()
		}
		node = n
		task, err := c.Task(via, id)
		if err != nil {
			return false, err.Error()
		}
		return n.Status == "offline" && task.Status == "lost", fmt.Sprintf("node %s; %s", n.Status, describe(task))
	})
	seen := time.Since(killedAt)
	// The leader keeps the last heartbeat in memory: silence → offline as
	// the leader measured it.
	var silence time.Duration
	if node.LastHeartbeat != nil {
		if hb, err := time.Parse(time.RFC3339Nano, *node.LastHeartbeat); err == nil {
			silence = node.StatusChangedAt.Sub(hb)
		}
	}
	t.Logf("runner %s SIGKILLed: offline and task lost seen after %s; committed offline %s after its last heartbeat (timeout %s)",
		name, seen.Round(time.Millisecond), silence.Round(time.Millisecond), hbTimeout)
	if seen > bound {
		t.Errorf("runner %s offline and its task lost %s after SIGKILL, want within %s (heartbeat timeout %s)", name, seen.Round(time.Millisecond), bound, hbTimeout)
	}
	if silence > hbTimeout+hbInterval*time.Second/2+slack {
		t.Errorf("runner %s committed offline %s after its last heartbeat, want within the timeout %s", name, silence, hbTimeout)
	}
	task := c.WaitFinal(id, time.Second)
	if task.Status != "lost" {
		t.Errorf("task of the dead runner: %s, want lost", describe(task))
	}
}

func testRunnerRestart(t *testing.T, c *harness.Cluster, name string) {
	via := c.Followers()[0]
	id := submitOne(t, c, via, onTarget(shell("sleep 3; exit 7"), name))
	killOnFailure(t, c, id)
	c.WaitStatus(id, "running", taskTimeout)
	checkSlimSupervisor(t, c, name, id)
	c.KillRunner(name)
	c.RestartRunner(name)
	task := c.WaitFinal(id, taskTimeout)
	if task.Status != "failed" || task.ExitCode == nil || *task.ExitCode != 7 {
		t.Errorf("task across a runner restart: %s, want failed with exit code 7", describe(task))
	}
	if n, err := c.Node(name); err != nil || n.Status != "online" {
		t.Errorf("restarted runner %s: %+v %v, want online", name, n.Status, err)
	}
}

// TestLeaderKillTasksInFlight SIGKILLs the leader while 50 short tasks are
// pending, being dispatched and running on 2 runners (invariants 3-5):
// every task still reaches a final status, completed, and none ran twice.
func TestLeaderKillTasksInFlight(t *testing.T) {
	c := startWithRunners(t, runnerSpec{"r1", twoCores}, runnerSpec{"r2", twoCores})
	dir := sharedDir(t, c, "marks")
	const n = 50
	req := shell(markScript(dir, "sleep 0.2"))

	// Submit through both followers at once.
	fs := c.Followers()
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / 2 {
				// Not SubmitOK: Fatalf belongs to the test goroutine.
				got, err := submitQuiet(c, fs[w], req)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				ids = append(ids, got...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(ids) != n {
		t.Fatalf("submitted %d tasks, want %d", len(ids), n)
	}

	// Kill the leader once some tasks ran, while most are still queued or
	// in flight.
	c.Poll(taskTimeout, "the first tasks to run", func() (bool, string) {
		ents, _ := os.ReadDir(dir)
		return len(ents) >= 4, fmt.Sprintf("%d ran", len(ents))
	})
	old := c.WaitLeader(harness.LeaderTimeout)
	ran, _ := os.ReadDir(dir)
	c.Kill(old)
	leader := c.WaitNewLeader(old, harness.LeaderTimeout)
	t.Logf("killed leader %s with %d of %d tasks started; %s leads", c.Replica(old).ID, len(ran), n, c.Replica(leader).ID)

	tasks := c.WaitAllFinal(ids, 90*time.Second)
	requireAll(t, tasks, "completed")
	if got := checkRanOnce(t, dir, tasks); got != n {
		t.Errorf("%d of %d tasks ran", got, n)
	}
}

// submitQuiet submits req through replica i and returns its task IDs, or
// an error for anything but 202.
func submitQuiet(c *harness.Cluster, i int, req api.SubmitRequest) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	a, out, err := c.Submit(ctx, i, req)
	if err != nil {
		return nil, fmt.Errorf("submit through %s: %w", c.Replica(i).ID, err)
	}
	if a.Status != http.StatusAccepted {
		return nil, fmt.Errorf("submit through %s: want 202, got %s", c.Replica(i).ID, a)
	}
	return out.TaskIDs, nil
}

// testToken checks that internal calls without the cluster token, or with
// a wrong one, get 401 and change nothing: register and heartbeat on a
// replica, /run on a runner (remote code execution otherwise).
func testToken(t *testing.T, c *harness.Cluster) {
	f := c.Followers()[0]
	r1 := c.Runner("r1")
	before, err := c.Nodes(f)
	if err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		base, method, path string
		body               any
	}{
		{c.Replica(f).API, http.MethodPost, "/api/register", api.RegisterRequest{Hostname: "intruder", TotalCores: 1, RunnerURL: "http://127.0.0.1:9"}},
		{c.Replica(f).API, http.MethodPut, "/api/heartbeat/r1", api.HeartbeatRequest{RunningTasks: []int64{}}},
		{c.Replica(f).API, http.MethodPost, "/api/update", api.UpdateRequest{TaskID: 1, Status: "completed"}},
		{r1.API, http.MethodPost, "/run", api.RunRequest{TaskID: 1, Command: "true"}},
		{r1.API, http.MethodPost, "/kill", api.TaskRef{TaskID: 1}},
	}
	for _, k := range calls {
		for _, token := range []string{"", "wrong-token"} {
			ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
			req, err := http.NewRequestWithContext(ctx, k.method, k.base+k.path, jsonBody(t, k.body))
			if err != nil {
				t.Fatal(err)
			}
			if token != "" {
				req.Header.Set(api.TokenHeader, token)
			}
			resp, err := http.DefaultClient.Do(req)
			cancel()
			if err != nil {
				t.Fatalf("%s %s%s: %v", k.method, k.base, k.path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s%s with token %q: %d, want 401", k.method, k.base, k.path, token, resp.StatusCode)
			}
		}
	}
	after, err := c.Nodes(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("%d nodes after unauthenticated calls, %d before", len(after), len(before))
	}
}

// jsonBody encodes v for a request body.
func jsonBody(t *testing.T, v any) *bytes.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

// testStaleReports sends status reports that change nothing, as a runner
// does when it retries, reports late, or reports a task of another
// cluster: each gets the answer the FSM would give (200 for a repeat, 409
// for a move out of a final status, 404 for an unknown task) and none adds
// a Raft entry (invariant 2).
func testStaleReports(t *testing.T, c *harness.Cluster) {
	f := c.Followers()[0]
	id := submitOne(t, c, f, native("true"))
	killOnFailure(t, c, id)
	task := c.WaitFinal(id, taskTimeout)
	if task.Status != "completed" {
		t.Fatalf("task: %s, want completed", describe(task))
	}
	leader := c.WaitLeader(harness.LeaderTimeout)
	c.WaitSameApplied(10*time.Second, 0, 1, 2)
	before, err := c.Status(leader)
	if err != nil {
		t.Fatal(err)
	}
	zero := 0
	for _, k := range []struct {
		req  api.UpdateRequest
		want int
	}{
		{api.UpdateRequest{TaskID: task.TaskID, Status: "completed", ExitCode: &zero}, http.StatusOK},
		{api.UpdateRequest{TaskID: task.TaskID, Status: "running"}, http.StatusConflict},
		{api.UpdateRequest{TaskID: task.TaskID, Status: "failed", ExitCode: &zero}, http.StatusConflict},
		{api.UpdateRequest{TaskID: 4242, Status: "running"}, http.StatusNotFound},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
		a, err := c.CallInternal(ctx, f, http.MethodPost, "/api/update", k.req)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != k.want {
			t.Errorf("report %+v: %s, want %d", k.req, a, k.want)
		}
	}
	after, err := c.Status(leader)
	if err != nil {
		t.Fatal(err)
	}
	if after.AppliedIndex != before.AppliedIndex {
		t.Errorf("reports that change nothing added %d Raft entries (applied_index %d → %d)", after.AppliedIndex-before.AppliedIndex, before.AppliedIndex, after.AppliedIndex)
	}
	if got, err := c.Task(leader, id); err != nil || got.Status != "completed" {
		t.Errorf("task after stale reports: %+v %v, want completed", got.Status, err)
	}
}

// checkSlimSupervisor checks that task id's supervisor on runner name is
// the slim hakuriver-shim when one sits beside the binary under test (as
// `make build` puts it), else "hakuriver runner-shim".
func checkSlimSupervisor(t *testing.T, c *harness.Cluster, name, id string) {
	t.Helper()
	var rec struct {
		PID int `json:"pid"`
	}
	found := false
	err := filepath.WalkDir(c.Runner(name).StateDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || found || d.Name() != "shim.json" || filepath.Base(filepath.Dir(p)) != id {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(b, &rec)
		}
		found = err == nil
		return err
	})
	if err != nil || !found || rec.PID <= 0 {
		t.Fatalf("task %s: supervisor record in runner %s's state: found=%v pid=%d err=%v", id, name, found, rec.PID, err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", rec.PID))
	if err != nil {
		t.Fatalf("task %s: supervisor %d: %v", id, rec.PID, err)
	}
	argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	slim := filepath.Join(filepath.Dir(c.Bin()), "hakuriver-shim")
	want := []string{c.Bin(), "runner-shim"}
	if _, err := os.Stat(slim); err == nil {
		want = []string{slim}
	}
	if len(argv) != len(want)+1 || !slices.Equal(argv[:len(want)], want) {
		t.Errorf("task %s: supervisor %d runs %q, want %q and its task directory", id, rec.PID, argv, want)
	}
}
