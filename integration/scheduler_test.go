//go:build integration

package integration

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestScheduler drives the leader's scheduler with real runners (issue
// 4): a node never runs more than its cores, arrays are throttled, --after
// orders and fails dependents, drained nodes take no new work, time limits
// kill, nodes show sinfo-like states. Two runners with 2 cores each; the
// subtests share the cluster and each waits for its own tasks to end.
func TestScheduler(t *testing.T) {
	c := startWithRunners(t, runnerSpec{"r1", twoCores}, runnerSpec{"r2", twoCores})
	t.Run("CoresBoundConcurrency", func(t *testing.T) { testCoresBound(t, c.For(t)) })
	t.Run("ArrayThrottle", func(t *testing.T) { testArray(t, c.For(t)) })
	t.Run("After", func(t *testing.T) { testAfter(t, c.For(t)) })
	t.Run("DrainUndrain", func(t *testing.T) { testDrain(t, c.For(t)) })
	t.Run("TimeLimit", func(t *testing.T) { testTimeLimit(t, c.For(t)) })
	t.Run("NodeStates", func(t *testing.T) { testNodeStates(t, c.For(t)) }) // last: kills r1
}

// testCoresBound queues 6 one-core `sleep 1` tasks on a 2-core runner:
// never more than 2 run at once, all 6 complete.
func testCoresBound(t *testing.T, c *harness.Cluster) {
	via := c.Followers()[0]
	one := 1
	var ids []string
	for range 6 {
		req := onTarget(native("sleep", "1"), "r1")
		req.RequiredCores = &one
		ids = append(ids, submitOne(t, c, via, req))
	}
	killOnFailure(t, c, ids...)
	tasks := c.WaitAllFinal(ids, 60*time.Second)
	requireAll(t, tasks, "completed")
	peak := maxConcurrent(t, tasks)
	t.Logf("6 one-core tasks on a 2-core runner: at most %d ran at once", peak)
	if peak > 2 {
		t.Errorf("%d tasks ran at once on a 2-core runner, want at most 2", peak)
	}
	if peak < 2 {
		t.Errorf("at most %d task ran at once on a 2-core runner with 6 queued, want 2 (the queue should fill free cores)", peak)
	}
}

// testArray submits array 0-9%3: 10 tasks, each index seen exactly once in
// HAKURIVER_ARRAY_INDEX, never more than 3 running at once although the
// runners have 4 cores.
func testArray(t *testing.T, c *harness.Cluster) {
	via := c.Followers()[0]
	req := shell(`echo "$HAKURIVER_ARRAY_INDEX $HAKURIVER_BATCH_ID"; sleep 0.5`)
	req.Array = "0-9%3"
	ids := c.SubmitOK(via, req)
	if len(ids) != 10 {
		t.Fatalf("array 0-9%%3: %d tasks, want 10", len(ids))
	}
	killOnFailure(t, c, ids...)
	tasks := c.WaitAllFinal(ids, 60*time.Second)
	requireAll(t, tasks, "completed")
	other := c.Followers()[1]
	seen := map[int]string{}
	for _, id := range ids {
		task := tasks[id]
		out, err := c.Stdout(other, id)
		if err != nil {
			t.Fatal(err)
		}
		var idx int
		var batch string
		if _, err := fmt.Sscan(out, &idx, &batch); err != nil {
			t.Errorf("task %s: stdout %q: %v", id, out, err)
			continue
		}
		if prev, dup := seen[idx]; dup {
			t.Errorf("HAKURIVER_ARRAY_INDEX %d seen in tasks %s and %s", idx, prev, id)
		}
		seen[idx] = id
		if task.ArrayIndex == nil || *task.ArrayIndex != idx {
			t.Errorf("task %s: printed index %d, array_index %v", id, idx, task.ArrayIndex)
		}
		if batch != strconv.FormatInt(task.BatchID, 10) || task.BatchID == 0 {
			t.Errorf("task %s: HAKURIVER_BATCH_ID %q, batch_id %d", id, batch, task.BatchID)
		}
	}
	for i := range 10 {
		if _, ok := seen[i]; !ok {
			t.Errorf("HAKURIVER_ARRAY_INDEX %d never seen (saw %v)", i, slices.Sorted(maps.Keys(seen)))
		}
	}
	peak := maxConcurrent(t, tasks)
	t.Logf("array 0-9%%3 on 4 free cores: at most %d ran at once", peak)
	if peak > 3 {
		t.Errorf("%d tasks of array 0-9%%3 ran at once, want at most 3", peak)
	}
}

