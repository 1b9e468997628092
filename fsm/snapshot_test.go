package fsm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// richState builds a machine with nodes of every kind, tasks in every
// status and of both types, batches, request IDs and IDs submitted out of
// order. It returns the harness and the request IDs it used.
func richState(t testing.TB) (*harness, []string) {
	h := newHarness(t)
	for i, name := range []string{"gpu-a", "gpu-b", "cpu-c", "cpu-d"} {
		n := testNode(name)
		if name[:3] == "cpu" {
			n.GPUInfo = nil
			n.NUMATopology = nil
		}
		h.ok(&fsm.RegisterNode{Node: n, At: at(i)})
	}
	h.ok(&fsm.SetNodeDrain{Hostname: "gpu-b", Drained: true})

	var reqs []string
	id := int64(1_000)
	for round := 0; round < 6; round++ {
		for si, s := range fsm.AllStatuses() {
			node := []string{"gpu-a", "gpu-b", "cpu-c", "cpu-d"}[(round+si)%4]
			// IDs go down then up so that insertion is out of order.
			tid := id + int64((round%2)*500) - int64(round*10+si)
			h.taskIn(tid, s, node)
		}
		// A batch submitted with a request ID, VPS and command tasks mixed.
		req := fmt.Sprintf("req-%d", round)
		reqs = append(reqs, req)
		c := &fsm.SubmitTasks{RequestID: req}
		for k := range 3 {
			tk := newTask(5_000 + int64(round*10+k))
			tk.BatchID = 5_000 + int64(round*10)
			if k == 1 {
				tk.TaskType = fsm.TaskVPS
				tk.TargetNode = "gpu-a"
				tk.TargetNUMANodeID = intp(1)
				tk.RequiredGPUs = []int{0, 1}
				tk.Privileged = true
				tk.AdditionalMounts = []string{"/data:/data"}
			}
			if k == 2 {
				tk.EnvVars = nil
				tk.Arguments = nil
			}
			c.Tasks = append(c.Tasks, tk)
		}
		h.ok(c)
		h.ok(&fsm.AssignTask{TaskID: c.Tasks[1].TaskID, Node: "gpu-a", GPUs: []int{round % 2}, At: at(100 + round)})
		h.ok(&fsm.UpdateTask{TaskID: c.Tasks[1].TaskID, Status: fsm.StatusRunning, SSHPort: 30000 + round, ExitCode: intp(0), At: at(110 + round)})
	}
	// A node goes offline: its placed tasks become lost.
	h.ok(&fsm.SetNodeStatus{Hostname: "cpu-d", Status: fsm.NodeOffline, At: at(200)})
	// Some rejected and ignored entries advance the applied index too.
	h.apply(&fsm.KillTask{TaskID: 424242, At: at(300)})
	h.applyRaw([]byte{0x99, '{', '}'})
	return h, reqs
}

// queryView renders everything the read API exposes, for comparing two
// machines through their queries rather than through their snapshots.
func queryView(t testing.TB, m *fsm.Machine, reqs []string) string {
	var b strings.Builder
	list := func(name string, f fsm.Filter) {
		tasks, more := m.Tasks(f, 0, 0)
		fmt.Fprintf(&b, "%s more=%v:", name, more)
		for _, tk := range tasks {
			b.WriteString(taskJSON(t, tk))
		}
		b.WriteByte('\n')
		page, more := m.Tasks(f, 0, 3)
		fmt.Fprintf(&b, "%s page3 more=%v:", name, more)
		for _, tk := range page {
			fmt.Fprintf(&b, " %d", tk.TaskID)
		}
		b.WriteByte('\n')
	}
	list("all", fsm.Filter{})
	for _, s := range fsm.AllStatuses() {
		list("status "+string(s), fsm.Filter{Status: s})
	}
	for _, n := range m.Nodes() {
		list("node "+n.Hostname, fsm.Filter{Node: n.Hostname})
		fmt.Fprintf(&b, "node %s: %s\n", n.Hostname, taskJSONNode(t, n))
	}
	list("vps", fsm.Filter{Type: fsm.TaskVPS})
	list("command running", fsm.Filter{Type: fsm.TaskCommand, Status: fsm.StatusRunning})
	list("batch 5020", fsm.Filter{Batch: 5_020})
	fmt.Fprintf(&b, "counts %v len %d max %d applied %d\n", m.Counts(), m.Len(), m.MaxTaskID(), m.AppliedIndex())
	for _, r := range append(reqs, "req-none") {
		ids, ok := m.RequestTasks(r)
		fmt.Fprintf(&b, "request %s: %v %v\n", r, ids, ok)
	}
	return b.String()
}

