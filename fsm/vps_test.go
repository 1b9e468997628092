package fsm_test

import (
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// vpsIn creates VPS task id running on node.
func (h *harness) vpsIn(id int64, node string) *fsm.Task {
	h.t.Helper()
	tk := newTask(id)
	tk.TaskType = fsm.TaskVPS
	h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{tk}})
	h.ok(&fsm.AssignTask{TaskID: id, Node: node, GPUs: []int{1}, NUMA: intp(1), At: at(10)})
	h.ok(&fsm.UpdateTask{TaskID: id, Status: fsm.StatusRunning, SSHPort: 32001, At: at(11)})
	return h.task(id)
}

func isActive(m *fsm.Machine, id int64) bool {
	for _, t := range m.Active() {
		if t.TaskID == id {
			return true
		}
	}
	return false
}

func TestVPSStopStart(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.vpsIn(1, "n1")
	h.taskIn(2, fsm.StatusRunning, "n1")

	r := h.ok(&fsm.VPSStop{TaskID: 1, Message: "Stopped by alice.", At: at(20)})
	tk := r.Value.(*fsm.Task)
	if tk.Status != fsm.StatusStopped || tk.AssignedNode != "n1" || tk.SSHPort != 0 || tk.StoppedAt == nil || !tk.StoppedAt.Equal(at(20)) {
		t.Fatalf("stopped task = %+v", tk)
	}
	if tk.Status.Final() || isActive(h.m, 1) {
		t.Fatalf("a stopped VPS must be neither final nor active")
	}
	if h.m.Counts()[fsm.StatusStopped] != 1 {
		t.Fatalf("counts = %v", h.m.Counts())
	}
	// Stopping again is a no-op; a command task or a pending one cannot stop.
	h.unchanged(&fsm.VPSStop{TaskID: 1, At: at(21)})
	h.reject(&fsm.VPSStop{TaskID: 2, At: at(21)}, fsm.ErrInvalid)
	h.reject(&fsm.VPSStop{TaskID: 404, At: at(21)}, fsm.ErrNotFound)
	// A runner report cannot revive it; UpdateTask cannot stop.
	h.reject(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, At: at(22)}, fsm.ErrConflict)
	h.reject(&fsm.UpdateTask{TaskID: 2, Status: fsm.StatusStopped, At: at(22)}, fsm.ErrInvalid)

	// The node going offline does not lose a stopped VPS; while offline it cannot start.
	h.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: at(30)})
	if got := h.task(1).Status; got != fsm.StatusStopped {
		t.Fatalf("after node offline: %s", got)
	}
	h.reject(&fsm.VPSStart{TaskID: 1, At: at(31)}, fsm.ErrConflict)
	h.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOnline, At: at(32)})

	r = h.ok(&fsm.VPSStart{TaskID: 1, GPUs: []int{0}, NUMA: intp(0), At: at(40)})
	tk = r.Value.(*fsm.Task)
	if tk.Status != fsm.StatusAssigning || !tk.Restarting || tk.AssignedNode != "n1" || len(tk.RequiredGPUs) != 1 || tk.RequiredGPUs[0] != 0 || !isActive(h.m, 1) {
		t.Fatalf("started task = %+v", tk)
	}
	h.reject(&fsm.VPSStart{TaskID: 1, At: at(41)}, fsm.ErrConflict)
	// A failed restart returns it to stopped with the reason.
	r = h.ok(&fsm.VPSStop{TaskID: 1, Message: "container gone", At: at(42)})
	if tk = r.Value.(*fsm.Task); tk.Status != fsm.StatusStopped || tk.Restarting || tk.ErrorMessage != "container gone" {
		t.Fatalf("failed restart = %+v", tk)
	}
	// Its node going offline while it restarts stops it again (the
	// container is still there), rather than losing it.
	h.ok(&fsm.VPSStart{TaskID: 1, At: at(44)})
	h.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: at(45)})
	if tk = h.task(1); tk.Status != fsm.StatusStopped || tk.Restarting || isActive(h.m, 1) {
		t.Fatalf("restarting VPS after node offline = %+v", tk)
	}
	h.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOnline, At: at(46)})
	h.ok(&fsm.VPSStart{TaskID: 1, At: at(50)})
	r = h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, SSHPort: 32002, At: at(51)})
	if tk = r.Value.(*fsm.Task); tk.Restarting || tk.SSHPort != 32002 {
		t.Fatalf("restarted task = %+v", tk)
	}
	// An assigning VPS that is not restarting cannot be stopped.
	tk3 := newTask(3)
	tk3.TaskType = fsm.TaskVPS
	h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{tk3}})
	h.ok(&fsm.AssignTask{TaskID: 3, Node: "n1", At: at(60)})
	h.reject(&fsm.VPSStop{TaskID: 3, At: at(61)}, fsm.ErrConflict)

	// Kill ends a stopped VPS.
	h.ok(&fsm.VPSStop{TaskID: 1, At: at(70)})
	h.ok(&fsm.KillTask{TaskID: 1, Message: "bye", At: at(71)})
	if got := h.task(1).Status; got != fsm.StatusKilled {
		t.Fatalf("killed stopped VPS: %s", got)
	}
	h.reject(&fsm.VPSStart{TaskID: 1, At: at(72)}, fsm.ErrConflict)
}

