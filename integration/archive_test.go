//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// archiveKeep is the history_keep_tasks of TestArchiveRoundTrip: the test's
// own tasks (fewer) stay in memory until as many newer tasks have ended.
const archiveKeep = 12

// archiveArgs make the replicas archive every second and snapshot often,
// so that a replica joining later gets the state by snapshot install.
var archiveArgs = []string{"--history-keep-tasks", strconv.Itoa(archiveKeep), "--history-keep-days", "0",
	"--history-archive-interval", "1", "--raft-snapshot-threshold", "32", "--raft-snapshot-interval", "1"}

// archiveMarker is in the command line of every task the test reads back.
const archiveMarker = "arch-marker"

// TestArchiveRoundTrip runs tasks (an array batch, a failed, a killed one
// with output), reads them through every endpoint on every replica, then
// makes newer tasks push them out of memory into the replicas' archives and
// checks that every endpoint answers exactly as before: on the three
// replicas (whose state digests agree), on a follower killed with SIGKILL
// and restarted after more archiving, on a replica that joins later (by
// Raft snapshot install), and on a new cluster restored from `cluster
// snapshot save`.
func TestArchiveRoundTrip(t *testing.T) {
	c := startCluster(t, harness.Options{HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor, Args: archiveArgs})
	c.StartRunner("arch-r1", twoCores)
	ctx := context.Background()

	// The tasks read back: a batch of 4, a failure and a kill.
	req := shell(`echo "` + archiveMarker + ` $HAKURIVER_ARRAY_INDEX"; echo err-$HAKURIVER_ARRAY_INDEX >&2`)
	req.Array = "0-3"
	ans, sub, err := c.Submit(ctx, 0, req)
	if err != nil || ans.Status != http.StatusAccepted || sub.BatchID == "" || len(sub.TaskIDs) != 4 {
		t.Fatalf("submit the array: %v %s %+v", err, ans, sub)
	}
	ids := append([]string(nil), sub.TaskIDs...)
	ids = append(ids, submitOne(t, c, 1, shell("echo "+archiveMarker+" fails; exit 3")))
	sleeper := submitOne(t, c, 2, shell("echo "+archiveMarker+" sleeps; sleep 60"))
	c.WaitStatus(sleeper, "running", taskTimeout)
	c.KillTask(0, sleeper)
	ids = append(ids, sleeper)
	c.WaitAllFinal(ids, taskTimeout)
	// The kill is final at once; the runner's report of the process's
	// end, with its usage, comes after it: wait for it, or it may land
	// between the reads compared below.
	c.Poll(taskTimeout, "the killed task's usage reported", func() (bool, string) {
		task, err := c.Task(0, sleeper)
		if err != nil {
			return false, err.Error()
		}
		return task.Usage != nil, "no usage yet"
	})
	l := c.WaitLeader(harness.LeaderTimeout)
	c.WaitSameApplied(harness.LeaderTimeout)
	if n := archivedOn(t, c, l); n != 0 {
		t.Fatalf("%d tasks archived before the retention was exceeded", n)
	}
	want := archiveViews(t, c, l, ids, sub.BatchID, true)
	for i := range c.N() {
		sameArchiveViews(t, "replica "+c.Replica(i).ID+" before archiving", want, archiveViews(t, c, i, ids, sub.BatchID, true))
	}

	// Newer tasks end: the test's tasks leave memory on every replica.
	archiveFiller(t, c, archiveKeep)
	for i := range c.N() {
		c.Poll(30*time.Second, "the test's tasks archived on "+c.Replica(i).ID, func() (bool, string) {
			n := archivedOn(t, c, i)
			return n >= len(ids), fmt.Sprintf("%d archived", n)
		})
	}
	c.WaitSameApplied(harness.LeaderTimeout)
	for i := range c.N() {
		sameArchiveViews(t, "replica "+c.Replica(i).ID+" after archiving", want, archiveViews(t, c, i, ids, sub.BatchID, true))
	}
	sameDigests(t, c, c.Running()...)

	t.Run("crash and restart", func(t *testing.T) {
		c := c.For(t)
		f := c.Followers()[0]
		c.Kill(f)
		archiveFiller(t, c, archiveKeep) // archived while it is down
		c.Restart(f)
		c.WaitSameApplied(harness.LeaderTimeout)
		sameArchiveViews(t, "restarted "+c.Replica(f).ID, want, archiveViews(t, c, f, ids, sub.BatchID, true))
		sameDigests(t, c, c.Running()...)
		// Once more, killed right after archiving what it just applied.
		archiveFiller(t, c, archiveKeep)
		c.WaitSameApplied(harness.LeaderTimeout)
		c.Kill(f)
		c.Restart(f)
		c.WaitSameApplied(harness.LeaderTimeout)
		sameArchiveViews(t, "restarted again "+c.Replica(f).ID, want, archiveViews(t, c, f, ids, sub.BatchID, true))
		sameDigests(t, c, c.Running()...)
	})

	t.Run("join by snapshot install", func(t *testing.T) {
		c := c.For(t)
		// The leader's log no longer starts at 1: a new replica can only
		// get the state by snapshot.
		l := c.WaitLeader(harness.LeaderTimeout)
		// A leader restarted in the subtest before may hold no snapshot
		// of this process yet (the metric is absent until then) and takes
		// one only after raft_snapshot_threshold new entries: write some
		// until it has.
		compacted := false
		for round := 0; round < 5 && !compacted; round++ {
			deadline := time.Now().Add(5 * time.Second)
			for !compacted && time.Now().Before(deadline) {
				n, ok := metricValue(t, c, l, "hakuriver_raft_last_snapshot_index")
				compacted = ok && n > 2*32
				if !compacted {
					time.Sleep(100 * time.Millisecond)
				}
			}
			if !compacted {
				archiveFiller(t, c, archiveKeep)
				l = c.WaitLeader(harness.LeaderTimeout)
			}
		}
		if !compacted {
			t.Fatalf("the leader %s took no snapshot beyond index 64", c.Replica(l).ID)
		}
		j := c.AddReplica()
		c.WaitVoters(4, harness.LeaderTimeout)
		c.Poll(harness.LeaderTimeout, "the new replica to install the leader's snapshot", func() (bool, string) {
			log, err := os.ReadFile(c.Replica(j).LogPath())
			return err == nil && strings.Contains(string(log), "Installed remote snapshot"), c.LogTail(j, 5)
		})
		c.WaitSameApplied(harness.LeaderTimeout)
		sameArchiveViews(t, "joined "+c.Replica(j).ID, want, archiveViews(t, c, j, ids, sub.BatchID, true))
		sameDigests(t, c, c.Running()...)
	})

	t.Run("snapshot restore", func(t *testing.T) {
		c := c.For(t)
		file := filepath.Join(t.TempDir(), "archive.snap")
		var saved snapshotInfo
		if err := c.CLIVia([]int{c.Followers()[0]}, 2*time.Minute, "", "-o", "json", "cluster", "snapshot", "save", file).Decode(&saved); err != nil {
			t.Fatal(err)
		}
		total := 0
		for i := range c.N() {
			if n, err := c.AllTasks(i); err == nil {
				total = len(n)
				break
			}
		}
		if saved.Header.Counts.TasksTotal != total || saved.Header.Counts.Tasks["failed"] != 1 || saved.Header.Counts.Tasks["killed"] != 1 {
			t.Fatalf("saved snapshot counts %+v, want %d tasks with 1 failed and 1 killed", saved.Header.Counts, total)
		}
		var info snapshotInfo
		if err := c.CLIOK("-o", "json", "cluster", "snapshot", "inspect", file).Decode(&info); err != nil || !info.ChecksumOK || !info.StateOK {
			t.Fatalf("inspect: %+v %v", info, err)
		}
		b := startCluster(t, harness.Options{Replicas: 1, RestoreFrom: file, AdminToken: c.AdminToken(), Token: c.Token(),
			HeartbeatInterval: hbInterval, HeartbeatTimeoutFactor: hbFactor, Args: archiveArgs})
		// (Its shared dir is another: the logs are not there.)
		got := archiveViews(t, b, 0, ids, sub.BatchID, false)
		wantNoLogs := map[string]string{}
		for k, v := range want {
			if !strings.HasPrefix(k, "log ") {
				wantNoLogs[k] = v
			}
		}
		sameArchiveViews(t, "restored cluster", wantNoLogs, got)
		if n := archivedOn(t, b, 0); n < len(ids) {
			t.Fatalf("the restored replica holds %d archived tasks, want at least %d", n, len(ids))
		}
	})
}