func TestSnapshotRoundTrip(t *testing.T) {
	h, reqs := richState(t)
	checkCounts(t, h.m)
	if c := h.m.Counts(); len(c) != len(fsm.AllStatuses()) {
		t.Fatalf("rich state does not cover every status: %v", c)
	}
	snap := snapshotBytes(t, h.m)

	m2 := fsm.New()
	if err := m2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if again := snapshotBytes(t, m2); !bytes.Equal(again, snap) {
		assertSameState(t, "snapshot after restore", snap, again)
	}
	checkCounts(t, m2)
	v1, v2 := queryView(t, h.m, reqs), queryView(t, m2, reqs)
	if v1 != v2 {
		t.Fatalf("queries differ after restore:\n%s\n---\n%s", v1, v2)
	}
	if m2.AppliedIndex() != h.idx || m2.MaxTaskID() != h.m.MaxTaskID() {
		t.Fatalf("restored applied %d max %d, want %d %d", m2.AppliedIndex(), m2.MaxTaskID(), h.idx, h.m.MaxTaskID())
	}

	// The restored replica keeps deduplicating old submits, and both
	// replicas stay identical as the log continues.
	h2 := &harness{t: t, m: m2, idx: h.idx}
	wantIDs, _ := h.m.RequestTasks(reqs[2])
	retry := &fsm.SubmitTasks{RequestID: reqs[2], Tasks: []*fsm.Task{newTask(9_999)}}
	for _, hh := range []*harness{h, h2} {
		r := hh.unchanged(retry)
		res := r.Value.(fsm.SubmitResult)
		if !res.Duplicate || !slices.Equal(res.TaskIDs, wantIDs) {
			t.Fatalf("retry after restore = %+v, want duplicate of %v", res, wantIDs)
		}
		if _, ok := hh.m.Task(9_999); ok {
			t.Fatalf("retry created a task")
		}
		hh.ok(&fsm.SubmitTasks{RequestID: "req-new", Tasks: []*fsm.Task{newTask(9_998)}})
		hh.ok(&fsm.SetNodeStatus{Hostname: "gpu-a", Status: fsm.NodeOffline, At: at(400)})
	}
	if a, b := snapshotBytes(t, h.m), snapshotBytes(t, m2); !bytes.Equal(a, b) {
		assertSameState(t, "original vs restored after further entries", a, b)
	}
}

func TestSnapshotWritesAreDeterministic(t *testing.T) {
	h, _ := richState(t)
	first := snapshotBytes(t, h.m)
	for range 5 { // map iteration order differs between calls
		if again := snapshotBytes(t, h.m); !bytes.Equal(again, first) {
			assertSameState(t, "second Write", first, again)
		}
	}
	var s struct {
		Version      int    `json:"version"`
		AppliedIndex uint64 `json:"applied_index"`
	}
	if err := json.Unmarshal(first, &s); err != nil {
		t.Fatal(err)
	}
	if s.Version != fsm.SnapshotVersion || s.AppliedIndex != h.idx {
		t.Fatalf("snapshot header %+v, want version %d applied %d", s, fsm.SnapshotVersion, h.idx)
	}
}

func TestRestoreReplacesState(t *testing.T) {
	small := newHarness(t)
	small.register("only", 0)
	small.submit(3)
	snap := snapshotBytes(t, small.m)

	big, _ := richState(t)
	if err := big.m.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := snapshotBytes(t, big.m); !bytes.Equal(got, snap) {
		assertSameState(t, "restore over a non-empty machine", snap, got)
	}
	checkCounts(t, big.m)
	if big.m.Len() != 1 || len(big.m.Nodes()) != 1 || big.m.MaxTaskID() != 3 || big.m.AppliedIndex() != small.idx {
		t.Fatalf("left-overs after restore: len %d nodes %d max %d applied %d",
			big.m.Len(), len(big.m.Nodes()), big.m.MaxTaskID(), big.m.AppliedIndex())
	}
	if _, ok := big.m.RequestTasks("req-0"); ok {
		t.Fatalf("request IDs survived a restore")
	}
}

func TestRestoreErrorsLeaveStateAlone(t *testing.T) {
	h, _ := richState(t)
	before := snapshotBytes(t, h.m)
	for name, in := range map[string]string{
		"empty":           "",
		"garbage":         "not json",
		"truncated":       string(before[:len(before)/2]),
		"future version":  `{"version":99,"applied_index":5,"tasks":[]}`,
		"missing version": `{"applied_index":5}`,
		"wrong shape":     `{"version":1,"tasks":{"a":1}}`,
	} {
		if err := h.m.Restore(strings.NewReader(in)); err == nil {
			t.Errorf("%s: Restore accepted %q", name, in)
		}
		assertSameState(t, name, before, snapshotBytes(t, h.m))
	}
}