// testAfter: B after A starts only once A completed; C after a failing F
// ends failed with a reason naming F.
func testAfter(t *testing.T, c *harness.Cluster) {
	via := c.Followers()[0]
	a := submitOne(t, c, via, native("sleep", "1"))
	f := submitOne(t, c, via, shell("exit 3"))
	reqB := native("true")
	reqB.After = []string{a}
	b := submitOne(t, c, via, reqB)
	reqC := native("true")
	reqC.After = []string{f}
	cc := submitOne(t, c, via, reqC)
	killOnFailure(t, c, a, f, b, cc)

	// While A runs, B waits (A is read again after B: on a slow machine
	// A may have completed in between, and B then may have started).
	c.WaitStatus(a, "running", taskTimeout)
	early, err := c.Task(via, b)
	if err != nil {
		t.Fatal(err)
	}
	if ta, err := c.Task(via, a); err == nil && ta.Status == "running" && early.Status != "pending" {
		t.Errorf("B while A runs: %s, want pending", describe(early))
	}
	tasks := c.WaitAllFinal([]string{a, f, b, cc}, taskTimeout)
	ta, tf, tb, tc := tasks[a], tasks[f], tasks[b], tasks[cc]
	if ta.Status != "completed" || tb.Status != "completed" {
		t.Errorf("A: %s; B after A: %s; want both completed", describe(ta), describe(tb))
	}
	if ta.CompletedAt != nil && tb.StartedAt != nil && tb.StartedAt.Before(*ta.CompletedAt) {
		t.Errorf("B started at %s, before A completed at %s", tb.StartedAt, ta.CompletedAt)
	}
	if tf.Status != "failed" || tf.ExitCode == nil || *tf.ExitCode != 3 {
		t.Errorf("F: %s, want failed with exit code 3", describe(tf))
	}
	if tc.Status != "failed" || !strings.Contains(tc.ErrorMessage, f) {
		t.Errorf("C after failing F (%s): %s, want failed with a reason naming %s", f, describe(tc), f)
	}
	if tc.StartedAt != nil {
		t.Errorf("C after failing F started at %s; it must never run", tc.StartedAt)
	}
}

// testDrain: a drained runner gets no new task, neither a targeted one
// (which waits, saying why) nor untargeted ones (which go elsewhere);
// undrain lets the targeted one run there.
func testDrain(t *testing.T, c *harness.Cluster) {
	via := c.Followers()[0]
	c.Drain(via, "r2", true)
	drained := true
	t.Cleanup(func() {
		if drained {
			c.Drain(via, "r2", false)
		}
	})
	if n, err := c.Node("r2"); err != nil || !n.Drained {
		t.Fatalf("r2 after drain: %+v %v, want drained", n, err)
	}
	target := submitOne(t, c, via, onTarget(native("true"), "r2"))
	var free []string
	for range 4 {
		free = append(free, submitOne(t, c, via, native("sleep", "0.3")))
	}
	killOnFailure(t, c, append([]string{target}, free...)...)
	tasks := c.WaitAllFinal(free, 60*time.Second)
	requireAll(t, tasks, "completed")
	for id, task := range tasks {
		if task.AssignedNode != "r1" {
			t.Errorf("task %s ran on %q while r2 was drained, want r1", id, task.AssignedNode)
		}
	}
	task, err := c.Task(via, target)
	if err != nil {
		t.Fatal(err)
	}
	if task.Status != "pending" || task.AssignedNode != "" {
		t.Errorf("task for drained r2: %s, want pending and unassigned", describe(task))
	}
	leader := c.WaitLeader(harness.LeaderTimeout)
	q, err := c.Queue(leader)
	if err != nil {
		t.Fatal(err)
	}
	var reason string
	for _, e := range q {
		if e.TaskID == target {
			reason = e.Reason
		}
	}
	if !strings.Contains(reason, "drain") {
		t.Errorf("queue reason of the task for drained r2: %q, want one saying it is drained (queue %+v)", reason, q)
	}

	c.Drain(via, "r2", false)
	drained = false
	done := c.WaitFinal(target, taskTimeout)
	if done.Status != "completed" || done.AssignedNode != "r2" {
		t.Errorf("task for r2 after undrain: %s, want completed on r2", describe(done))
	}
}

