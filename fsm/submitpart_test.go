package fsm_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// partOf returns part i of parts of a submit of n pending tasks whose IDs
// start at first, in batch batch, submitted at when.
func partOf(req string, n, parts, i int, first, batch int64, when time.Time) *fsm.SubmitPart {
	lo, hi := fsm.PartBounds(n, parts, i)
	p := &fsm.SubmitPart{RequestID: req, Part: i, Parts: parts, Total: n}
	for k := lo; k < hi; k++ {
		idx := k
		p.Tasks = append(p.Tasks, &fsm.Task{TaskID: first + int64(k), BatchID: batch, Status: fsm.StatusPending,
			TaskType: fsm.TaskCommand, Command: "true", ArrayIndex: &idx, SubmittedAt: when})
	}
	return p
}

func applyOK(t *testing.T, m *fsm.Machine, idx uint64, c fsm.Command) fsm.SubmitResult {
	t.Helper()
	r := m.Apply(idx, encode(t, c))
	if r.Err != nil {
		t.Fatalf("entry %d (%s): %v", idx, c.Type(), r.Err)
	}
	sr, _ := r.Value.(fsm.SubmitResult)
	return sr
}

// TestSubmitPartBounds checks the split: parts within the bounds, nearly
// equal, covering every task once, and one part for a small submit.
func TestSubmitPartBounds(t *testing.T) {
	if got := fsm.PartsFor(1000, 500<<10); got != 1 {
		t.Errorf("PartsFor(1000 tasks, 500 KiB) = %d, want 1", got)
	}
	if got := fsm.PartsFor(10000, 7<<20); got != 10 {
		t.Errorf("PartsFor(10000 tasks, 7 MiB) = %d, want 10", got)
	}
	if got := fsm.PartsFor(3, 10<<20); got != 3 {
		t.Errorf("PartsFor(3 tasks, 10 MiB) = %d, want 3 (a task per part at most)", got)
	}
	for _, n := range []int{2, 1001, 5000, 9999, 10000} {
		parts := fsm.PartsFor(n, 0)
		next := 0
		for i := range parts {
			lo, hi := fsm.PartBounds(n, parts, i)
			if lo != next || hi-lo > fsm.MaxPartTasks || hi-lo < n/parts {
				t.Fatalf("n=%d part %d of %d: [%d,%d)", n, i, parts, lo, hi)
			}
			next = hi
		}
		if next != n {
			t.Fatalf("n=%d: parts cover %d tasks", n, next)
		}
	}
}

// TestSubmitPartBookkeeping applies the parts of one request out of order,
// one twice, and the rest from a retry with other IDs and another batch:
// nothing is created twice, a part applied again returns its IDs, and the
// complete request answers all IDs in part order, in the first batch.
func TestSubmitPartBookkeeping(t *testing.T) {
	const n, parts = 10, 3
	m := fsm.New()
	p2 := applyOK(t, m, 1, partOf("r", n, parts, 2, 100, 99, at(0)))
	if len(p2.TaskIDs) != 4 || p2.TaskIDs[0] != 106 || p2.Duplicate {
		t.Fatalf("part 2: %+v", p2)
	}
	if _, ok := m.RequestTasks("r"); ok {
		t.Fatal("a request with parts missing is remembered as complete")
	}
	p0 := applyOK(t, m, 2, partOf("r", n, parts, 0, 100, 99, at(0)))
	before := stateBytes(t, m)
	again := applyOK(t, m, 3, partOf("r", n, parts, 0, 500, 499, at(5)))
	if !again.Duplicate || !slices.Equal(again.TaskIDs, p0.TaskIDs) || !bytes.Equal(stateBytes(t, m), before) {
		t.Fatalf("part 0 applied again: %+v (first %v), state changed: %v", again, p0.TaskIDs, !bytes.Equal(stateBytes(t, m), before))
	}
	done, ok := m.RequestParts("r")
	if !ok || len(done) != parts || done[1] != nil || !slices.Equal(done[0], p0.TaskIDs) || !slices.Equal(done[2], p2.TaskIDs) {
		t.Fatalf("RequestParts: %v %v", done, ok)
	}
	// Refused, and nothing changed: the request sent whole, a part of
	// another split, a part of the wrong size.
	whole := &fsm.SubmitTasks{RequestID: "r", Tasks: partOf("r", n, 1, 0, 600, 599, at(6)).Tasks}
	other := partOf("r", n, 2, 1, 600, 599, at(6))
	short := partOf("r", n, parts, 1, 600, 599, at(6))
	short.Tasks = short.Tasks[1:]
	huge := partOf("h", 1<<40, 1<<40, 0, 600, 599, at(6))
	for i, c := range []fsm.Command{whole, other, short, huge} {
		r := m.Apply(uint64(4+i), encode(t, c))
		if !errors.Is(r.Err, fsm.ErrConflict) && !errors.Is(r.Err, fsm.ErrInvalid) || !bytes.Equal(stateBytes(t, m), before) {
			t.Fatalf("%T %d: err %v, state changed: %v", c, i, r.Err, !bytes.Equal(stateBytes(t, m), before))
		}
	}
	// The retry's part 1: its own IDs, the first batch.
	p1 := applyOK(t, m, 8, partOf("r", n, parts, 1, 700, 699, at(9)))
	all, ok := m.RequestTasks("r")
	want := slices.Concat(p0.TaskIDs, p1.TaskIDs, p2.TaskIDs)
	if !ok || !slices.Equal(all, want) || m.Len() != n {
		t.Fatalf("complete request: %v %v, want %v; %d tasks", all, ok, want, m.Len())
	}
	if _, partial := m.RequestParts("r"); partial {
		t.Fatal("a complete request is still partial")
	}
	for _, id := range all {
		if tk, _ := m.Task(id); tk.BatchID != 99 || tk.RequestID != "r" {
			t.Fatalf("task %d: batch %d request %q", id, tk.BatchID, tk.RequestID)
		}
	}
	// Any part once complete: its IDs again, nothing created.
	before = stateBytes(t, m)
	if sr := applyOK(t, m, 9, partOf("r", n, parts, 1, 800, 799, at(10))); !sr.Duplicate || !slices.Equal(sr.TaskIDs, p1.TaskIDs) || !bytes.Equal(stateBytes(t, m), before) {
		t.Fatalf("part 1 after completion: %+v", sr)
	}
	if sr := applyOK(t, m, 10, whole); !sr.Duplicate || !slices.Equal(sr.TaskIDs, want) {
		t.Fatalf("the request sent whole after completion: %+v", sr)
	}
}

