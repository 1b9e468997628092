//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// TestPlaceAtSubmit checks the submit that places its task in the same
// Raft entry (issue 16) on 3 replicas and a native runner: a task that
// fits an idle node costs at most three entries in all (submit and
// placement, running, its end: the old path took four), and such a task,
// retried with its request ID through a new leader after the old one was
// SIGKILLed, is neither created nor run a second time (invariant 3).
func TestPlaceAtSubmit(t *testing.T) {
	c := startWithRunners(t, runnerSpec{"r1", twoCores})
	leader := c.WaitStableLeader(harness.LeaderTimeout, time.Second)

	t.Run("EntriesPerTask", func(t *testing.T) {
		c := c.For(t)
		// Warm-up: the runner's first task, the cluster named.
		c.WaitFinal(submitOne(t, c, leader, native("true")), taskTimeout)
		const n = 10
		// A run counts only on a quiet cluster: the same term, and the
		// runner never offline (a loaded machine may miss heartbeats,
		// which commits two node status changes).
		for attempt := 1; ; attempt++ {
			before, term, changed := quietIndex(t, c, leader), termOf(t, c, leader), nodeChanged(t, c, "r1")
			for range n {
				// Not `true`: a task that ends within the runner's hold of
				// a start report is reported once (final, with its
				// start), which would hide an extra entry of the submit
				// path.
				id := submitOne(t, c, leader, native("sleep", "0.2"))
				if task := c.WaitFinal(id, taskTimeout); task.Status != "completed" {
					t.Fatalf("task %s: %s", id, describe(task))
				}
			}
			entries := quietIndex(t, c, leader) - before
			t.Logf("%d Raft entries for %d tasks (%.2f per task)", entries, n, float64(entries)/n)
			if termOf(t, c, leader) != term || nodeChanged(t, c, "r1") != changed {
				if attempt < 3 {
					t.Logf("not quiet (a new term or the runner went offline): measuring again")
					continue
				}
				t.Fatalf("no quiet run in %d attempts", attempt)
			}
			if entries > 3*n {
				t.Errorf("%d Raft entries for %d sequential tasks: more than 3 per task", entries, n)
			}
			return
		}
	})

	t.Run("EntriesPerTaskConcurrent", func(t *testing.T) {
		c := c.For(t)
		// 8 submitters of short tasks at once: the runner's reports share
		// entries (fsm.UpdateTasks), and a task that starts and ends
		// while a report is in flight is reported once. A running and an
		// ended report of their own, one entry each, would add about one
		// entry per task (an estimate, not measured with this test).
		const submitters, each = 8, 4
		for attempt := 1; ; attempt++ {
			before, term, changed := quietIndex(t, c, leader), termOf(t, c, leader), nodeChanged(t, c, "r1")
			var wg sync.WaitGroup
			errs := make(chan error, submitters)
			for range submitters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- submitAndWait(c, leader, native("true"), each)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			n := submitters * each
			entries := quietIndex(t, c, leader) - before
			t.Logf("%d Raft entries for %d tasks from %d submitters (%.2f per task)", entries, n, submitters, float64(entries)/float64(n))
			if termOf(t, c, leader) != term || nodeChanged(t, c, "r1") != changed {
				if attempt < 3 {
					t.Logf("not quiet (a new term or the runner went offline): measuring again")
					continue
				}
				t.Fatalf("no quiet run in %d attempts", attempt)
			}
			if 2*entries >= 7*uint64(n) {
				// 2.7-2.9 per task on a quiet machine, 3.0-3.3 under a
				// CI's load (reports leave within ~3 ms of a task's end,
				// so fewer share an entry, and queued tasks' placements
				// count too); an entry the load adds can tip one run
				// over 3.5.
				if attempt < 3 {
					t.Logf("3.5 or more entries per task: measuring again")
					continue
				}
				t.Errorf("%d Raft entries for %d concurrent tasks: 3.5 or more per task in %d runs, the reports do not share entries", entries, n, attempt)
			}
			return
		}
	})

	t.Run("ReportsGoToTheLeader", func(t *testing.T) {
		// The runner sends its reports to the replica the answers name as
		// leader, so no report costs a forward through a follower.
		c := c.For(t)
		// One report goes through /api/update, several through /api/updates.
		reports := func(i int) int {
			return routeRequests(t, c, i, "/api/update") + routeRequests(t, c, i, "/api/updates")
		}
		for attempt := 1; ; attempt++ {
			term := termOf(t, c, leader)
			before := make([]int, c.N())
			for i := range c.N() {
				before[i] = reports(i)
			}
			for range 5 {
				if task := c.WaitFinal(submitOne(t, c, leader, native("true")), taskTimeout); task.Status != "completed" {
					t.Fatalf("task: %s", describe(task))
				}
			}
			if termOf(t, c, leader) != term {
				if attempt < 3 {
					t.Logf("a new term during the run: measuring again")
					continue
				}
				t.Fatalf("no run without a new term in %d attempts", attempt)
			}
			for i := range c.N() {
				got := reports(i) - before[i]
				switch {
				case i == leader && got == 0:
					t.Errorf("the leader %s served no report of the 5 tasks", c.Replica(i).ID)
				case i != leader && got != 0:
					t.Errorf("follower %s served %d reports: the runner did not send them to the leader", c.Replica(i).ID, got)
				}
			}
			return
		}
	})

	t.Run("IdempotentAcrossFailover", func(t *testing.T) {
		c := c.For(t)
		dir := sharedDir(t, c, "placed")
		req := shell(markScript(dir, "sleep 2"))
		req.RequestID = "placed-at-submit-failover"
		ids := c.SubmitOK(leader, req)
		// The leader answers once the entry is applied there: placed at
		// submit, the task is already out of the queue.
		task, err := c.Task(leader, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		if task.Status == "pending" {
			t.Fatalf("task %s is pending after its submit on an idle runner: %s", ids[0], describe(task))
		}
		c.Kill(leader)
		nl := c.WaitNewLeader(leader, harness.LeaderTimeout)
		for _, i := range c.Running() {
			if again := c.SubmitOK(i, req); !slices.Equal(again, ids) {
				t.Fatalf("retry through %s (leader %s): tasks %v, first %v", c.Replica(i).ID, c.Replica(nl).ID, again, ids)
			}
		}
		tasks := c.WaitAllFinal(ids, 60*time.Second)
		requireAll(t, tasks, "completed")
		if got := checkRanOnce(t, dir, tasks); got != 1 {
			t.Errorf("%d runs of task %s", got, ids[0])
		}
		for _, i := range c.Running() {
			refs, err := c.Tasks(i)
			if err != nil {
				t.Fatal(err)
			}
			same := 0
			for _, r := range refs {
				if r.RequestID == req.RequestID {
					same++
				}
			}
			if same != 1 {
				t.Errorf("%s holds %d tasks of request %s", c.Replica(i).ID, same, req.RequestID)
			}
		}
	})
}

// submitAndWait submits req n times through replica i, each once the
// previous one completed; safe in a goroutine (it returns errors).
func submitAndWait(c *harness.Cluster, i int, req api.SubmitRequest, n int) error {
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
		a, out, err := c.Submit(ctx, i, req)
		cancel()
		if err != nil || a.Status != http.StatusAccepted || len(out.TaskIDs) != 1 {
			return fmt.Errorf("submit: %v %s", err, a)
		}
		for deadline := time.Now().Add(taskTimeout); ; time.Sleep(5 * time.Millisecond) {
			task, err := c.Task(i, out.TaskIDs[0])
			if err == nil && task.Status.Final() {
				if task.Status != "completed" {
					return fmt.Errorf("task %s: %s", out.TaskIDs[0], describe(task))
				}
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("task %s not final within %s (%v)", out.TaskIDs[0], taskTimeout, err)
			}
		}
	}
	return nil
}