// archiveFiller runs n short tasks through the leader and waits for
// their ends: they push older finished tasks beyond history_keep_tasks.
func archiveFiller(t *testing.T, c *harness.Cluster, n int) {
	t.Helper()
	l := c.WaitLeader(harness.LeaderTimeout)
	var fill []string
	for range n {
		fill = append(fill, submitOne(t, c, l, native("true")))
	}
	c.WaitAllFinal(fill, taskTimeout)
}

// archiveViews returns what replica i answers about the test's tasks:
// each one's status, the batch listing (whole and paged), the listings
// of the marker text (whole, paged, by status) and each task's logs.
func archiveViews(t *testing.T, c *harness.Cluster, i int, ids []string, batch string, logs bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	get := func(key, path string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a, err := c.Call(ctx, i, http.MethodGet, path, nil)
		if err != nil || a.Status != http.StatusOK {
			t.Fatalf("GET %s on %s: %v %s", path, c.Replica(i).ID, err, a)
		}
		out[key] = string(a.Body) + " more=" + a.Header.Get(api.MoreHeader) + " next=" + a.Header.Get(api.NextAfterHeader)
	}
	for _, id := range ids {
		get("status "+id, "/api/status/"+id)
		if logs {
			get("log "+id+" stdout", "/api/task/"+id+"/stdout")
			get("log "+id+" stderr", "/api/task/"+id+"/stderr")
		}
	}
	text := url.QueryEscape(archiveMarker)
	get("batch", "/api/tasks?batch="+batch)
	get("batch page 1", "/api/tasks?limit=3&batch="+batch)
	get("batch page 2", "/api/tasks?limit=3&batch="+batch+"&after="+ids[1])
	get("batch summary", "/api/tasks?view=summary&batch="+batch)
	get("marker", "/api/tasks?text="+text)
	get("marker page 1", "/api/tasks?limit=2&text="+text)
	get("marker page 2", "/api/tasks?limit=2&text="+text+"&after="+ids[4])
	get("marker failed", "/api/tasks?status=failed&text="+text)
	get("marker killed", "/api/tasks?status=killed&text="+text)
	get("marker on the runner", "/api/tasks?node=arch-r1&text="+text)
	return out
}