// TestVPSStoppedSnapshot: the stopped state survives snapshot and restore.
func TestVPSStoppedSnapshot(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.vpsIn(1, "n1")
	h.ok(&fsm.VPSStop{TaskID: 1, At: at(20)})
	m2 := fsm.New()
	if err := m2.Restore(bytesReader(snapshotBytes(t, h.m))); err != nil {
		t.Fatal(err)
	}
	assertSameState(t, "restored", stateBytes(t, h.m), stateBytes(t, m2))
	if isActive(m2, 1) || m2.Counts()[fsm.StatusStopped] != 1 {
		t.Fatalf("restored machine: active %v counts %v", isActive(m2, 1), m2.Counts())
	}
}

func TestSetVPSSnapshot(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.vpsIn(1, "n1")
	sum := func(c byte) string { return string(bytesRepeat(c, 64)) }
	snap := &fsm.VPSSnapshot{Name: "box-snap", Owner: "alice", TaskID: 1, Version: 100, SHA256: sum('a'), Size: 10, At: at(5)}
	h.ok(&fsm.SetVPSSnapshot{Snapshot: snap})
	if tb, ok := h.m.Tarball("box-snap"); !ok || tb.Version != 100 {
		t.Fatalf("tarball record of the snapshot: %+v %v", tb, ok)
	}
	// A newer version replaces it; an older one or another hash for the
	// same version is a conflict; a retry is harmless.
	h.ok(&fsm.SetVPSSnapshot{Snapshot: snap})
	older := *snap
	older.Version = 99
	h.reject(&fsm.SetVPSSnapshot{Snapshot: &older}, fsm.ErrConflict)
	other := *snap
	other.SHA256 = sum('b')
	h.reject(&fsm.SetVPSSnapshot{Snapshot: &other}, fsm.ErrConflict)
	newer := *snap
	newer.Version, newer.SHA256 = 200, sum('c')
	h.ok(&fsm.SetVPSSnapshot{Snapshot: &newer})
	if got := h.m.VPSSnapshots(); len(got) != 1 || got[0].Version != 200 {
		t.Fatalf("snapshots = %+v", got)
	}
	// Never over an environment that is not a snapshot.
	h.ok(&fsm.SetEnvironment{Name: "base", Replica: "h1"})
	env := *snap
	env.Name = "base"
	h.reject(&fsm.SetVPSSnapshot{Snapshot: &env}, fsm.ErrConflict)
	h.reject(&fsm.SetVPSSnapshot{Snapshot: &fsm.VPSSnapshot{Name: "x", Version: 1, SHA256: sum('a')}}, fsm.ErrInvalid)

	// Snapshot and restore carry it.
	m2 := fsm.New()
	if err := m2.Restore(bytesReader(snapshotBytes(t, h.m))); err != nil {
		t.Fatal(err)
	}
	assertSameState(t, "restored", stateBytes(t, h.m), stateBytes(t, m2))
	if s, ok := m2.VPSSnapshotNamed("box-snap"); !ok || s.Version != 200 || s.Owner != "alice" {
		t.Fatalf("restored snapshot: %+v %v", s, ok)
	}

	h.ok(&fsm.SetVPSSnapshot{Delete: "box-snap"})
	if _, ok := h.m.Tarball("box-snap"); ok || len(h.m.VPSSnapshots()) != 0 {
		t.Fatalf("deleted snapshot still recorded")
	}
	h.reject(&fsm.SetVPSSnapshot{Delete: "box-snap"}, fsm.ErrNotFound)
}

func bytesRepeat(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}
