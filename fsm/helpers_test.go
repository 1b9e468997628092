package fsm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// t0 is the base of every timestamp the tests stamp into commands.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// at returns t0 plus sec seconds.
func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func intp(v int) *int              { return &v }
func strp(v string) *string        { return &v }
func timep(v time.Time) *time.Time { return &v }

// encode encodes c or fails the test.
func encode(t testing.TB, c fsm.Command) []byte {
	t.Helper()
	b, err := fsm.Encode(c)
	if err != nil {
		t.Fatalf("Encode(%T): %v", c, err)
	}
	return b
}

// snapshotBytes returns the full snapshot encoding of m, applied index included.
func snapshotBytes(t testing.TB, m *fsm.Machine) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := m.Snapshot().Write(&buf); err != nil {
		t.Fatalf("Snapshot().Write: %v", err)
	}
	return buf.Bytes()
}

// stateBytes returns the snapshot encoding of m with applied_index removed,
// so that two states can be compared although every Apply (accepted or
// rejected) advances the applied index. It is the single definition of
// "state unchanged" used by these tests.
func stateBytes(t testing.TB, m *fsm.Machine) []byte {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(snapshotBytes(t, m), &fields); err != nil {
		t.Fatalf("decode snapshot: %v", err)
	}
	if _, ok := fields["applied_index"]; !ok {
		t.Fatalf("snapshot has no applied_index field; keys: %v", keys(fields))
	}
	delete(fields, "applied_index")
	out, err := json.Marshal(fields) // map keys are sorted: deterministic
	if err != nil {
		t.Fatalf("re-encode snapshot: %v", err)
	}
	return out
}

func keys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// assertSameState fails when the two state encodings differ, showing where.
func assertSameState(t testing.TB, what string, before, after []byte) {
	t.Helper()
	if bytes.Equal(before, after) {
		return
	}
	i := 0
	for i < len(before) && i < len(after) && before[i] == after[i] {
		i++
	}
	lo := max(0, i-120)
	t.Fatalf("%s: state changed at byte %d\nbefore: …%s\nafter:  …%s", what, i,
		clip(before, lo, i+120), clip(after, lo, i+120))
}

func clip(b []byte, lo, hi int) string {
	hi = min(hi, len(b))
	lo = min(lo, hi)
	return string(b[lo:hi])
}

// harness drives a Machine with consecutive log indexes.
type harness struct {
	t   testing.TB
	m   *fsm.Machine
	idx uint64
}

func newHarness(t testing.TB) *harness {
	return &harness{t: t, m: fsm.New()}
}

// applyRaw applies data at the next index and checks the applied index.
func (h *harness) applyRaw(data []byte) fsm.Result {
	h.t.Helper()
	h.idx++
	r := h.m.Apply(h.idx, data)
	if got := h.m.AppliedIndex(); got != h.idx {
		h.t.Fatalf("AppliedIndex after Apply(%d) = %d", h.idx, got)
	}
	return r
}

func (h *harness) apply(c fsm.Command) fsm.Result {
	h.t.Helper()
	return h.applyRaw(encode(h.t, c))
}

// ok applies c and fails the test if it is rejected.
func (h *harness) ok(c fsm.Command) fsm.Result {
	h.t.Helper()
	r := h.apply(c)
	if r.Err != nil {
		h.t.Fatalf("apply %s %+v: unexpected error: %v", c.Type(), c, r.Err)
	}
	checkCounts(h.t, h.m)
	return r
}

// reject applies c, requires an error wrapping want, and requires that the
// state (apart from the applied index) did not change.
func (h *harness) reject(c fsm.Command, want error) fsm.Result {
	h.t.Helper()
	return h.rejectRaw(fmt.Sprintf("%s %+v", c.Type(), c), encode(h.t, c), want)
}