func TestMaxTaskIDNeverDecreases(t *testing.T) {
	h := newHarness(t)
	h.submit(50, 10)
	h.submit(30)
	if got := h.m.MaxTaskID(); got != 50 {
		t.Fatalf("MaxTaskID = %d, want 50", got)
	}
	// A snapshot's max_task_id larger than any task (e.g. IDs issued in a
	// submit that was later compacted away) is kept.
	var s map[string]json.RawMessage
	if err := json.Unmarshal(snapshotBytes(t, h.m), &s); err != nil {
		t.Fatal(err)
	}
	s["max_task_id"] = json.RawMessage(`70`)
	b, _ := json.Marshal(s)
	m := fsm.New()
	if err := m.Restore(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if got := m.MaxTaskID(); got != 70 {
		t.Fatalf("MaxTaskID after restore = %d, want 70", got)
	}
	if got := fsm.New().MaxTaskID(); got != 0 {
		t.Fatalf("MaxTaskID of an empty machine = %d", got)
	}
}

// TestSnapshotIsPointInTime takes a snapshot, keeps applying entries (some
// concurrently with Write, as Raft does), and checks the snapshot still
// writes the state of the moment it was taken. Run with -race.
func TestSnapshotIsPointInTime(t *testing.T) {
	h, _ := richState(t)
	want := snapshotBytes(t, h.m)
	snap := h.m.Snapshot()

	later := func(h *harness) {
		all, _ := h.m.Tasks(fsm.Filter{}, 0, 0)
		for i, tk := range all {
			switch tk.Status {
			case fsm.StatusRunning, fsm.StatusPaused, fsm.StatusPending, fsm.StatusAssigning:
				h.apply(&fsm.KillTask{TaskID: tk.TaskID, Message: "bye", At: at(1000 + i)})
			}
		}
		h.apply(&fsm.RegisterNode{Node: testNode("gpu-a"), At: at(2000)})
		h.apply(&fsm.SetNodeDrain{Hostname: "gpu-b", Drained: false})
		h.apply(&fsm.SetNodeStatus{Hostname: "cpu-c", Status: fsm.NodeOffline, At: at(2001)})
		h.apply(&fsm.SubmitTasks{RequestID: "req-late", Tasks: []*fsm.Task{newTask(77_777)}})
	}

	var wg sync.WaitGroup
	var got bytes.Buffer
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(time.Millisecond)
		werr = snap.Write(&got)
	}()
	later(&harness{t: t, m: h.m, idx: h.idx}) // t.Fatal from here is fine: same goroutine as the test
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	if !bytes.Equal(got.Bytes(), want) {
		assertSameState(t, "snapshot written while applying", want, got.Bytes())
	}
	if bytes.Equal(snapshotBytes(t, h.m), want) {
		t.Fatalf("the later entries changed nothing; the test proves nothing")
	}

	// Readers may keep pointers: a task read before a change keeps its value.
	h2 := newHarness(t)
	h2.register("n1", 0)
	old := h2.taskIn(1, fsm.StatusRunning, "n1")
	oldNode := h2.node("n1")
	oldJSON, oldNodeJSON := taskJSON(t, old), taskJSONNode(t, oldNode)
	h2.ok(&fsm.SetNodeStatus{Hostname: "n1", Status: fsm.NodeOffline, At: at(9)})
	if taskJSON(t, old) != oldJSON || taskJSONNode(t, oldNode) != oldNodeJSON {
		t.Fatalf("stored values were mutated in place")
	}
}

// TestConcurrentReadsDuringApply exercises every read method while entries
// are applied. It finds nothing without -race.
func TestConcurrentReadsDuringApply(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				h.m.Tasks(fsm.Filter{Node: "n1"}, 0, 5)
				h.m.Task(3)
				h.m.Node("n1")
				h.m.Nodes()
				h.m.Counts()
				h.m.Len()
				h.m.MaxTaskID()
				h.m.AppliedIndex()
				h.m.RequestTasks("r3")
				var buf bytes.Buffer
				_ = h.m.Snapshot().Write(&buf)
			}
		}()
	}
	for i := int64(1); i <= 200; i++ {
		h.apply(&fsm.SubmitTasks{RequestID: fmt.Sprintf("r%d", i), Tasks: []*fsm.Task{newTask(i)}})
		h.apply(&fsm.AssignTask{TaskID: i, Node: "n1", At: at(int(i))})
		h.apply(&fsm.UpdateTask{TaskID: i, Status: fsm.StatusRunning, At: at(int(i))})
		if i%7 == 0 {
			h.apply(&fsm.RegisterNode{Node: testNode("n1"), At: at(int(i))})
		}
	}
	close(stop)
	wg.Wait()
	checkCounts(t, h.m)
}
