package fsm_test

import (
	"bytes"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

var finals = []fsm.Status{fsm.StatusCompleted, fsm.StatusFailed, fsm.StatusKilled, fsm.StatusKilledOOM, fsm.StatusLost}

// allowedMoves is the lifecycle of DESIGN.md's task model, written out
// independently of Status.CanMoveTo: pending → assigning → running ⇄ paused →
// one final status; assigning may be re-queued to pending; a runner may start
// a pending task directly; any non-final status may end.
var allowedMoves = map[fsm.Status][]fsm.Status{
	fsm.StatusPending:   append([]fsm.Status{fsm.StatusAssigning, fsm.StatusRunning}, finals...),
	fsm.StatusAssigning: append([]fsm.Status{fsm.StatusPending, fsm.StatusRunning}, finals...),
	fsm.StatusRunning:   append([]fsm.Status{fsm.StatusPaused}, finals...),
	fsm.StatusPaused:    append([]fsm.Status{fsm.StatusRunning}, finals...),
}

func TestStatusPredicates(t *testing.T) {
	all := fsm.AllStatuses()
	if len(all) != 9 {
		t.Fatalf("AllStatuses() has %d entries: %v", len(all), all)
	}
	for _, s := range all {
		if !s.Valid() {
			t.Errorf("%s.Valid() = false", s)
		}
		if got, want := s.Final(), slices.Contains(finals, s); got != want {
			t.Errorf("%s.Final() = %v, want %v", s, got, want)
		}
	}
	for _, s := range []fsm.Status{"", "bogus", "Pending", "Stopped", "RUNNING"} {
		if s.Valid() {
			t.Errorf("%q.Valid() = true", s)
		}
		if s.Final() {
			t.Errorf("%q.Final() = true", s)
		}
	}
}

func TestStatusCanMoveTo(t *testing.T) {
	targets := append(fsm.AllStatuses(), "", "bogus", "stopped")
	for _, from := range fsm.AllStatuses() {
		for _, to := range targets {
			want := slices.Contains(allowedMoves[from], to)
			if got := from.CanMoveTo(to); got != want {
				t.Errorf("%s.CanMoveTo(%q) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestUpdateTaskTransitions(t *testing.T) {
	for _, from := range fsm.AllStatuses() {
		for _, to := range fsm.AllStatuses() {
			t.Run(string(from)+"->"+string(to), func(t *testing.T) {
				h := newHarness(t)
				h.register("n1", 0)
				h.submit(99) // a bystander that must never change
				bystander := taskJSON(t, h.task(99))
				old := h.taskIn(1, from, "n1")
				oldJSON := taskJSON(t, old)
				cmd := &fsm.UpdateTask{TaskID: 1, Status: to, ExitCode: intp(7), Message: strp("reported"), At: at(100)}

				switch {
				case from == to:
					r := h.unchanged(cmd)
					if tk, ok := r.Value.(*fsm.Task); !ok || tk.Status != from {
						t.Fatalf("same-status retry value = %#v, want the unchanged task", r.Value)
					}
				case slices.Contains(allowedMoves[from], to):
					r := h.ok(cmd)
					tk := h.task(1)
					if v, ok := r.Value.(*fsm.Task); !ok || taskJSON(t, v) != taskJSON(t, tk) {
						t.Fatalf("result value %#v is not the stored task", r.Value)
					}
					if tk.Status != to {
						t.Fatalf("status = %s, want %s", tk.Status, to)
					}
					if tk.ExitCode == nil || *tk.ExitCode != 7 || tk.ErrorMessage != "reported" {
						t.Errorf("exit code/message not stored: %v %q", tk.ExitCode, tk.ErrorMessage)
					}
					if to.Final() {
						if tk.CompletedAt == nil || !tk.CompletedAt.Equal(at(100)) {
							t.Errorf("CompletedAt = %v, want the command's At %v", tk.CompletedAt, at(100))
						}
					} else if tk.CompletedAt != nil {
						t.Errorf("non-final task has CompletedAt %v", tk.CompletedAt)
					}
					switch {
					case to == fsm.StatusRunning && old.StartedAt == nil:
						if tk.StartedAt == nil || !tk.StartedAt.Equal(at(100)) {
							t.Errorf("StartedAt = %v, want the command's At %v", tk.StartedAt, at(100))
						}
					case old.StartedAt != nil:
						if tk.StartedAt == nil || !tk.StartedAt.Equal(*old.StartedAt) {
							t.Errorf("StartedAt changed from %v to %v", old.StartedAt, tk.StartedAt)
						}
					}
					if to == fsm.StatusPending && tk.AssignedNode != "" {
						t.Errorf("re-queued task still assigned to %q", tk.AssignedNode)
					}
					if to != fsm.StatusPending && tk.AssignedNode != old.AssignedNode {
						t.Errorf("AssignedNode changed from %q to %q", old.AssignedNode, tk.AssignedNode)
					}
					// The bystander is pending.
					wantTo, wantFrom := 1, 0
					if to == fsm.StatusPending {
						wantTo = 2
					}
					if from == fsm.StatusPending {
						wantFrom = 1
					}
					if c := h.m.Counts(); c[to] != wantTo || c[from] != wantFrom {
						t.Errorf("Counts() = %v after %s->%s", c, from, to)
					}
					if taskJSON(t, old) != oldJSON {
						t.Errorf("the previously returned *Task was mutated in place")
					}
				default:
					r := h.reject(cmd, fsm.ErrConflict)
					msg := r.Err.Error()
					if !strings.Contains(msg, string(from)) || !strings.Contains(msg, string(to)) {
						t.Errorf("conflict error %q does not name %s and %s", msg, from, to)
					}
				}
				if got := taskJSON(t, h.task(99)); got != bystander {
					t.Errorf("bystander task changed:\n%s\n%s", bystander, got)
				}
			})
		}
	}
}

func TestUpdateTaskFields(t *testing.T) {
	t.Run("explicit started_at and completed_at win over At", func(t *testing.T) {
		h := newHarness(t)
		h.register("n1", 0)
		h.taskIn(1, fsm.StatusAssigning, "n1")
		h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, StartedAt: timep(at(50)), At: at(60)})
		if got := h.task(1).StartedAt; got == nil || !got.Equal(at(50)) {
			t.Fatalf("StartedAt = %v, want %v", got, at(50))
		}
		h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusFailed, ExitCode: intp(3), CompletedAt: timep(at(70)), At: at(80)})
		tk := h.task(1)
		if tk.CompletedAt == nil || !tk.CompletedAt.Equal(at(70)) {
			t.Fatalf("CompletedAt = %v, want %v", tk.CompletedAt, at(70))
		}
		if tk.StartedAt == nil || !tk.StartedAt.Equal(at(50)) {
			t.Fatalf("StartedAt changed to %v", tk.StartedAt)
		}
		if tk.ExitCode == nil || *tk.ExitCode != 3 {
			t.Fatalf("ExitCode = %v, want 3", tk.ExitCode)
		}
	})
	t.Run("pause and resume keep started_at", func(t *testing.T) {
		h := newHarness(t)
		h.register("n1", 0)
		started := *h.taskIn(1, fsm.StatusRunning, "n1").StartedAt
		h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusPaused, Message: strp("paused"), At: at(200)})
		h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, Message: strp("resumed"), At: at(300)})
		tk := h.task(1)
		if tk.StartedAt == nil || !tk.StartedAt.Equal(started) {
			t.Fatalf("StartedAt = %v, want %v", tk.StartedAt, started)
		}
		if tk.ErrorMessage != "resumed" {
			t.Fatalf("ErrorMessage = %q", tk.ErrorMessage)
		}
	})
	t.Run("nil exit code and message keep the old ones", func(t *testing.T) {
		h := newHarness(t)
		h.register("n1", 0)
		h.taskIn(1, fsm.StatusAssigning, "n1")
		h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, ExitCode: intp(0), Message: strp("started"), At: at(50)})
		h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusPaused, At: at(60)})
		tk := h.task(1)
		if tk.ExitCode == nil || *tk.ExitCode != 0 || tk.ErrorMessage != "started" {
			t.Fatalf("exit %v message %q, want 0 and %q", tk.ExitCode, tk.ErrorMessage, "started")
		}
	})
	t.Run("ssh port", func(t *testing.T) {
		h := newHarness(t)
		h.register("n1", 0)
		h.taskIn(1, fsm.StatusAssigning, "n1")
		h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, SSHPort: 2222, ExitCode: intp(0), At: at(50)})
		if got := h.task(1).SSHPort; got != 2222 {
			t.Fatalf("SSHPort = %d, want 2222", got)
		}
		// A running VPS may report a new port without a status change.
		h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, SSHPort: 2223, At: at(60)})
		tk := h.task(1)
		if tk.SSHPort != 2223 || tk.Status != fsm.StatusRunning || !tk.StartedAt.Equal(at(50)) {
			t.Fatalf("after port change: port %d status %s started %v", tk.SSHPort, tk.Status, tk.StartedAt)
		}
		// The same report retried is harmless.
		h.unchanged(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, At: at(70)})
	})
	t.Run("same-status retries change nothing", func(t *testing.T) {
		h := newHarness(t)
		h.register("n1", 0)
		h.taskIn(1, fsm.StatusRunning, "n1")
		h.unchanged(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, ExitCode: intp(9), Message: strp("again"), At: at(999)})
		h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusCompleted, ExitCode: intp(0), At: at(100)})
		// A retried final report, stamped later by a new leader, with other
		// details, must not rewrite the finished task (invariant 3).
		h.unchanged(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusCompleted, ExitCode: intp(1), Message: strp("late"), At: at(500)})
		h.unchanged(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusCompleted, ExitCode: intp(1), SSHPort: 2222, CompletedAt: timep(at(600)), At: at(600)})
		tk := h.task(1)
		if !tk.CompletedAt.Equal(at(100)) || *tk.ExitCode != 0 || tk.SSHPort != 0 {
			t.Fatalf("finished task rewritten: completed %v exit %d port %d", tk.CompletedAt, *tk.ExitCode, tk.SSHPort)
		}
	})
	t.Run("unknown task", func(t *testing.T) {
		h := newHarness(t)
		h.submit(1)
		h.reject(&fsm.UpdateTask{TaskID: 2, Status: fsm.StatusRunning, At: at(1)}, fsm.ErrNotFound)
		h.reject(&fsm.UpdateTask{TaskID: 0, Status: fsm.StatusRunning, At: at(1)}, fsm.ErrNotFound)
	})
	t.Run("invalid status", func(t *testing.T) {
		h := newHarness(t)
		h.submit(1)
		for _, s := range []fsm.Status{"", "bogus", "stopped", "Running"} {
			r := h.reject(&fsm.UpdateTask{TaskID: 1, Status: s, At: at(1)}, fsm.ErrInvalid)
			if errors.Is(r.Err, fsm.ErrConflict) {
				t.Errorf("status %q: error %q also wraps ErrConflict", s, r.Err)
			}
		}
	})
}