func (h *harness) rejectRaw(what string, data []byte, want error) fsm.Result {
	h.t.Helper()
	before := stateBytes(h.t, h.m)
	r := h.applyRaw(data)
	if r.Err == nil {
		h.t.Fatalf("%s: accepted (value %+v), want error wrapping %v", what, r.Value, want)
	}
	if !errors.Is(r.Err, want) {
		h.t.Fatalf("%s: error %q does not wrap %v", what, r.Err, want)
	}
	if r.Value != nil {
		h.t.Errorf("%s: rejected result carries a value: %+v", what, r.Value)
	}
	assertSameState(h.t, what, before, stateBytes(h.t, h.m))
	return r
}

// unchanged applies c, requires no error and no state change.
func (h *harness) unchanged(c fsm.Command) fsm.Result {
	h.t.Helper()
	before := stateBytes(h.t, h.m)
	r := h.apply(c)
	if r.Err != nil {
		h.t.Fatalf("apply %s %+v: unexpected error: %v", c.Type(), c, r.Err)
	}
	assertSameState(h.t, fmt.Sprintf("%s %+v", c.Type(), c), before, stateBytes(h.t, h.m))
	return r
}

func (h *harness) task(id int64) *fsm.Task {
	h.t.Helper()
	tk, ok := h.m.Task(id)
	if !ok {
		h.t.Fatalf("task %d not found", id)
	}
	return tk
}

func (h *harness) node(name string) *fsm.Node {
	h.t.Helper()
	n, ok := h.m.Node(name)
	if !ok {
		h.t.Fatalf("node %s not found", name)
	}
	return n
}

// register registers an online node with some topology.
func (h *harness) register(name string, sec int) *fsm.Node {
	h.t.Helper()
	return h.ok(&fsm.RegisterNode{Node: testNode(name), At: at(sec)}).Value.(*fsm.Node)
}

func testNode(name string) *fsm.Node {
	return &fsm.Node{
		Hostname:         name,
		URL:              "http://" + name + ":8001",
		TotalCores:       16,
		MemoryTotalBytes: 64 << 30,
		NUMATopology: map[string]fsm.NUMANode{
			"0": {Cores: []int{0, 1, 2, 3, 4, 5, 6, 7}, MemoryBytes: 32 << 30},
			"1": {Cores: []int{8, 9, 10, 11, 12, 13, 14, 15}, MemoryBytes: 32 << 30},
		},
		GPUInfo: []fsm.GPUInfo{
			{GPUID: 0, Name: "RTX 4090", DriverVersion: "550.54", PCIBusID: "0000:01:00.0", MemoryTotalMiB: 24564.5, GPUUtilization: -1, Temperature: -1},
			{GPUID: 1, Name: "RTX 4090", DriverVersion: "550.54", PCIBusID: "0000:02:00.0", MemoryTotalMiB: 24564.5, GPUUtilization: -1, Temperature: -1},
		},
		CgroupsLimited: true,
	}
}

// newTask returns a pending command task with the given ID.
func newTask(id int64) *fsm.Task {
	return &fsm.Task{
		TaskID:              id,
		TaskType:            fsm.TaskCommand,
		BatchID:             id,
		Command:             "python",
		Arguments:           []string{"train.py", fmt.Sprint(id)},
		EnvVars:             map[string]string{"B": "2", "A": "1"},
		WorkDir:             "/shared/work",
		RequiredCores:       2,
		RequiredMemoryBytes: 1 << 30,
		Status:              fsm.StatusPending,
		ContainerName:       "hakuriver-base",
		StdoutPath:          fmt.Sprintf("/shared/task_outputs/%d.out", id),
		StderrPath:          fmt.Sprintf("/shared/task_errors/%d.err", id),
		SubmittedAt:         at(0),
		SystemdUnitName:     fmt.Sprintf("hakuriver-task-%d.scope", id),
	}
}

// submit creates one pending task per ID (no request ID).
func (h *harness) submit(ids ...int64) {
	h.t.Helper()
	c := &fsm.SubmitTasks{}
	for _, id := range ids {
		c.Tasks = append(c.Tasks, newTask(id))
	}
	h.ok(c)
}

