package cluster

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/gossip"
	"github.com/hashicorp/raft"
)

// partEntry is a SubmitPart (or SubmitTasks) found in a replica's Raft log.
type partEntry struct {
	index uint64
	size  int // bytes of the log entry
	inner int // bytes of the submit command (inside an audit envelope)
	part  *fsm.SubmitPart
	whole *fsm.SubmitTasks
}

// submitEntries returns the entries of h's Raft log after index from that
// submit tasks of request req.
func submitEntries(t *testing.T, h *Host, from uint64, req string) []partEntry {
	t.Helper()
	var out []partEntry
	last := h.raft.r.LastIndex()
	for i := from + 1; i <= last; i++ {
		var l raft.Log
		if err := h.raft.logs.GetLog(i, &l); err != nil {
			t.Fatalf("%s: log entry %d: %v", h.NodeID(), i, err)
		}
		if len(l.Data) == 0 {
			continue
		}
		data := l.Data
		c, ok, err := fsm.Decode(data)
		if err != nil || !ok {
			continue // not a command (a configuration change, a no-op)
		}
		if a, audited := c.(*fsm.Audited); audited {
			data = a.Command
			if c, ok, err = fsm.Decode(data); err != nil || !ok {
				continue
			}
		}
		e := partEntry{index: i, size: len(l.Data), inner: len(data)}
		switch c := c.(type) {
		case *fsm.SubmitPart:
			e.part = c
		case *fsm.SubmitTasks:
			e.whole = c
		case *fsm.SubmitPlaced:
			e.whole = &c.SubmitTasks
		default:
			continue
		}
		if e.part != nil && e.part.RequestID == req || e.whole != nil && e.whole.RequestID == req {
			out = append(out, e)
		}
	}
	return out
}

// waitSubmitPartKnown waits until every replica knows fsm.CmdSubmitPart
// (the leader splits submits only then).
func waitSubmitPartKnown(t *testing.T, hosts []*Host) {
	t.Helper()
	waitFor(t, 15*time.Second, func() bool {
		for _, h := range hosts {
			if h.commandKnown(fsm.CmdSubmitPart) != nil {
				return false
			}
		}
		return true
	})
}

// TestSplitSubmit submits a 5,000-task array through a follower of 3
// replicas: the leader's log holds it in several entries, each within the
// bounds (fsm.MaxPartTasks tasks, about fsm.MaxPartBytes of tasks), and
// the answer lists every task once, in array order, as one entry did.
func TestSplitSubmit(t *testing.T) {
	hosts := startCluster(t, 3)
	waitSubmitPartKnown(t, hosts)
	leader := leaderOf(t, hosts)
	follower := hosts[0]
	if follower == leader {
		follower = hosts[1]
	}
	const n, req = 5000, "split-5000"
	before := leader.raft.r.LastIndex()
	ids, _ := submitVia(t, follower, `{"command":"true","array":"0-4999"}`, req)
	waitTaskCount(t, hosts, n)

	entries := submitEntries(t, leader, before, req)
	tasks := 0
	for i, e := range entries {
		if e.part == nil {
			t.Fatalf("entry %d: a whole submit of %d tasks (%d bytes), not a part", e.index, len(e.whole.Tasks), e.size)
		}
		t.Logf("entry %d: part %d of %d, %d tasks, %d bytes (%d of them the command)", e.index, e.part.Part, e.part.Parts, len(e.part.Tasks), e.size, e.inner)
		if len(e.part.Tasks) > fsm.MaxPartTasks || e.inner > fsm.MaxPartBytes+64<<10 {
			t.Errorf("entry %d: %d tasks, %d bytes: over the bound", e.index, len(e.part.Tasks), e.inner)
		}
		if e.part.Part != i || e.part.Parts != len(entries) {
			t.Errorf("entry %d: part %d out of order", e.index, e.part.Part)
		}
		tasks += len(e.part.Tasks)
	}
	if len(entries) < 2 || tasks != n {
		t.Fatalf("%d entries carrying %d tasks: want several carrying %d", len(entries), tasks, n)
	}
	checkArrayAnswer(t, hosts, ids, n)
}