func TestSubmitTasks(t *testing.T) {
	t.Run("normal and idempotent retry", func(t *testing.T) {
		h := newHarness(t)
		c := &fsm.SubmitTasks{RequestID: "req-1"}
		for _, id := range []int64{30, 10, 20} {
			tk := newTask(id)
			tk.BatchID = 30
			tk.RequestID = "ignored" // the command's RequestID wins
			c.Tasks = append(c.Tasks, tk)
		}
		r := h.ok(c)
		res, ok := r.Value.(fsm.SubmitResult)
		if !ok {
			t.Fatalf("Value = %#v, want SubmitResult", r.Value)
		}
		want := []int64{30, 10, 20}
		if !slices.Equal(res.TaskIDs, want) || res.Duplicate {
			t.Fatalf("SubmitResult = %+v, want IDs %v, Duplicate false", res, want)
		}
		for _, in := range c.Tasks {
			exp := *in
			exp.RequestID = "req-1"
			if got, w := taskJSON(t, h.task(in.TaskID)), taskJSON(t, &exp); got != w {
				t.Errorf("stored task %d:\n got %s\nwant %s", in.TaskID, got, w)
			}
		}
		if h.m.Len() != 3 || h.m.Counts()[fsm.StatusPending] != 3 || h.m.MaxTaskID() != 30 {
			t.Fatalf("Len %d Counts %v MaxTaskID %d", h.m.Len(), h.m.Counts(), h.m.MaxTaskID())
		}
		if ids, ok := h.m.RequestTasks("req-1"); !ok || !slices.Equal(ids, want) {
			t.Fatalf("RequestTasks = %v %v", ids, ok)
		}
		if _, ok := h.m.RequestTasks("req-2"); ok {
			t.Fatalf("RequestTasks(unknown) reported ok")
		}
		// The returned slices are copies.
		res.TaskIDs[0] = 999
		ids, _ := h.m.RequestTasks("req-1")
		ids[1] = 998
		if ids, _ := h.m.RequestTasks("req-1"); !slices.Equal(ids, want) {
			t.Fatalf("RequestTasks changed through a returned slice: %v", ids)
		}

		// Retries: the very same command, one re-stamped with fresh IDs by a
		// new leader, and one whose tasks would be invalid.
		restamped := &fsm.SubmitTasks{RequestID: "req-1", Tasks: []*fsm.Task{newTask(40), newTask(41), newTask(42)}}
		bad := &fsm.SubmitTasks{RequestID: "req-1", Tasks: []*fsm.Task{newTask(30)}}
		for _, retry := range []*fsm.SubmitTasks{c, restamped, bad} {
			r := h.unchanged(retry)
			res, ok := r.Value.(fsm.SubmitResult)
			if !ok || !res.Duplicate || !slices.Equal(res.TaskIDs, want) {
				t.Fatalf("retry result = %#v, want IDs %v Duplicate true", r.Value, want)
			}
		}
		if h.m.Len() != 3 {
			t.Fatalf("retries created tasks: Len = %d", h.m.Len())
		}
		// A submit without request ID is never deduplicated.
		h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{newTask(50)}})
		h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{newTask(51)}})
		if h.m.Len() != 5 {
			t.Fatalf("Len = %d, want 5", h.m.Len())
		}
	})

	withStatus := func(id int64, s fsm.Status) *fsm.Task {
		tk := newTask(id)
		tk.Status = s
		return tk
	}
	rejects := []struct {
		name  string
		tasks []*fsm.Task
	}{
		{"nil batch", nil},
		{"empty batch", []*fsm.Task{}},
		{"nil task", []*fsm.Task{newTask(5), nil}},
		{"zero ID", []*fsm.Task{newTask(5), newTask(0)}},
		{"negative ID", []*fsm.Task{newTask(-5)}},
		{"duplicate of existing task", []*fsm.Task{newTask(5), newTask(1)}},
		{"duplicate within batch", []*fsm.Task{newTask(5), newTask(6), newTask(5)}},
		{"empty status", []*fsm.Task{withStatus(5, "")}},
		{"unknown status", []*fsm.Task{withStatus(5, "queued")}},
		{"completed status", []*fsm.Task{withStatus(5, fsm.StatusCompleted)}},
		{"killed status", []*fsm.Task{withStatus(5, fsm.StatusKilled)}},
		{"lost status", []*fsm.Task{withStatus(5, fsm.StatusLost)}},
	}
	for _, tc := range rejects {
		t.Run("reject "+tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.submit(1)
			h.reject(&fsm.SubmitTasks{RequestID: "req-bad", Tasks: tc.tasks}, fsm.ErrInvalid)
			if _, ok := h.m.RequestTasks("req-bad"); ok {
				t.Fatalf("a rejected submit recorded its request ID")
			}
			// The request ID of a rejected submit stays usable.
			r := h.ok(&fsm.SubmitTasks{RequestID: "req-bad", Tasks: []*fsm.Task{newTask(7)}})
			if res := r.Value.(fsm.SubmitResult); res.Duplicate || !slices.Equal(res.TaskIDs, []int64{7}) {
				t.Fatalf("submit after rejection = %+v", res)
			}
		})
	}
}