// pathTo lists the statuses a fresh pending task goes through to reach s.
// The first step (assigning) is taken with AssignTask, the others with
// UpdateTask.
func pathTo(s fsm.Status) []fsm.Status {
	switch s {
	case fsm.StatusPending:
		return nil
	case fsm.StatusAssigning:
		return []fsm.Status{fsm.StatusAssigning}
	case fsm.StatusRunning:
		return []fsm.Status{fsm.StatusAssigning, fsm.StatusRunning}
	case fsm.StatusPaused:
		return []fsm.Status{fsm.StatusAssigning, fsm.StatusRunning, fsm.StatusPaused}
	}
	return []fsm.Status{fsm.StatusAssigning, fsm.StatusRunning, s}
}

// taskIn creates task id and moves it to status s, placed on node (which
// must be registered) unless s is pending.
func (h *harness) taskIn(id int64, s fsm.Status, node string) *fsm.Task {
	h.t.Helper()
	h.submit(id)
	for i, step := range pathTo(s) {
		if step == fsm.StatusAssigning {
			h.ok(&fsm.AssignTask{TaskID: id, Node: node, GPUs: []int{0}, NUMA: intp(0), At: at(10)})
			continue
		}
		c := &fsm.UpdateTask{TaskID: id, Status: step, At: at(20 + i)}
		if step.Final() {
			c.ExitCode = intp(0)
		}
		h.ok(c)
	}
	tk := h.task(id)
	if tk.Status != s {
		h.t.Fatalf("taskIn(%d, %s): task is %s", id, s, tk.Status)
	}
	return tk
}

// checkCounts verifies Counts and Len against a full listing.
func checkCounts(t testing.TB, m *fsm.Machine) {
	t.Helper()
	all, more := m.Tasks(fsm.Filter{}, 0, 0)
	if more {
		t.Fatalf("Tasks without limit reported more")
	}
	if len(all) != m.Len() {
		t.Fatalf("Tasks lists %d tasks, Len() = %d", len(all), m.Len())
	}
	want := map[fsm.Status]int{}
	var maxID int64
	for _, tk := range all {
		want[tk.Status]++
		maxID = max(maxID, tk.TaskID)
	}
	got := m.Counts()
	if len(got) != len(want) {
		t.Fatalf("Counts() = %v, recount = %v", got, want)
	}
	for s, n := range want {
		if got[s] != n {
			t.Fatalf("Counts()[%s] = %d, recount = %d (all: %v)", s, got[s], n, got)
		}
	}
	// Active lists the tasks that hold resources (not final, not a
	// stopped VPS), oldest first.
	var wantActive []int64
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Status.Holds() {
			wantActive = append(wantActive, all[i].TaskID)
		}
	}
	active := m.Active()
	if len(active) != len(wantActive) {
		t.Fatalf("Active() lists %d tasks, want %d", len(active), len(wantActive))
	}
	for i, tk := range active {
		if tk.TaskID != wantActive[i] || tk.Status.Final() {
			t.Fatalf("Active()[%d] = task %d (%s), want task %d", i, tk.TaskID, tk.Status, wantActive[i])
		}
	}
	if m.MaxTaskID() < maxID {
		t.Fatalf("MaxTaskID() = %d < highest task ID %d", m.MaxTaskID(), maxID)
	}
}

// taskJSON renders a task for comparisons that must cover every field.
func taskJSON(t testing.TB, tk *fsm.Task) string {
	t.Helper()
	b, err := json.Marshal(tk)
	if err != nil {
		t.Fatalf("marshal task: %v", err)
	}
	return string(b)
}

// resultKey renders a Result so that two runs can be compared.
func resultKey(r fsm.Result) string {
	v, err := json.Marshal(r.Value)
	if err != nil {
		v = []byte("unmarshalable: " + err.Error())
	}
	e := "<nil>"
	if r.Err != nil {
		e = r.Err.Error()
	}
	return string(v) + " | " + e
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
