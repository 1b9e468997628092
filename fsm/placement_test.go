package fsm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// history renders a task's placement history as "event@node@sec ...".
func history(tk *fsm.Task) string {
	var parts []string
	for _, p := range tk.Placements {
		parts = append(parts, fmt.Sprintf("%s@%s@%d", p.Event, p.Node, int(p.At().Sub(t0).Seconds())))
	}
	return strings.Join(parts, " ")
}

func TestPlacementHistory(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.register("n2", 0)
	h.submit(1)
	if tk := h.task(1); tk.Placements != nil {
		t.Fatalf("a pending task has a history: %v", tk.Placements)
	}
	h.ok(&fsm.AssignTask{TaskID: 1, Node: "n1", At: at(5)})
	// A failed dispatch puts it back in the queue.
	h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusPending, At: at(6)})
	h.ok(&fsm.AssignTask{TaskID: 1, Node: "n2", At: at(7)})
	// The runner's start time wins over the command's.
	h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, StartedAt: timep(at(8)), At: at(9)})
	// Pause, resume and a retried report add nothing.
	h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusPaused, At: at(10)})
	h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, At: at(11)})
	h.unchanged(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, At: at(12)})
	h.ok(&fsm.SetNodeStatus{Hostname: "n2", Status: fsm.NodeOffline, At: at(13)})
	want := "placed@n1@5 requeued@n1@6 placed@n2@7 started@n2@8 lost@n2@13"
	if got := history(h.task(1)); got != want {
		t.Fatalf("history = %q, want %q", got, want)
	}

	// Lost reported by reconciliation (UpdateTask), and a task that
	// finishes normally: completion is not a placement event.
	h.submit(2, 3)
	h.ok(&fsm.AssignTask{TaskID: 2, Node: "n1", At: at(20)})
	h.ok(&fsm.UpdateTask{TaskID: 2, Status: fsm.StatusLost, ExitCode: intp(-1), At: at(21)})
	if got := history(h.task(2)); got != "placed@n1@20 lost@n1@21" {
		t.Fatalf("history = %q", got)
	}
	h.ok(&fsm.AssignTask{TaskID: 3, Node: "n1", At: at(30)})
	h.ok(&fsm.UpdateTask{TaskID: 3, Status: fsm.StatusRunning, At: at(31)})
	h.ok(&fsm.UpdateTask{TaskID: 3, Status: fsm.StatusCompleted, ExitCode: intp(0), At: at(32)})
	if got := history(h.task(3)); got != "placed@n1@30 started@n1@31" {
		t.Fatalf("history = %q", got)
	}
	// A pending task lost or killed was never placed: no history.
	h.submit(4, 5)
	h.ok(&fsm.UpdateTask{TaskID: 4, Status: fsm.StatusLost, At: at(40)})
	h.ok(&fsm.KillTask{TaskID: 5, At: at(40)})
	if tk4, tk5 := h.task(4), h.task(5); tk4.Placements != nil || tk5.Placements != nil {
		t.Fatalf("unplaced tasks have histories: %v %v", tk4.Placements, tk5.Placements)
	}
	// Rejected commands add nothing.
	before := history(h.task(3))
	h.reject(&fsm.AssignTask{TaskID: 3, Node: "n1", At: at(50)}, fsm.ErrConflict)
	if got := history(h.task(3)); got != before {
		t.Fatalf("a rejected command changed the history: %q", got)
	}
}

func TestPlacementHistoryIsBounded(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.submit(1)
	var kept []*fsm.Task
	for i := range fsm.MaxPlacements {
		h.ok(&fsm.AssignTask{TaskID: 1, Node: "n1", At: at(2 * i)})
		h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusPending, At: at(2*i + 1)})
		kept = append(kept, h.task(1))
	}
	tk := h.task(1)
	if len(tk.Placements) != fsm.MaxPlacements {
		t.Fatalf("history has %d entries, want %d", len(tk.Placements), fsm.MaxPlacements)
	}
	// The oldest entries went first: the newest is the last requeue.
	first, last := tk.Placements[0], tk.Placements[fsm.MaxPlacements-1]
	if first.Event != fsm.PlacementPlaced || !first.At().Equal(at(16)) ||
		last.Event != fsm.PlacementRequeued || !last.At().Equal(at(31)) {
		t.Fatalf("history = %s", history(tk))
	}
	// Stored tasks are never changed in place: an earlier read still
	// shows the history it had.
	if got := len(kept[0].Placements); got != 2 || kept[0].Placements[1].Event != fsm.PlacementRequeued {
		t.Fatalf("an earlier copy changed: %s", history(kept[0]))
	}
	// Small in memory (issue 16): one entry is 32 bytes, and the node
	// name is the node record's string.
	if size := unsafe.Sizeof(fsm.Placement{}); size > 32 {
		t.Fatalf("Placement is %d bytes", size)
	}
	if unsafe.StringData(last.Node) != unsafe.StringData(h.node("n1").Hostname) {
		t.Fatalf("the history holds its own copy of the node name")
	}
}