// quietIndex waits until replica i's last Raft index holds still for a
// moment and returns it.
func quietIndex(t *testing.T, c *harness.Cluster, i int) uint64 {
	t.Helper()
	var last uint64
	var since time.Time
	c.Poll(30*time.Second, "a quiet Raft log", func() (bool, string) {
		st, err := c.Status(i)
		if err != nil {
			return false, err.Error()
		}
		if st.LastIndex != last {
			last, since = st.LastIndex, time.Now()
		}
		return time.Since(since) >= 500*time.Millisecond, fmt.Sprintf("last index %d", last)
	})
	return last
}

// termOf returns replica i's Raft term.
func termOf(t *testing.T, c *harness.Cluster, i int) uint64 {
	t.Helper()
	st, err := c.Status(i)
	if err != nil {
		t.Fatal(err)
	}
	return st.Term
}

// nodeChanged returns when runner name's node last changed status.
func nodeChanged(t *testing.T, c *harness.Cluster, name string) time.Time {
	t.Helper()
	n, err := c.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	return n.StatusChangedAt
}

// routeRequests sums replica i's hakuriver_http_requests_total over every
// method and code of route.
func routeRequests(t *testing.T, c *harness.Cluster, i int, route string) int {
	t.Helper()
	total := 0
	for _, line := range metricLines(t, c, i) {
		if !strings.HasPrefix(line, "hakuriver_http_requests_total{") || !strings.Contains(line, `route="`+route+`"`) {
			continue
		}
		f := strings.Fields(line)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		total += int(n)
	}
	return total
}