func TestKillTask(t *testing.T) {
	for _, s := range fsm.AllStatuses() {
		t.Run(string(s), func(t *testing.T) {
			h := newHarness(t)
			h.register("n1", 0)
			old := h.taskIn(1, s, "n1")
			cmd := &fsm.KillTask{TaskID: 1, Message: "Kill requested by user.", At: at(500)}
			if s.Final() {
				r := h.reject(cmd, fsm.ErrConflict)
				if !strings.Contains(r.Err.Error(), "state: "+string(s)) {
					t.Fatalf("error %q does not name the state %s", r.Err, s)
				}
				return
			}
			r := h.ok(cmd)
			tk := h.task(1)
			if v, ok := r.Value.(*fsm.Task); !ok || taskJSON(t, v) != taskJSON(t, tk) {
				t.Fatalf("result value %#v is not the stored task", r.Value)
			}
			if tk.Status != fsm.StatusKilled || tk.ErrorMessage != cmd.Message {
				t.Fatalf("status %s message %q", tk.Status, tk.ErrorMessage)
			}
			if tk.CompletedAt == nil || !tk.CompletedAt.Equal(at(500)) {
				t.Fatalf("CompletedAt = %v, want %v", tk.CompletedAt, at(500))
			}
			if tk.AssignedNode != old.AssignedNode || !reflect.DeepEqual(tk.StartedAt, old.StartedAt) {
				t.Fatalf("kill changed placement/start: %+v", tk)
			}
			if c := h.m.Counts(); c[fsm.StatusKilled] != 1 || len(c) != 1 {
				t.Fatalf("Counts = %v", c)
			}
			// Killing again is a conflict naming the new state.
			r = h.reject(cmd, fsm.ErrConflict)
			if !strings.Contains(r.Err.Error(), "killed") {
				t.Fatalf("second kill error %q does not name the state", r.Err)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		h := newHarness(t)
		h.submit(1)
		h.reject(&fsm.KillTask{TaskID: 2, Message: "x", At: at(1)}, fsm.ErrNotFound)
	})
}

func TestRegisterNode(t *testing.T) {
	h := newHarness(t)
	in := testNode("n1")
	in.Status = fsm.NodeOffline // ignored: registering means online
	r := h.ok(&fsm.RegisterNode{Node: in, At: at(10)})
	n := h.node("n1")
	if v, ok := r.Value.(*fsm.Node); !ok || v.Hostname != "n1" {
		t.Fatalf("Value = %#v", r.Value)
	}
	if n.Status != fsm.NodeOnline || !n.RegisteredAt.Equal(at(10)) || !n.StatusChangedAt.Equal(at(10)) {
		t.Fatalf("new node: status %s registered %v changed %v", n.Status, n.RegisteredAt, n.StatusChangedAt)
	}
	if !reflect.DeepEqual(n.NUMATopology, in.NUMATopology) || !reflect.DeepEqual(n.GPUInfo, in.GPUInfo) ||
		n.URL != in.URL || n.TotalCores != 16 || n.MemoryTotalBytes != 64<<30 || !n.CgroupsLimited {
		t.Fatalf("node not stored as sent: %+v", n)
	}

	h.ok(&fsm.SetNodeDrain{Hostname: "n1", Drained: true})
	// Re-registration (runner restart): new hardware facts, drain and
	// registration time kept, an online node's status time kept.
	re := testNode("n1")
	re.URL = "http://n1:9001"
	re.TotalCores = 32
	re.GPUInfo = re.GPUInfo[:1]
	re.Drained = false
	h.ok(&fsm.RegisterNode{Node: re, At: at(20)})
	n = h.node("n1")
	if !n.Drained {
		t.Fatalf("re-registration cleared Drained")
	}
	if !n.RegisteredAt.Equal(at(10)) || !n.StatusChangedAt.Equal(at(10)) {
		t.Fatalf("re-registration: registered %v changed %v, want both %v", n.RegisteredAt, n.StatusChangedAt, at(10))
	}
	if n.URL != "http://n1:9001" || n.TotalCores != 32 || len(n.GPUInfo) != 1 {
		t.Fatalf("re-registration did not refresh the node: %+v", n)
	}

	// Re-registration of an offline node brings it online now.
	h.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: at(30)})
	h.ok(&fsm.RegisterNode{Node: testNode("n1"), At: at(40)})
	n = h.node("n1")
	if n.Status != fsm.NodeOnline || !n.StatusChangedAt.Equal(at(40)) || !n.RegisteredAt.Equal(at(10)) || !n.Drained {
		t.Fatalf("re-registration after offline: %+v", n)
	}

	h.reject(&fsm.RegisterNode{Node: nil, At: at(50)}, fsm.ErrInvalid)
	h.reject(&fsm.RegisterNode{Node: &fsm.Node{URL: "http://x"}, At: at(50)}, fsm.ErrInvalid)
	h.rejectRaw("register null node", append([]byte{byte(fsm.CmdRegisterNode)}, `{"node":null}`...), fsm.ErrInvalid)

	if got := h.m.Nodes(); len(got) != 1 {
		t.Fatalf("Nodes() = %d nodes", len(got))
	}
	h.register("a0", 60)
	h.register("z9", 60)
	var names []string
	for _, n := range h.m.Nodes() {
		names = append(names, n.Hostname)
	}
	if !slices.Equal(names, []string{"a0", "n1", "z9"}) {
		t.Fatalf("Nodes() order = %v", names)
	}
}