func TestPlacementHistorySnapshot(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.submit(1, 2)
	h.ok(&fsm.AssignTask{TaskID: 1, Node: "n1", At: at(5)})
	h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, At: at(6)})
	snap := snapshotBytes(t, h.m)
	if !bytes.Contains(snap, []byte(`"placements":[{"node":"n1","at":"2026-01-02T03:04:10Z","event":"placed"},{"node":"n1","at":"2026-01-02T03:04:11Z","event":"started"}]`)) {
		t.Fatalf("snapshot lacks the history:\n%s", snap)
	}
	m2 := fsm.New()
	if err := m2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if again := snapshotBytes(t, m2); !bytes.Equal(again, snap) {
		assertSameState(t, "snapshot after restore", snap, again)
	}
	tk, _ := m2.Task(1)
	if got := history(tk); got != "placed@n1@5 started@n1@6" {
		t.Fatalf("restored history = %q", got)
	}
	if n := m2.Nodes()[0]; unsafe.StringData(tk.Placements[0].Node) != unsafe.StringData(n.Hostname) ||
		unsafe.StringData(tk.AssignedNode) != unsafe.StringData(n.Hostname) {
		t.Fatalf("restored tasks hold their own copies of the node name")
	}
	if tk2, _ := m2.Task(2); tk2.Placements != nil {
		t.Fatalf("restored pending task has a history: %v", tk2.Placements)
	}

	// A snapshot from before the history existed loads, with no history;
	// the history starts at the next placement.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(snap, &fields); err != nil {
		t.Fatal(err)
	}
	var tasks []map[string]json.RawMessage
	if err := json.Unmarshal(fields["tasks"], &tasks); err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		delete(tk, "placements")
	}
	old, err := json.Marshal(tasks)
	if err != nil {
		t.Fatal(err)
	}
	fields["tasks"] = old
	oldSnap, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(oldSnap, []byte("placements")) {
		t.Fatalf("old-format snapshot still has a history")
	}
	m3 := fsm.New()
	if err := m3.Restore(bytes.NewReader(oldSnap)); err != nil {
		t.Fatalf("Restore of a snapshot without histories: %v", err)
	}
	h3 := &harness{t: t, m: m3, idx: h.idx}
	if tk, _ := m3.Task(1); tk.Placements != nil || tk.Status != fsm.StatusRunning || tk.AssignedNode != "n1" {
		t.Fatalf("old snapshot's task: %s", taskJSON(t, tk))
	}
	h3.ok(&fsm.AssignTask{TaskID: 2, Node: "n1", At: at(7)})
	h3.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: at(8)})
	if tk, _ := m3.Task(1); history(tk) != "lost@n1@8" {
		t.Fatalf("history after an old snapshot = %q", history(tk))
	}
	if tk, _ := m3.Task(2); history(tk) != "placed@n1@7 lost@n1@8" {
		t.Fatalf("history after an old snapshot = %q", history(tk))
	}

	// An event this build does not know stops the restore, like any field
	// it cannot read.
	bad := bytes.Replace(snap, []byte(`"event":"started"`), []byte(`"event":"migrated"`), 1)
	if err := fsm.New().Restore(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "migrated") {
		t.Fatalf("Restore with an unknown event: %v", err)
	}
}

func TestPlacementJSON(t *testing.T) {
	p := fsm.NewPlacement("n1", at(1), fsm.PlacementRequeued)
	b, err := json.Marshal(p)
	if err != nil || string(b) != `{"node":"n1","at":"2026-01-02T03:04:06Z","event":"requeued"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var back fsm.Placement
	if err := json.Unmarshal(b, &back); err != nil || back != p {
		t.Fatalf("Unmarshal = %+v, %v", back, err)
	}
	// A zero time stays zero.
	var zero fsm.Placement
	if err := json.Unmarshal([]byte(`{"node":"n","at":"0001-01-01T00:00:00Z","event":"lost"}`), &zero); err != nil || !zero.At().IsZero() {
		t.Fatalf("zero time: %+v %v", zero, err)
	}
	if _, err := json.Marshal(fsm.Placement{Node: "n"}); err == nil {
		t.Fatalf("Marshal of an event-less placement succeeded")
	}
}
