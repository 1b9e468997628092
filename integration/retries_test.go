//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// retryTimeout bounds the wait for a task's three attempts.
const retryTimeout = 90 * time.Second

// TestTaskRetries checks issue 19's retries against real replicas and a
// real runner: a native task that exits 3 with --retries 2 runs exactly
// three times and ends failed with its three attempts recorded, also when
// the leader is SIGKILLed after the first attempt ends (the retry is a
// committed decision: the next leader neither doubles nor drops it).
func TestTaskRetries(t *testing.T) {
	c := startWithRunners(t, runnerSpec{"rt1", twoCores})
	t.Run("Exit3", func(t *testing.T) { testRetriesExit3(t, c.For(t)) })
	t.Run("LeaderKilledBetweenAttempts", func(t *testing.T) { testRetriesLeaderKill(t, c.For(t)) })
	t.Run("CLIKillStopsRetries", func(t *testing.T) { testRetriesCLIKill(t, c.For(t)) })
	t.Run("Sweep", func(t *testing.T) { testRetriesSweep(t, c.For(t)) })
	t.Run("LostRunner", func(t *testing.T) { testRetriesLost(t, c.For(t)) }) // adds runner rt2
	t.Run("LostSameRunner", func(t *testing.T) { testRetriesLostSameRunner(t, c.For(t)) })
}

// retryReq is a native task that appends a line to file and exits 3, with
// two retries after delay.
func retryReq(file, delay string) api.SubmitRequest {
	req := shell(fmt.Sprintf(`echo "run $HAKURIVER_ATTEMPT" >> %s; exit 3`, file))
	req.Retries, req.RetryDelay = 2, delay
	return req
}

// waitDone waits until task id reached a final status no retry follows.
func waitDone(c *harness.Cluster, id string) api.Task {
	return c.WaitTask(id, retryTimeout, "to end its last attempt", func(t api.Task) bool { return t.Done() })
}

// runs counts the lines the task appended to file.
func runs(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	return strings.Count(string(b), "run")
}

// checkThreeFailedAttempts checks the task ended failed with exit 3 after
// three attempts, each recorded failed with exit 3 on the runner, on
// every running replica.
func checkThreeFailedAttempts(t *testing.T, c *harness.Cluster, id string) {
	t.Helper()
	for _, i := range c.Running() {
		task, err := c.Task(i, id)
		if err != nil {
			t.Fatal(err)
		}
		if task.Status != "failed" || task.ExitCode == nil || *task.ExitCode != 3 || task.CurrentAttempt() != 3 || task.RetryPending() {
			t.Errorf("%s: task %s", c.Replica(i).ID, describe(task))
		}
		if len(task.Attempts) != 3 {
			t.Fatalf("%s: %d attempts recorded, want 3: %+v", c.Replica(i).ID, len(task.Attempts), task.Attempts)
		}
		for n, a := range task.Attempts {
			if a.Attempt != n+1 || a.Status != "failed" || a.ExitCode == nil || *a.ExitCode != 3 || a.Node != "rt1" || a.StartedAt == nil || a.CompletedAt == nil {
				t.Errorf("%s: attempt record %d: %+v", c.Replica(i).ID, n, a)
			}
		}
	}
}

func testRetriesExit3(t *testing.T, c *harness.Cluster) {
	leader := c.WaitLeader(harness.LeaderTimeout)
	file := filepath.Join(sharedDir(t, c, "retries-exit3"), "runs")
	id := submitOne(t, c, leader, retryReq(file, ""))
	killOnFailure(t, c, id)
	waitDone(c, id)
	c.WaitSameApplied(catchUpTimeout, c.Running()...)
	checkThreeFailedAttempts(t, c, id)
	if b, _ := os.ReadFile(file); string(b) != "run 1\nrun 2\nrun 3\n" {
		t.Fatalf("the task's runs: %q, want attempts 1, 2, 3 once each", b)
	}
}

