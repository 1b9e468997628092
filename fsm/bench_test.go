package fsm_test

import (
	"bytes"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// BenchmarkApplySubmit measures decoding and applying a one-task submit
// with a request ID, the most common write.
func BenchmarkApplySubmit(b *testing.B) {
	m := fsm.New()
	entries := make([][]byte, 4096)
	var id int64 = 7_300_000_000_000_000_000
	next := func() []byte {
		id++
		tk := newTask(id)
		return encode(b, &fsm.SubmitTasks{RequestID: "req-" + tk.SystemdUnitName, Tasks: []*fsm.Task{tk}})
	}
	for i := range entries {
		entries[i] = next()
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(entries[0])))
	var idx uint64
	for b.Loop() {
		if idx > 0 && idx%uint64(len(entries)) == 0 {
			b.StopTimer()
			for i := range entries {
				entries[i] = next()
			}
			b.StartTimer()
		}
		e := entries[idx%uint64(len(entries))]
		idx++
		if r := m.Apply(idx, e); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	if m.Len() != int(idx) {
		b.Fatalf("Len = %d after %d submits", m.Len(), idx)
	}
}

// BenchmarkSnapshotRestore100k measures Snapshot().Write plus Restore of a
// state with 100,000 tasks and reports the snapshot size.
func BenchmarkSnapshotRestore100k(b *testing.B) {
	const n = 100_000
	h := newHarness(b)
	for _, name := range []string{"n1", "n2", "n3", "n4"} {
		h.register(name, 0)
	}
	// Submit accepts non-final initial statuses (and failed); the other
	// final statuses are reached with UpdateTask and KillTask.
	initial := []fsm.Status{fsm.StatusPending, fsm.StatusAssigning, fsm.StatusRunning, fsm.StatusRunning, fsm.StatusFailed}
	nodes := []string{"n1", "n2", "n3", "n4"}
	const per = 100
	var base int64 = 7_300_000_000_000_000_000
	for i := 0; i < n; i += per {
		c := &fsm.SubmitTasks{RequestID: "req-" + newTask(base+int64(i)).SystemdUnitName}
		for k := 0; k < per; k++ {
			tk := newTask(base + int64(i+k))
			tk.BatchID = base + int64(i)
			tk.Status = initial[k%len(initial)]
			if tk.Status != fsm.StatusPending {
				tk.AssignedNode = nodes[k%len(nodes)]
			}
			if tk.Status == fsm.StatusRunning || tk.Status == fsm.StatusFailed {
				tk.StartedAt = timep(at(k))
			}
			if tk.Status == fsm.StatusFailed {
				tk.CompletedAt = timep(at(k + 60))
				tk.ExitCode = intp(1)
			}
			c.Tasks = append(c.Tasks, tk)
		}
		mustApply(b, h, c)
		for k := 0; k < per; k += len(initial) {
			mustApply(b, h, &fsm.UpdateTask{TaskID: c.Tasks[k+2].TaskID, Status: fsm.StatusCompleted, ExitCode: intp(0), At: at(k + 90)})
			mustApply(b, h, &fsm.KillTask{TaskID: c.Tasks[k+1].TaskID, Message: "Kill requested by user.", At: at(k + 91)})
		}
	}
	if h.m.Len() != n {
		b.Fatalf("Len = %d", h.m.Len())
	}
	checkCounts(b, h.m)
	size := len(snapshotBytes(b, h.m))
	b.ReportAllocs()
	b.ResetTimer()
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := h.m.Snapshot().Write(&buf); err != nil {
			b.Fatal(err)
		}
		m := fsm.New()
		if err := m.Restore(&buf); err != nil {
			b.Fatal(err)
		}
		if m.Len() != n {
			b.Fatalf("restored %d tasks", m.Len())
		}
	}
	b.ReportMetric(float64(size)/1e6, "MB/snapshot")
	b.SetBytes(int64(size))
}

// mustApply is harness.ok without the O(n) consistency check per entry.
func mustApply(b *testing.B, h *harness, c fsm.Command) {
	if r := h.apply(c); r.Err != nil {
		b.Fatalf("%s: %v", c.Type(), r.Err)
	}
}