// testTimeLimit: time_limit_seconds 1 on `sleep 30` kills it, with a
// message about the time limit, and its process is gone.
func testTimeLimit(t *testing.T, c *harness.Cluster) {
	dir := sharedDir(t, c, "timelimit")
	req := shell(fmt.Sprintf(`echo $$ > %s/"$HAKURIVER_TASK_ID".pid; exec sleep 30`, dir))
	req.TimeLimitSeconds = 1
	via := c.Followers()[0]
	id := submitOne(t, c, via, req)
	killOnFailure(t, c, id)
	c.WaitStatus(id, "running", taskTimeout)
	pid, start := readPID(t, c, dir+"/"+id+".pid")
	task := c.WaitFinal(id, 15*time.Second)
	if task.Status != "killed" || !strings.Contains(strings.ToLower(task.ErrorMessage), "time limit") {
		t.Errorf("task past its time limit: %s, want killed with a message about the time limit", describe(task))
	}
	if task.StartedAt != nil && task.CompletedAt != nil {
		if ran := task.CompletedAt.Sub(*task.StartedAt); ran > 10*time.Second {
			t.Errorf("task with a 1 s time limit ran %s", ran)
		}
	}
	c.Poll(10*time.Second, fmt.Sprintf("process %d of the task past its time limit to be gone", pid), func() (bool, string) {
		return harness.ProcessGone(pid, start), "still there"
	})
}

// TestLeaderKillQueueDrains SIGKILLs the leader while tasks wait in the
// queue of a 2-core runner: the new leader drains the queue, no task runs
// twice, and its accounting (from committed placements) still never puts
// more than 2 on the runner.
func TestLeaderKillQueueDrains(t *testing.T) {
	c := startWithRunners(t, runnerSpec{"r1", twoCores})
	dir := sharedDir(t, c, "marks")
	via := c.Followers()[0]
	const n = 10
	var ids []string
	for range n {
		ids = append(ids, submitOne(t, c, via, shell(markScript(dir, "sleep 0.5"))))
	}
	old := c.WaitLeader(harness.LeaderTimeout)
	var queued []api.QueueEntry
	c.Poll(taskTimeout, "tasks placed with at least half still queued", func() (bool, string) {
		q, err := c.Queue(old)
		if err != nil {
			return false, err.Error()
		}
		queued = q
		return len(q) < n && len(q) >= n/2, fmt.Sprintf("%d of %d queued", len(q), n)
	})
	c.Kill(old)
	leader := c.WaitNewLeader(old, harness.LeaderTimeout)
	t.Logf("killed leader %s with %d of %d tasks queued; %s leads", c.Replica(old).ID, len(queued), n, c.Replica(leader).ID)

	tasks := c.WaitAllFinal(ids, 90*time.Second)
	requireAll(t, tasks, "completed")
	if got := checkRanOnce(t, dir, tasks); got != n {
		t.Errorf("%d of %d tasks ran", got, n)
	}
	if peak := maxConcurrent(t, tasks); peak > 2 {
		t.Errorf("%d tasks ran at once on a 2-core runner across the failover, want at most 2", peak)
	}
}