func testRetriesLeaderKill(t *testing.T, c *harness.Cluster) {
	old := c.WaitLeader(harness.LeaderTimeout)
	file := filepath.Join(sharedDir(t, c, "retries-leaderkill"), "runs")
	// The delay keeps attempt 2 from starting before the kill, whether
	// the old leader committed the retry or left it to the next one.
	id := submitOne(t, c, c.Followers()[0], retryReq(file, "3s"))
	killOnFailure(t, c, id)
	c.WaitTask(id, retryTimeout, "to end attempt 1", func(t api.Task) bool { return len(t.Attempts) >= 1 })
	c.Kill(old)
	leader := c.WaitNewLeader(old, harness.LeaderTimeout)
	t.Logf("killed leader %s after attempt 1; %s leads", c.Replica(old).ID, c.Replica(leader).ID)
	waitDone(c, id)
	c.Restart(old)
	c.WaitSameApplied(catchUpTimeout, c.Running()...)
	checkThreeFailedAttempts(t, c, id)
	if n := runs(t, file); n != 3 {
		t.Fatalf("the task ran %d times across the leader kill, want 3", n)
	}
}

// testRetriesCLIKill drives retries through the CLI: task status and task
// list show the attempt waiting for its delay, task kill stops the
// retries and task wait returns at once, failing.
func testRetriesCLIKill(t *testing.T, c *harness.Cluster) {
	file := filepath.Join(sharedDir(t, c, "retries-cli"), "runs")
	r := c.CLIOK("task", "submit", "--container", "NULL", "--retries", "5", "--retry-delay", "1h", "--retry-on", "exit",
		"--", "sh", "-c", fmt.Sprintf("echo run >> %s; exit 3", file))
	id := strings.TrimSpace(r.Stdout)
	killOnFailure(t, c, id)
	c.WaitTask(id, retryTimeout, "to wait for attempt 2", func(t api.Task) bool { return t.Status == "pending" && t.CurrentAttempt() == 2 })
	if out := c.CLIOK("task", "status", id).Stdout; !strings.Contains(out, "retry 2/6 at ") || !strings.Contains(out, "#1 failed exit 3 on rt1") ||
		strings.Contains(out, "being placed") {
		t.Fatalf("task status does not show the retry and attempt 1:\n%s", out)
	}
	if out := c.CLIOK("task", "list").Stdout; !strings.Contains(out, "ATTEMPT") || !strings.Contains(out, "2/6") {
		t.Fatalf("task list has no attempt column:\n%s", out)
	}
	c.CLIOK("task", "kill", id)
	if w := c.CLI("task", "wait", id); w.Code == 0 {
		t.Fatalf("task wait of a killed task exited 0: %s", w)
	}
	task := waitDone(c, id)
	if task.Status != "killed" || task.RetryPending() || len(task.Attempts) != 2 || task.Attempts[0].Status != "failed" {
		t.Fatalf("after the kill: %s, attempts %+v", describe(task), task.Attempts)
	}
	if n := runs(t, file); n != 1 {
		t.Fatalf("the task ran %d times, want 1", n)
	}
}

// testRetriesSweep: --retries on a sweep applies to each of its tasks.
func testRetriesSweep(t *testing.T, c *harness.Cluster) {
	dir := sharedDir(t, c, "retries-sweep")
	r := c.CLIOK("sweep", "--container", "NULL", "--retries", "1", "--",
		"sh", "-c", fmt.Sprintf(`echo run >> %s/"$0"; exit 3`, dir), "span:[a,b]")
	ids := strings.Fields(r.Stdout)
	if len(ids) != 3 {
		t.Fatalf("sweep printed %q, want the batch ID and 2 task IDs", r.Stdout)
	}
	killOnFailure(t, c, ids[1:]...)
	if w := c.CLI("task", "wait", ids[0]); w.Code == 0 {
		t.Fatalf("task wait of a failed batch exited 0: %s", w)
	}
	for i, id := range ids[1:] {
		task := waitDone(c, id)
		if task.Status != "failed" || len(task.Attempts) != 2 {
			t.Errorf("task %s: %s, %d attempts, want failed after 2", id, describe(task), len(task.Attempts))
		}
		if n := runs(t, filepath.Join(dir, []string{"a", "b"}[i])); n != 2 {
			t.Errorf("combination %d ran %d times, want 2", i, n)
		}
	}
}