func TestSetNodeStatus(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.register("n2", 0)
	// n1 carries one task in every status, plus a pending task that names
	// n1 as its assigned node; n2 carries a running task.
	var id int64 = 100
	byStatus := map[fsm.Status]int64{}
	for _, s := range fsm.AllStatuses() {
		id++
		h.taskIn(id, s, "n1")
		byStatus[s] = id
	}
	pendingOnNode := newTask(200)
	pendingOnNode.AssignedNode = "n1"
	h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{pendingOnNode}})
	h.taskIn(300, fsm.StatusRunning, "n2")
	h.taskIn(301, fsm.StatusAssigning, "n2")

	before := map[int64]string{}
	all, _ := h.m.Tasks(fsm.Filter{}, 0, 0)
	for _, tk := range all {
		before[tk.TaskID] = taskJSON(t, tk)
	}

	r := h.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: at(1000)})
	if v, ok := r.Value.(*fsm.Node); !ok || v.Status != fsm.NodeOffline {
		t.Fatalf("Value = %#v", r.Value)
	}
	n := h.node("n1")
	if n.Status != fsm.NodeOffline || !n.StatusChangedAt.Equal(at(1000)) {
		t.Fatalf("node after offline: %+v", n)
	}
	lostNow := map[int64]bool{byStatus[fsm.StatusAssigning]: true, byStatus[fsm.StatusRunning]: true, byStatus[fsm.StatusPaused]: true}
	for tid, was := range before {
		tk := h.task(tid)
		if !lostNow[tid] {
			if got := taskJSON(t, tk); got != was {
				t.Errorf("task %d (%s) changed:\n%s\n%s", tid, tk.Status, was, got)
			}
			continue
		}
		if tk.Status != fsm.StatusLost || tk.ExitCode == nil || *tk.ExitCode != -1 ||
			tk.ErrorMessage != "Node n1 went offline (heartbeat timeout)." ||
			tk.CompletedAt == nil || !tk.CompletedAt.Equal(at(1000)) || tk.AssignedNode != "n1" {
			t.Errorf("task %d not lost as expected: %s", tid, taskJSON(t, tk))
		}
	}
	if c := h.m.Counts(); c[fsm.StatusLost] != 4 || c[fsm.StatusPending] != 2 || c[fsm.StatusRunning] != 1 || c[fsm.StatusAssigning] != 1 {
		t.Fatalf("Counts = %v", c)
	}

	// Offline again: nothing to do. Online: the node comes back, tasks stay lost.
	h.unchanged(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: at(2000)})
	h.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOnline, At: at(3000)})
	if n := h.node("n1"); n.Status != fsm.NodeOnline || !n.StatusChangedAt.Equal(at(3000)) {
		t.Fatalf("node after online: %+v", n)
	}
	if h.m.Counts()[fsm.StatusLost] != 4 {
		t.Fatalf("going online changed tasks: %v", h.m.Counts())
	}
	h.unchanged(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOnline, At: at(4000)})

	h.reject(&fsm.SetNodeStatus{Hostname: "nope", Status: fsm.NodeOffline, At: at(1)}, fsm.ErrNotFound)
	for _, s := range []fsm.NodeStatus{"", "draining", "Online"} {
		h.reject(&fsm.SetNodeStatus{Hostname: "n2", Status: s, At: at(1)}, fsm.ErrInvalid)
	}
}