func sameArchiveViews(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s:\n got %s\nwant %s", what, k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d views, want %d", what, len(got), len(want))
	}
	if t.Failed() {
		t.FailNow()
	}
}

// archivedOn reads replica i's hakuriver_tasks_archived.
func archivedOn(t *testing.T, c *harness.Cluster, i int) int {
	t.Helper()
	return metricOn(t, c, i, "hakuriver_tasks_archived")
}

// metricOn reads a metric without labels from replica i.
func metricOn(t *testing.T, c *harness.Cluster, i int, name string) int {
	t.Helper()
	n, ok := metricValue(t, c, i, name)
	if !ok {
		t.Fatalf("no %s on %s", name, c.Replica(i).ID)
	}
	return n
}

// metricLines returns the lines of replica i's /metrics.
func metricLines(t *testing.T, c *harness.Cluster, i int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := c.Call(ctx, i, http.MethodGet, "/metrics", nil)
	if err != nil || a.Status != http.StatusOK {
		t.Fatalf("GET /metrics on %s: %v %s", c.Replica(i).ID, err, a)
	}
	return strings.Split(string(a.Body), "\n")
}

// metricValue returns the value of the unlabelled metric name on replica
// i, and whether the replica exports it.
func metricValue(t *testing.T, c *harness.Cluster, i int, name string) (int, bool) {
	t.Helper()
	for _, line := range metricLines(t, c, i) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s %q: %v", name, v, err)
			}
			return int(n), true
		}
	}
	return 0, false
}

// sameDigests checks that the replicas' FSMs, archives included, are
// byte-identical at one applied index (the cluster is quiet).
func sameDigests(t *testing.T, c *harness.Cluster, idxs ...int) {
	t.Helper()
	c.Poll(harness.LeaderTimeout, "equal state digests", func() (bool, string) {
		var first api.StateDigest
		var report []string
		for n, i := range idxs {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			a, err := c.CallInternal(ctx, i, http.MethodGet, "/api/cluster/state-digest", nil)
			cancel()
			var d api.StateDigest
			if err != nil || a.Status != http.StatusOK || a.Decode(&d) != nil {
				return false, fmt.Sprintf("state digest of %s: %v %s", c.Replica(i).ID, err, a)
			}
			report = append(report, fmt.Sprintf("%s@%d:%.12s", d.NodeID, d.AppliedIndex, d.SHA256))
			if n == 0 {
				first = d
			} else if d.AppliedIndex != first.AppliedIndex || d.SHA256 != first.SHA256 {
				return false, strings.Join(report, " ")
			}
		}
		return true, strings.Join(report, " ")
	})
}
