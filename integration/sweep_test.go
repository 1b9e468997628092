//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestSweepsAndBatches drives issue 19's first items through the CLI
// against real replicas and a real runner (2 cores): a sweep of 12
// combinations runs each once with the right arguments; killing a batch
// kills its running and pending tasks; task names resolve (and an
// ambiguous one is refused naming the candidates); `task logs --follow`
// exits with the task's exit code.
func TestSweepsAndBatches(t *testing.T) {
	c := startWithRunners(t, runnerSpec{"r1", twoCores})
	t.Run("Sweep12", func(t *testing.T) { testSweep12(t, c.For(t)) })
	t.Run("KillBatch", func(t *testing.T) { testKillBatch(t, c.For(t)) })
	t.Run("Names", func(t *testing.T) { testTaskNames(t, c.For(t)) })
	t.Run("BatchOwnerOnly", func(t *testing.T) { testBatchOwnerOnly(t, c.For(t)) })
}

// testBatchOwnerOnly performs the attack: user bob kills, pauses and
// resumes user alice's batch through every replica and is refused (403),
// her tasks run on; then alice pauses, resumes and kills her own batch, one
// call each, against the real runner.
func testBatchOwnerOnly(t *testing.T, c *harness.Cluster) {
	leader := c.WaitLeader(harness.LeaderTimeout)
	alice := createAccount(t, c, leader, "sweep-alice", fsm.RoleUser)
	bob := createAccount(t, c, leader, "sweep-bob", fsm.RoleUser)
	req := inRoot(native("sleep"))
	req.ArgumentSets = [][]string{{"300"}, {"301"}}
	a := callAs(t, c, leader, "POST", "/api/submit", alice.Token, req)
	var sr api.SubmitResponse
	if a.Status != http.StatusAccepted || a.Decode(&sr) != nil || len(sr.TaskIDs) != 2 || sr.BatchID == "" {
		t.Fatalf("alice's sweep: %s", a)
	}
	killOnFailure(t, c, sr.TaskIDs...)
	status := func(want string) {
		t.Helper()
		for _, id := range sr.TaskIDs {
			c.WaitStatus(id, want, taskTimeout)
		}
	}
	status("running")
	for i := range c.N() {
		for _, action := range []string{"kill", "pause", "resume"} {
			if a := callAs(t, c, i, "POST", "/api/batch/"+sr.BatchID+"/"+action, bob.Token, nil); a.Status != http.StatusForbidden {
				t.Errorf("bob: %s alice's batch through %s: %s, want 403", action, c.Replica(i).ID, a)
			}
		}
	}
	for _, id := range sr.TaskIDs {
		if task, err := c.Task(leader, id); err != nil || task.Status != "running" {
			t.Fatalf("alice's task %s after bob's attempts: %+v %v", id, task.Status, err)
		}
	}
	for _, step := range []struct{ action, want string }{{"pause", "paused"}, {"resume", "running"}, {"kill", "killed"}} {
		a := callAs(t, c, c.Followers()[0], "POST", "/api/batch/"+sr.BatchID+"/"+step.action, alice.Token, nil)
		var br api.BatchActionResponse
		if a.Status != http.StatusOK || a.Decode(&br) != nil || len(br.Acted) != 2 {
			t.Fatalf("alice: %s her batch: %s", step.action, a)
		}
		status(step.want)
	}
}

// sweepIDs splits the output of `hakuriver sweep`: the batch ID, then
// the task IDs.
func sweepIDs(t *testing.T, r harness.CLIResult, want int) (string, []string) {
	t.Helper()
	lines := strings.Fields(r.Stdout)
	if len(lines) != want+1 {
		t.Fatalf("sweep printed %d IDs, want the batch ID and %d task IDs: %s", len(lines), want, r)
	}
	return lines[0], lines[1:]
}

// testSweep12 sweeps 3 × 2 × 2 combinations, at most 3 at once; each task
// appends its arguments to a file named after its array index in shared
// storage: every combination shows up once, in hakurun's order.
func testSweep12(t *testing.T, c *harness.Cluster) {
	dir := sharedDir(t, c, "sweep12")
	script := fmt.Sprintf(`echo "$0 $1 $2" >> %s/"$HAKURIVER_ARRAY_INDEX"`, dir)
	r := c.CLIOK("sweep", "--container", "NULL", "--cores", "1", "--throttle", "3", "--name", "grid",
		"--", "sh", "-c", script, "span:[a, b ,c]", "span:{1..2}", "span:[x,y]")
	batch, ids := sweepIDs(t, r, 12)
	killOnFailure(t, c, ids...)
	if w := c.CLIVia(nil, 2*time.Minute, "", "task", "wait", batch); w.Code != 0 {
		t.Fatalf("task wait on the batch: %s", w)
	}
	var want []string
	for _, a := range []string{"a", "b", "c"} {
		for _, n := range []string{"1", "2"} {
			for _, x := range []string{"x", "y"} {
				want = append(want, a+" "+n+" "+x)
			}
		}
	}
	for i, w := range want {
		b, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			t.Errorf("index %d: %v", i, err)
			continue
		}
		if got := strings.TrimSpace(string(b)); got != w {
			t.Errorf("index %d ran with %q, want %q exactly once", i, got, w)
		}
	}
	tasks := c.WaitAllFinal(ids, taskTimeout)
	requireAll(t, tasks, "completed")
	for _, task := range tasks {
		if strconv.FormatInt(task.BatchID, 10) != batch || task.Name != "grid" || task.ArrayThrottle != 3 {
			t.Errorf("task %d: batch %d name %q throttle %d, want batch %s name grid throttle 3", task.TaskID, task.BatchID, task.Name, task.ArrayThrottle, batch)
		}
	}
	l := c.CLIOK("task", "list", "--batch", batch)
	if !strings.Contains(l.Stdout, "Batch "+batch+": 12 tasks: 12 completed") {
		t.Errorf("task list --batch: no summary of 12 completed tasks:\n%s", l.Stdout)
	}
	// The name of a sweep names its batch.
	s := c.CLIOK("task", "status", "grid")
	if !strings.Contains(s.Stdout, "12 completed") {
		t.Errorf("task status grid: %s", s.Stdout)
	}
}