func TestAssignTask(t *testing.T) {
	t.Run("pending to assigning", func(t *testing.T) {
		h := newHarness(t)
		h.register("n1", 0)
		tk := newTask(1)
		tk.SuspicionCount = 2
		tk.TargetNUMANodeID = intp(1)
		h.ok(&fsm.SubmitTasks{Tasks: []*fsm.Task{tk, newTask(2)}})
		r := h.ok(&fsm.AssignTask{TaskID: 1, Node: "n1", GPUs: []int{1, 0}, NUMA: intp(0), At: at(5)})
		got := h.task(1)
		if v, ok := r.Value.(*fsm.Task); !ok || taskJSON(t, v) != taskJSON(t, got) {
			t.Fatalf("result value %#v is not the stored task", r.Value)
		}
		if got.Status != fsm.StatusAssigning || got.AssignedNode != "n1" || !slices.Equal(got.RequiredGPUs, []int{1, 0}) ||
			got.TargetNUMANodeID == nil || *got.TargetNUMANodeID != 0 || got.SuspicionCount != 0 {
			t.Fatalf("assigned task: %s", taskJSON(t, got))
		}
		// Without NUMA the task's target NUMA node is kept.
		h.ok(&fsm.AssignTask{TaskID: 2, Node: "n1", At: at(6)})
		if got := h.task(2); got.Status != fsm.StatusAssigning || got.TargetNUMANodeID != nil || len(got.RequiredGPUs) != 0 {
			t.Fatalf("assigned task 2: %s", taskJSON(t, got))
		}
		if c := h.m.Counts(); c[fsm.StatusAssigning] != 2 || len(c) != 1 {
			t.Fatalf("Counts = %v", c)
		}
		if f, _ := h.m.Tasks(fsm.Filter{Node: "n1"}, 0, 0); len(f) != 2 {
			t.Fatalf("Tasks(node n1) = %d tasks", len(f))
		}
	})
	for _, s := range fsm.AllStatuses() {
		if s == fsm.StatusPending {
			continue
		}
		t.Run("conflict from "+string(s), func(t *testing.T) {
			h := newHarness(t)
			h.register("n1", 0)
			h.register("n2", 0)
			h.taskIn(1, s, "n1")
			r := h.reject(&fsm.AssignTask{TaskID: 1, Node: "n2", At: at(9)}, fsm.ErrConflict)
			if !strings.Contains(r.Err.Error(), string(s)) {
				t.Fatalf("error %q does not name %s", r.Err, s)
			}
		})
	}
	t.Run("unknown task or node", func(t *testing.T) {
		h := newHarness(t)
		h.register("n1", 0)
		h.submit(1)
		h.reject(&fsm.AssignTask{TaskID: 2, Node: "n1", At: at(1)}, fsm.ErrNotFound)
		h.reject(&fsm.AssignTask{TaskID: 1, Node: "n2", At: at(1)}, fsm.ErrNotFound)
		h.reject(&fsm.AssignTask{TaskID: 1, Node: "", At: at(1)}, fsm.ErrNotFound)
	})
	t.Run("offline node", func(t *testing.T) {
		// A placement decided before the node's offline change committed
		// must not strand the task in assigning on a dead node: the offline
		// sweep has already run and would never see it.
		h := newHarness(t)
		h.register("n1", 0)
		h.submit(1)
		h.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: at(1)})
		h.reject(&fsm.AssignTask{TaskID: 1, Node: "n1", At: at(2)}, fsm.ErrConflict)
		h.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOnline, At: at(3)})
		h.ok(&fsm.AssignTask{TaskID: 1, Node: "n1", At: at(4)})
	})
}