// testRetriesLost: a task whose runner is SIGKILLed is lost and, with
// --retry-on lost, runs again on the other runner. The killed runner,
// back, is told to kill the first attempt (still running under its
// supervisor), and that attempt's late end changes nothing: the second
// attempt runs on; each attempt ran once.
func testRetriesLost(t *testing.T, c *harness.Cluster) {
	c.StartRunner("rt2", twoCores)
	c.WaitNodeStatus("rt2", "online", 30*time.Second)
	file := filepath.Join(sharedDir(t, c, "retries-lost"), "runs")
	req := shell(fmt.Sprintf("echo run >> %s; sleep 600", file))
	req.Retries, req.RetryOn = 1, []string{"lost"}
	id := submitOne(t, c, c.WaitLeader(harness.LeaderTimeout), req)
	killOnFailure(t, c, id)
	first := c.WaitStatus(id, "running", taskTimeout).AssignedNode
	other := map[string]string{"rt1": "rt2", "rt2": "rt1"}[first]
	c.KillRunner(first)
	task := c.WaitTask(id, retryTimeout, "to run attempt 2 on "+other, func(t api.Task) bool {
		return t.Status == "running" && t.CurrentAttempt() == 2 && t.AssignedNode == other
	})
	if len(task.Attempts) != 1 || task.Attempts[0].Status != "lost" || task.Attempts[0].Node != first {
		t.Fatalf("attempt records after the loss: %+v", task.Attempts)
	}
	c.RestartRunner(first)
	c.Poll(retryTimeout, "the restarted runner to drop attempt 1", func() (bool, string) {
		n, err := c.RunnerTasks(first)
		return err == nil && n == 0, fmt.Sprintf("%s tracks %d tasks (%v)", first, n, err)
	})
	c.WaitSameApplied(catchUpTimeout, c.Running()...)
	if task, err := c.Task(c.WaitLeader(harness.LeaderTimeout), id); err != nil || task.Status != "running" || task.CurrentAttempt() != 2 || task.AssignedNode != other {
		t.Fatalf("attempt 2 after attempt 1's late end: %s %v", describe(task), err)
	}
	c.KillTask(c.WaitLeader(harness.LeaderTimeout), id)
	waitDone(c, id)
	if n := runs(t, file); n != 2 {
		t.Fatalf("the task ran %d times, want 2 (one per attempt)", n)
	}
}

// testRetriesLostSameRunner: a task targeted at a runner that is SIGKILLed
// is lost and retried; its next attempt is placed on the same runner once
// back, where the first attempt still runs under its supervisor. The
// runner refuses the second attempt while it tracks the first, the leader
// has the first killed (the runner's heartbeat names its attempt), and
// then the second runs: never both at once, each once.
func testRetriesLostSameRunner(t *testing.T, c *harness.Cluster) {
	file := filepath.Join(sharedDir(t, c, "retries-lost-same"), "runs")
	req := onTarget(shell(fmt.Sprintf("echo run >> %s; sleep 600", file)), "rt2")
	req.Retries, req.RetryOn = 1, []string{"lost"}
	id := submitOne(t, c, c.WaitLeader(harness.LeaderTimeout), req)
	killOnFailure(t, c, id)
	c.WaitStatus(id, "running", taskTimeout)
	c.KillRunner("rt2")
	c.WaitTask(id, retryTimeout, "to be lost and queued again", func(t api.Task) bool {
		return t.Status == "pending" && t.CurrentAttempt() == 2
	})
	c.RestartRunner("rt2")
	task := c.WaitTask(id, retryTimeout, "to run attempt 2 on rt2", func(t api.Task) bool {
		return t.Status == "running" && t.CurrentAttempt() == 2 && t.AssignedNode == "rt2"
	})
	if len(task.Attempts) != 1 || task.Attempts[0].Status != "lost" {
		t.Fatalf("attempt records: %+v", task.Attempts)
	}
	c.Poll(retryTimeout, "rt2 to track attempt 2 only", func() (bool, string) {
		n, err := c.RunnerTasks("rt2")
		return err == nil && n == 1, fmt.Sprintf("rt2 tracks %d tasks (%v)", n, err)
	})
	if n := runs(t, file); n != 2 {
		t.Fatalf("the task ran %d times, want 2 (one per attempt)", n)
	}
	c.KillTask(c.WaitLeader(harness.LeaderTimeout), id)
	waitDone(c, id)
}
