//go:build integration

package main

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// replicaState is one replica's footprint at scale.
type replicaState struct {
	id, role         string
	rss              int64
	raftDB, snapshot int64
	snapshots        int
}

// scale is the outcome of the at-scale measurements.
type scale struct {
	tasks    int
	fill     load
	applied  uint64
	replicas []replicaState
	// restart of a follower: process start → API up → caught up.
	restarted    string
	snapshotSeen bool
	waitedSnap   time.Duration
	toAPI        time.Duration
	toCaughtUp   time.Duration
	rssAfter     int64
	restartErr   string
}

// stateAtScale fills a fresh cluster with s.tasks tasks, reports the
// replicas' memory and disk, then kills a follower and measures its restart
// until it has applied what the leader has.
func stateAtScale(parent *scope, bin string, s settings) scale {
	sc := parent.child("scale")
	defer sc.close()
	c := startBenchCluster(sc, bin)
	leader := c.WaitLeader(harness.LeaderTimeout)
	res := scale{tasks: s.tasks}
	res.fill = submitLoad(c, leader, 16, 30*time.Minute, s.tasks, "fill")
	if res.fill.ok != s.tasks {
		sc.Fatalf("fill: %d of %d submits acknowledged; first error: %s", res.fill.ok, s.tasks, res.fill.firstErr)
	}
	res.applied = c.WaitSameApplied(5*time.Minute, 0, 1, 2)
	follower := c.Followers()[0]

	if s.snapshotWait > 0 {
		start := time.Now()
		err := harness.Eventually(s.snapshotWait, func() (bool, string) {
			n, _ := snapshotFiles(c, follower)
			return n > 0, "no snapshot yet"
		})
		res.waitedSnap = time.Since(start)
		res.snapshotSeen = err == nil
	}

	for i := range 3 {
		rs := replicaState{id: c.Replica(i).ID, role: "follower"}
		if i == leader {
			rs.role = "leader"
		}
		rss, err := c.RSS(i)
		if err != nil {
			sc.Fatalf("%v", err)
		}
		rs.rss = rss
		files, err := c.DataFiles(i)
		if err != nil {
			sc.Fatalf("%v", err)
		}
		for _, f := range files {
			switch {
			case f.Path == "raft.db":
				rs.raftDB += f.Size
			case isSnapshotFile(f.Path):
				rs.snapshot += f.Size
				if filepath.Base(f.Path) == "state.bin" {
					rs.snapshots++
				}
			}
		}
		res.replicas = append(res.replicas, rs)
	}

	res.restarted = c.Replica(follower).ID
	c.Kill(follower)
	start := time.Now()
	c.Restart(follower) // returns once the API answers
	res.toAPI = time.Since(start)
	deadline := start.Add(5 * time.Minute)
	for time.Now().Before(deadline.Add(time.Second)) {
		st, err := c.Status(follower)
		if err == nil && st.AppliedIndex >= res.applied {
			res.toCaughtUp = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			res.restartErr = fmt.Sprintf("not caught up after 5m: %+v %v", st, err)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.rssAfter, _ = c.RSS(follower) //nolint:errcheck // 0 is printed as such
	return res
}

// snapshotFiles counts the complete Raft snapshots in replica i's data dir.
func snapshotFiles(c *harness.Cluster, i int) (int, error) {
	files, err := c.DataFiles(i)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range files {
		if isSnapshotFile(f.Path) && filepath.Base(f.Path) == "state.bin" {
			n++
		}
	}
	return n, nil
}

// isSnapshotFile reports whether path (relative to a data dir) belongs to a
// complete snapshot of raft's file store: snapshots/<id>/{meta.json,
// state.bin}; one being written lives in snapshots/<id>.tmp/.
func isSnapshotFile(path string) bool {
	dir := filepath.Dir(path)
	return filepath.Dir(dir) == "snapshots" && !strings.HasSuffix(dir, ".tmp")
}

func printState(out io.Writer, s settings, st scale) {
	fmt.Fprintf(out, "State at %d tasks: filled through the leader by 16 clients in %s (%.0f tasks/s); applied index %d on every replica\n",
		st.tasks, st.fill.elapsed.Round(time.Millisecond), st.fill.perSecond(), st.applied)
	tw := table(out)
	fmt.Fprintln(tw, "replica\trole\tRSS MiB\traft.db MiB\tsnapshots\tsnapshot MiB\t")
	for _, r := range st.replicas {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t\n", r.id, r.role, mib(r.rss), mib(r.raftDB), r.snapshots, mib(r.snapshot))
	}
	tw.Flush() //nolint:errcheck // stdout
	switch {
	case s.snapshotWait == 0:
		fmt.Fprintln(out, "(no wait for Raft's periodic snapshot: the restart below replays the log, unless a snapshot was taken already)")
	case !st.snapshotSeen:
		fmt.Fprintf(out, "(no snapshot appeared on %s within %s)\n", st.restarted, st.waitedSnap.Round(time.Second))
	default:
		fmt.Fprintf(out, "(snapshot appeared on %s after %s of waiting)\n", st.restarted, st.waitedSnap.Round(time.Second))
	}
	tw = table(out)
	fmt.Fprintln(tw, "restart of follower\tstart→API ms\tstart→caught up ms\tRSS after MiB\tnote\t")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", st.restarted, ms(st.toAPI), ms(st.toCaughtUp), mib(st.rssAfter), orDash(st.restartErr))
	tw.Flush() //nolint:errcheck // stdout
}

// fsmResult is the in-process snapshot/restore measurement.
type fsmResult struct {
	tasks            int
	apply            time.Duration
	heap             uint64
	write, restore   time.Duration
	size             int
	restoredTasks    int
	restoredMatching bool
}

// fsmSnapshot applies n single-task submits to an in-process fsm.Machine,
// then times Snapshot().Write and Restore.
func fsmSnapshot(n int) fsmResult {
	res := fsmResult{tasks: n}
	m := fsm.New()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := make([][]byte, n)
	for i := range n {
		id := int64(i+1) << 22
		ids := strconv.FormatInt(id, 10)
		data, err := fsm.Encode(&fsm.SubmitTasks{RequestID: "req-" + ids, Tasks: []*fsm.Task{{
			TaskID: id, TaskType: fsm.TaskCommand, Command: "echo", Arguments: []string{"hi", strconv.Itoa(i)},
			RequiredCores: 1, Status: fsm.StatusPending, ContainerName: "hakuriver-base",
			StdoutPath: "/shared/task_outputs/" + ids + ".out", StderrPath: "/shared/task_errors/" + ids + ".err",
			SystemdUnitName: "hakuriver-task-" + ids + ".scope", SubmittedAt: base.Add(time.Duration(i) * time.Millisecond),
		}}})
		if err != nil {
			panic(fmt.Sprintf("encode: %v", err))
		}
		entries[i] = data
	}
	start := time.Now()
	for i, e := range entries {
		if r := m.Apply(uint64(i+1), e); r.Err != nil {
			panic(fmt.Sprintf("apply %d: %v", i, r.Err))
		}
	}
	res.apply = time.Since(start)
	entries = nil
	runtime.GC()
	var mstats runtime.MemStats
	runtime.ReadMemStats(&mstats)
	res.heap = mstats.HeapAlloc

	var buf bytes.Buffer
	start = time.Now()
	if err := m.Snapshot().Write(&buf); err != nil {
		panic(fmt.Sprintf("snapshot: %v", err))
	}
	res.write = time.Since(start)
	res.size = buf.Len()
	m2 := fsm.New()
	start = time.Now()
	if err := m2.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		panic(fmt.Sprintf("restore: %v", err))
	}
	res.restore = time.Since(start)
	res.restoredTasks = m2.Len()
	var again bytes.Buffer
	if err := m2.Snapshot().Write(&again); err == nil {
		res.restoredMatching = bytes.Equal(again.Bytes(), buf.Bytes())
	}
	return res
}

func printFSM(out io.Writer, r fsmResult) {
	fmt.Fprintf(out, "In-process fsm (package fsm, no Raft, no disk) at %d tasks\n", r.tasks)
	tw := table(out)
	fmt.Fprintln(tw, "apply all ms\theap MiB\tSnapshot+Write ms\tsnapshot MiB\tRestore ms\trestored tasks\tre-snapshot identical\t")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%v\t\n", ms(r.apply), mib(int64(r.heap)), ms(r.write), mib(int64(r.size)), ms(r.restore), r.restoredTasks, r.restoredMatching)
	tw.Flush() //nolint:errcheck // stdout
}