func TestSetNodeDrain(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.register("n2", 0)
	n2 := taskJSONNode(t, h.node("n2"))
	r := h.ok(&fsm.SetNodeDrain{Hostname: "n1", Drained: true})
	if v, ok := r.Value.(*fsm.Node); !ok || !v.Drained {
		t.Fatalf("Value = %#v", r.Value)
	}
	if n := h.node("n1"); !n.Drained || n.Status != fsm.NodeOnline {
		t.Fatalf("node after drain: %+v", n)
	}
	if taskJSONNode(t, h.node("n2")) != n2 {
		t.Fatalf("draining n1 changed n2")
	}
	h.unchanged(&fsm.SetNodeDrain{Hostname: "n1", Drained: true})
	h.ok(&fsm.SetNodeDrain{Hostname: "n1", Drained: false})
	if h.node("n1").Drained {
		t.Fatalf("undrain did not clear Drained")
	}
	h.reject(&fsm.SetNodeDrain{Hostname: "n3", Drained: true}, fsm.ErrNotFound)
}

func taskJSONNode(t testing.TB, n *fsm.Node) string {
	t.Helper()
	return resultKey(fsm.Result{Value: n})
}

// TestDrainReason checks that a drain keeps its reason, a re-registration
// keeps both, an undrain clears it, and a snapshot carries it.
func TestDrainReason(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsm.RegisterNode{Node: testNode("n1"), At: at(10)})
	h.ok(&fsm.SetNodeDrain{Hostname: "n1", Drained: true, Reason: "disk swap"})
	if n := h.node("n1"); !n.Drained || n.DrainReason != "disk swap" {
		t.Fatalf("after drain: %v %q", n.Drained, n.DrainReason)
	}
	h.ok(&fsm.RegisterNode{Node: testNode("n1"), At: at(20)})
	if n := h.node("n1"); !n.Drained || n.DrainReason != "disk swap" {
		t.Fatalf("after re-registration: %v %q", n.Drained, n.DrainReason)
	}
	if !bytes.Contains(snapshotBytes(t, h.m), []byte(`"drain_reason":"disk swap"`)) {
		t.Fatal("the snapshot lost the drain reason")
	}
	h.ok(&fsm.SetNodeDrain{Hostname: "n1", Drained: false, Reason: "ignored"})
	if n := h.node("n1"); n.Drained || n.DrainReason != "" {
		t.Fatalf("after undrain: %v %q", n.Drained, n.DrainReason)
	}
}