// TestSubmitPartReplay replays a log with split requests (one left
// partial, one completed from a retry, one pruned while partial) on a
// live replica, on one restored from a snapshot taken mid-way and on a
// second live one: all three end byte-identical.
func TestSubmitPartReplay(t *testing.T) {
	day := fsm.RequestRetention
	log := []fsm.Command{
		partOf("a", 7, 3, 1, 10, 9, at(0)), // completed later by a retry
		partOf("b", 5, 2, 0, 20, 19, at(5)),
		partOf("c", 4, 2, 1, 30, 29, at(1)), // pruned while partial
		// (the snapshot is taken here)
		partOf("a", 7, 3, 0, 40, 39, at(3)),
		partOf("a", 7, 3, 2, 40, 39, at(3)),
		partOf("a", 7, 3, 1, 40, 39, at(3)), // committed already
		// Prunes what was submitted before at(2): c, and a had it kept
		// the time of its first committed part.
		&fsm.SubmitTasks{RequestID: "d", Tasks: []*fsm.Task{{TaskID: 50, Status: fsm.StatusPending, SubmittedAt: at(2).Add(day)}}},
	}
	const cut = 3
	live, other := fsm.New(), fsm.New()
	for i, c := range log[:cut] {
		applyOK(t, live, uint64(i+1), c)
		applyOK(t, other, uint64(i+1), c)
	}
	restored := fsm.New()
	if err := restored.Restore(bytes.NewReader(snapshotBytes(t, live))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, restored), snapshotBytes(t, live)) {
		t.Fatal("a restored partial state encodes differently")
	}
	for i, c := range log[cut:] {
		for _, m := range []*fsm.Machine{live, other, restored} {
			applyOK(t, m, uint64(cut+i+1), c)
		}
	}
	want := snapshotBytes(t, live)
	for name, m := range map[string]*fsm.Machine{"replayed": other, "restored": restored} {
		if got := snapshotBytes(t, m); !bytes.Equal(got, want) {
			t.Errorf("%s replica diverged:\n%s\nlive:\n%s", name, got, want)
		}
	}
	// a: complete and kept (its first task's submit time, at(3), from
	// the retry's part 0, governs its pruning); b: partial and kept; c:
	// pruned.
	if ids, ok := live.RequestTasks("a"); !ok || len(ids) != 7 || ids[0] != 40 {
		t.Errorf("request a: %v %v", ids, ok)
	}
	if done, ok := live.RequestParts("b"); !ok || done[1] != nil {
		t.Errorf("request b: %v %v", done, ok)
	}
	if _, ok := live.RequestParts("c"); ok {
		t.Error("partial request c outlived the retention")
	}
}