// checkArrayAnswer checks that ids names n tasks, each once, the i-th the
// array's index i, all of one batch, on every replica (the callers check
// that the replicas hold no other tasks).
func checkArrayAnswer(t *testing.T, hosts []*Host, ids []string, n int) {
	t.Helper()
	if len(ids) != n {
		t.Fatalf("the answer lists %d tasks, want %d", len(ids), n)
	}
	seen := make(map[string]bool, n)
	for _, h := range hosts {
		var batch int64
		for i, s := range ids {
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			tk, ok := h.Machine().Task(id)
			if !ok || tk.ArrayIndex == nil || *tk.ArrayIndex != i {
				t.Fatalf("%s: answer[%d] = task %s: %+v", h.NodeID(), i, s, tk)
			}
			if i == 0 {
				batch = tk.BatchID
			}
			if tk.BatchID != batch || batch == 0 {
				t.Fatalf("%s: task %s in batch %d, task %s in %d", h.NodeID(), s, tk.BatchID, ids[0], batch)
			}
			seen[s] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("the answer names %d distinct tasks, want %d", len(seen), n)
	}
}

// TestSplitSubmitRetryAfterSomeParts: a leader committed parts 0 and 2 of a
// 3,000-task array in 3 parts (part 0 twice, as a leader that retried an
// apply it saw no answer to) and was stopped. The client's retry with the
// same request ID through a follower of the new leader commits part 1
// only, and answers every task once, in order, the committed parts' tasks
// with their IDs and the batch of the first; a second retry commits
// nothing.
func TestSplitSubmitRetryAfterSomeParts(t *testing.T) {
	hosts := startCluster(t, 3)
	waitSubmitPartKnown(t, hosts)
	old := leaderOf(t, hosts)
	const n, parts, req = 3000, 3, "split-retry"
	batch, now := old.NextTaskID(), time.Now().UTC()
	tasks := make([]*fsm.Task, n)
	for i := range tasks {
		idx := i
		tasks[i] = &fsm.Task{TaskID: old.NextTaskID(), BatchID: batch, TaskType: fsm.TaskCommand, Command: "true",
			Status: fsm.StatusPending, ArrayIndex: &idx, SubmittedAt: now}
	}
	part := func(i int) *fsm.SubmitPart {
		lo, hi := fsm.PartBounds(n, parts, i)
		return &fsm.SubmitPart{RequestID: req, Part: i, Parts: parts, Total: n, Tasks: tasks[lo:hi]}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	committed := map[int][]int64{}
	for _, i := range []int{0, 0, 2} {
		v, err := old.Propose(ctx, part(i))
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		sr := v.(fsm.SubmitResult)
		if prev, again := committed[i]; again && (!sr.Duplicate || !slices.Equal(sr.TaskIDs, prev)) {
			t.Fatalf("part %d applied again: %+v, first %v", i, sr, prev)
		}
		committed[i] = sr.TaskIDs
	}
	var rest []*Host
	for _, h := range hosts {
		if h != old {
			rest = append(rest, h)
		}
	}
	waitTaskCount(t, rest, 2000)
	if err := old.Close(ctx); err != nil {
		t.Fatalf("stop the leader: %v", err)
	}
	leader := leaderOf(t, rest)
	follower := rest[0]
	if follower == leader {
		follower = rest[1]
	}
	before := leader.raft.r.LastIndex()
	ids, _ := submitVia(t, follower, `{"command":"true","array":"0-2999"}`, req)
	waitTaskCount(t, rest, n)
	checkArrayAnswer(t, rest, ids, n)
	for i, prev := range committed {
		lo, hi := fsm.PartBounds(n, parts, i)
		for k, id := range prev {
			if ids[lo+k] != strconv.FormatInt(id, 10) {
				t.Fatalf("answer[%d:%d] is not committed part %d's tasks: %v", lo, hi, i, ids[lo:hi][:3])
			}
		}
	}
	if tk, _ := rest[0].Machine().Task(committed[0][0]); tk.BatchID != batch {
		t.Fatalf("the tasks are in batch %d, the first parts' was %d", tk.BatchID, batch)
	}
	entries := submitEntries(t, leader, before, req)
	if len(entries) != 1 || entries[0].part == nil || entries[0].part.Part != 1 {
		t.Fatalf("the retry committed %d submit entries, want part 1 only: %+v", len(entries), entries)
	}
	before = leader.raft.r.LastIndex()
	again, _ := submitVia(t, follower, `{"command":"true","array":"0-2999"}`, req)
	if !slices.Equal(again, ids) {
		t.Fatal("a second retry answered other tasks")
	}
	if entries := submitEntries(t, leader, before, req); len(entries) != 0 {
		t.Fatalf("a second retry committed %d submit entries", len(entries))
	}
}

// TestSplitSubmitOldReplica: while a replica that does not know
// fsm.CmdSubmitPart is in the pool, a large submit is one entry, as
// before; once it is gone, the same submit is split.
func TestSplitSubmitOldReplica(t *testing.T) {
	h := startCluster(t, 1)[0]
	old, err := gossip.New(gossip.Config{Name: "host:old", BindAddr: "127.0.0.1", Join: []string{h.GossipAddr()}, Fast: true,
		Logger: slog.New(slog.DiscardHandler), Meta: gossip.Meta{Role: gossip.RoleHost, ID: "old", MaxCommand: uint8(fsm.CmdArchiveTasks)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go old.Run(ctx)                          //nolint:errcheck // returns nil when ctx ends
	defer func() { cancel(); old.Close() }() //nolint:errcheck // test cleanup
	waitFor(t, 10*time.Second, func() bool { return h.commandKnown(fsm.CmdSubmitPart) != nil })
	const body = `{"command":"true","array":"0-1999"}`
	before := h.raft.r.LastIndex()
	ids, _ := submitVia(t, h, body, "whole")
	if e := submitEntries(t, h, before, "whole"); len(ids) != 2000 || len(e) != 1 || e[0].whole == nil || len(e[0].whole.Tasks) != 2000 {
		t.Fatalf("with an old replica: %d tasks, %d submit entries, want one of 2000 tasks", len(ids), len(e))
	}
	cancel()
	old.Close() //nolint:errcheck // test cleanup
	waitSubmitPartKnown(t, []*Host{h})
	before = h.raft.r.LastIndex()
	ids, _ = submitVia(t, h, body, "split")
	if e := submitEntries(t, h, before, "split"); len(ids) != 2000 || len(e) < 2 || e[0].part == nil {
		t.Fatalf("once upgraded: %d tasks, %d submit entries, want several parts", len(ids), len(e))
	}
	checkArrayAnswer(t, []*Host{h}, ids, 2000)
}