// TestDrainedByAndAt checks that a drain records who drained the node and
// when (from the command), that re-registration and a snapshot round trip
// keep both, that an undrain clears them, and that a snapshot written before
// the fields existed still loads (the node drained, by and at unknown).
func TestDrainedByAndAt(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsm.RegisterNode{Node: testNode("n1"), At: at(10)})
	h.ok(&fsm.SetNodeDrain{Hostname: "n1", Drained: true, Reason: "disk swap", By: "alice", At: at(15)})
	check := func(what string, n *fsm.Node) {
		t.Helper()
		if !n.Drained || n.DrainReason != "disk swap" || n.DrainedBy != "alice" || n.DrainedAt == nil || !n.DrainedAt.Equal(at(15)) {
			t.Fatalf("%s: drained %v reason %q by %q at %v", what, n.Drained, n.DrainReason, n.DrainedBy, n.DrainedAt)
		}
	}
	check("after drain", h.node("n1"))
	h.ok(&fsm.RegisterNode{Node: testNode("n1"), At: at(20)})
	check("after re-registration", h.node("n1"))

	snap := snapshotBytes(t, h.m)
	m2 := fsm.New()
	if err := m2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	n, ok := m2.Node("n1")
	if !ok {
		t.Fatal("n1 lost in the snapshot round trip")
	}
	check("after snapshot round trip", n)

	// An old snapshot: the same state without the new keys.
	old := regexp.MustCompile(`,?"drained_(by|at)":"[^"]*"`).ReplaceAll(snap, nil)
	if bytes.Contains(old, []byte("drained_by")) || bytes.Contains(old, []byte("drained_at")) {
		t.Fatalf("test setup: keys left in %s", old)
	}
	m3 := fsm.New()
	if err := m3.Restore(bytes.NewReader(old)); err != nil {
		t.Fatalf("Restore of an old snapshot: %v", err)
	}
	if n, ok := m3.Node("n1"); !ok || !n.Drained || n.DrainReason != "disk swap" || n.DrainedBy != "" || n.DrainedAt != nil {
		t.Fatalf("old snapshot: %+v", n)
	}

	// An old log entry (no by/at) decodes and drains without them.
	cmd, known, err := fsm.Decode(append([]byte{byte(fsm.CmdSetNodeDrain)}, `{"hostname":"n1","drained":true,"reason":"old"}`...))
	if err != nil || !known {
		t.Fatalf("Decode old entry: %v (known %v)", err, known)
	}
	h.ok(cmd)
	if n := h.node("n1"); !n.Drained || n.DrainReason != "old" || n.DrainedBy != "" || n.DrainedAt != nil {
		t.Fatalf("old entry: %+v", n)
	}

	h.ok(&fsm.SetNodeDrain{Hostname: "n1", Drained: false, By: "bob", At: at(30)})
	if n := h.node("n1"); n.Drained || n.DrainedBy != "" || n.DrainedAt != nil {
		t.Fatalf("after undrain: %+v", n)
	}
}