// testKillBatch sweeps 5 one-core sleeps on the 2-core runner (2 running,
// 3 pending), kills the batch by its ID in one call: all 5 end killed,
// and `task wait` on the batch fails.
func testKillBatch(t *testing.T, c *harness.Cluster) {
	r := c.CLIOK("sweep", "--container", "NULL", "--", "sleep", "span:{300..304}")
	batch, ids := sweepIDs(t, r, 5)
	killOnFailure(t, c, ids...)
	c.Poll(taskTimeout, "2 tasks of the batch running", func() (bool, string) {
		running := 0
		for _, id := range ids {
			if task, err := c.Task(0, id); err == nil && task.Status == "running" {
				running++
			}
		}
		return running == 2, fmt.Sprintf("%d running", running)
	})
	k := c.CLIOK("-o", "json", "task", "kill", batch)
	var resp api.BatchActionResponse
	if err := k.Decode(&resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Acted) != 5 || len(resp.Failed) != 0 {
		t.Errorf("kill batch: %+v, want 5 tasks acted on", resp)
	}
	tasks := c.WaitAllFinal(ids, taskTimeout)
	requireAll(t, tasks, "killed")
	if w := c.CLI("task", "wait", batch); w.Code == 0 || !strings.Contains(w.Stderr, "5 of 5 tasks did not complete") {
		t.Errorf("task wait on a killed batch: %s", w)
	}
	// Nothing runs any more on the runner: a new task gets both cores.
	two := 2
	req := native("true")
	req.RequiredCores = &two
	id := submitOne(t, c, 0, req)
	if task := c.WaitFinal(id, taskTimeout); task.Status != "completed" {
		t.Errorf("a 2-core task after the batch kill: %s", describe(task))
	}
}

// testTaskNames submits named tasks: a unique name works with status,
// logs --follow (which exits 3 as the task did) and wait; a name two
// tasks share is refused listing both; a bad name is refused at submit.
func testTaskNames(t *testing.T, c *harness.Cluster) {
	id := submitCLI(t, c, []string{"--container", "NULL", "--name", "exit-three"}, "sh", "-c", "echo bye; exit 3")
	killOnFailure(t, c, id)
	f := c.CLI("task", "logs", "--follow", "exit-three")
	if f.Code != 3 || !strings.Contains(f.Stdout, "bye") {
		t.Errorf("task logs --follow of a task that exited 3: %s", f)
	}
	if w := c.CLI("task", "wait", "exit-three"); w.Code != 3 {
		t.Errorf("task wait exit-three: %s", w)
	}
	s := c.CLIOK("task", "status", "exit-three")
	if !strings.Contains(s.Stdout, id) || !strings.Contains(s.Stdout, "exit-three") {
		t.Errorf("task status exit-three does not show task %s and its name:\n%s", id, s.Stdout)
	}
	ok := submitCLI(t, c, []string{"--container", "NULL"}, "true")
	if f := c.CLI("task", "logs", "--follow", ok); f.Code != 0 {
		t.Errorf("task logs --follow of a completed task: %s", f)
	}
	a := submitCLI(t, c, []string{"--container", "NULL", "--name", "twin"}, "true")
	b := submitCLI(t, c, []string{"--container", "NULL", "--name", "twin"}, "true")
	killOnFailure(t, c, a, b)
	c.WaitAllFinal([]string{a, b}, taskTimeout)
	amb := c.CLI("task", "kill", "twin")
	if amb.Code == 0 || !strings.Contains(amb.Stderr, "ambiguous") || !strings.Contains(amb.Stderr, a) || !strings.Contains(amb.Stderr, b) {
		t.Errorf("task kill of an ambiguous name: %s", amb)
	}
	bad := c.CLI("task", "submit", "--container", "NULL", "--name", "no spaces", "--", "true")
	if bad.Code == 0 || !strings.Contains(bad.Stderr, "--name") {
		t.Errorf("submit with a bad name: %s", bad)
	}
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	req := native("true")
	req.Name = "12345"
	ans, _, _ := c.Submit(ctx, 0, req)
	if ans.Status != http.StatusBadRequest || !strings.Contains(ans.String(), "name") {
		t.Errorf("API submit with an all-digit name: %v", ans)
	}
}
