package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// openArchive opens an archive in dir (the test's) or fails.
func openArchive(t testing.TB, dir string) *fsm.Archive {
	t.Helper()
	a, err := fsm.OpenArchive(filepath.Join(dir, "archive.db"))
	if err != nil {
		t.Fatalf("OpenArchive: %v", err)
	}
	return a
}

// archiveHarness is a harness whose Machine has an archive in dir.
func archiveHarness(t testing.TB, dir string) *harness {
	t.Helper()
	m := fsm.NewWithArchive(openArchive(t, dir))
	t.Cleanup(func() { m.Close() })
	return &harness{t: t, m: m}
}

// listing renders Tasks(f, after, limit) with its more flag.
func listing(t testing.TB, m *fsm.Machine, f fsm.Filter, after int64, limit int) string {
	t.Helper()
	tasks, more := m.Tasks(f, after, limit)
	var b bytes.Buffer
	for _, tk := range tasks {
		b.WriteString(taskJSON(t, tk))
		b.WriteByte('\n')
	}
	if more {
		b.WriteString("more")
	}
	return b.String()
}

// archiveFixture fills h with finished tasks 1-6 (in two batches: 1-3 are
// batch 100, 4-6 batch 200, on nodes n1/n2) and running task 7.
func archiveFixture(h *harness) {
	h.register("n1", 0)
	h.register("n2", 0)
	final := []fsm.Status{fsm.StatusCompleted, fsm.StatusFailed, fsm.StatusKilled, fsm.StatusCompleted, fsm.StatusLost, fsm.StatusKilledOOM}
	for i, st := range final {
		id := int64(i + 1)
		tk := newTask(id)
		tk.BatchID = 100
		if id > 3 {
			tk.BatchID = 200
		}
		if id%2 == 1 {
			tk.Owner = "alice"
		}
		if id == 2 || id == 4 {
			tk.Name = "train"
		}
		if id == 6 {
			tk.TaskType = fsm.TaskVPS
		}
		h.ok(&fsm.SubmitTasks{RequestID: "req-" + string(rune('a'+i)), Tasks: []*fsm.Task{tk}})
		node := "n1"
		if id%2 == 0 {
			node = "n2"
		}
		h.ok(&fsm.AssignTask{TaskID: id, Node: node, At: at(10)})
		h.ok(&fsm.UpdateTask{TaskID: id, Status: fsm.StatusRunning, At: at(20)})
		h.ok(&fsm.UpdateTask{TaskID: id, Status: st, ExitCode: intp(i), At: at(30 + i)})
	}
	h.taskIn(7, fsm.StatusRunning, "n1")
}

// views renders what every read of the Machine answers, for comparisons.
func views(t testing.TB, m *fsm.Machine) map[string]string {
	t.Helper()
	out := map[string]string{}
	for id := int64(1); id <= 8; id++ {
		if tk, ok := m.Task(id); ok {
			out["task "+string(rune('0'+id))] = taskJSON(t, tk)
		}
	}
	out["all"] = listing(t, m, fsm.Filter{}, 0, 0)
	out["page1"] = listing(t, m, fsm.Filter{}, 0, 2)
	out["page2"] = listing(t, m, fsm.Filter{}, 5, 2)
	out["page3"] = listing(t, m, fsm.Filter{}, 3, 2)
	out["batch100"] = listing(t, m, fsm.Filter{Batch: 100}, 0, 0)
	out["batch200 paged"] = listing(t, m, fsm.Filter{Batch: 200}, 6, 1)
	out["completed"] = listing(t, m, fsm.Filter{Status: fsm.StatusCompleted}, 0, 0)
	out["n2"] = listing(t, m, fsm.Filter{Node: "n2"}, 0, 0)
	out["text"] = listing(t, m, fsm.Filter{Text: "train.py 5"}, 0, 0)
	out["running"] = listing(t, m, fsm.Filter{Status: fsm.StatusRunning}, 0, 10)
	out["alice"] = listing(t, m, fsm.Filter{Owner: "alice"}, 0, 0)
	out["alice paged"] = listing(t, m, fsm.Filter{Owner: "alice"}, 5, 1)
	out["named"] = listing(t, m, fsm.Filter{Name: "train"}, 0, 0)
	out["named other"] = listing(t, m, fsm.Filter{Name: "trai"}, 0, 0)
	out["vps"] = listing(t, m, fsm.Filter{Type: fsm.TaskVPS}, 0, 0)
	out["commands of alice"] = listing(t, m, fsm.Filter{Type: fsm.TaskCommand, Owner: "alice"}, 0, 0)
	counts := m.Counts()
	for _, st := range fsm.AllStatuses() {
		out["count "+string(st)] = string(rune('0' + counts[st]))
	}
	ids, _ := m.RequestTasks("req-b")
	out["request"] = taskJSON(t, &fsm.Task{After: ids})
	return out
}

func sameViews(t testing.TB, what string, want, got map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s:\n got %s\nwant %s", what, k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d views, want %d", what, len(got), len(want))
	}
}

func TestArchiveReadsBackIdentical(t *testing.T) {
	h := archiveHarness(t, t.TempDir())
	archiveFixture(h)
	before := views(t, h.m)
	// 7 is running, 99 unknown, 2 named twice: only 1-6 move.
	r := h.ok(&fsm.ArchiveTasks{TaskIDs: fsm.IDList{1, 2, 2, 3, 4, 5, 6, 7, 99}, At: at(100)})
	if got := r.Value.(fsm.ArchiveResult).Moved; got != 6 {
		t.Fatalf("moved %d tasks, want 6", got)
	}
	if n := h.m.MemoryTasks(); n != 1 {
		t.Fatalf("%d tasks in memory after archiving, want 1 (the running one)", n)
	}
	if st := h.m.ArchiveStats(); st.Tasks != 6 || st.Index != h.idx {
		t.Fatalf("ArchiveStats = %+v, want 6 tasks at index %d", st, h.idx)
	}
	sameViews(t, "after archiving", before, views(t, h.m))
	checkCounts(t, h.m)
	// Applying it again moves nothing and changes nothing.
	state := stateBytes(t, h.m)
	r = h.ok(&fsm.ArchiveTasks{TaskIDs: fsm.IDList{1, 2, 3}, At: at(101)})
	if got := r.Value.(fsm.ArchiveResult).Moved; got != 0 {
		t.Fatalf("second archive moved %d", got)
	}
	sameViews(t, "after archiving twice", before, views(t, h.m))
	if b := stateBytes(t, h.m); bytes.Equal(b, state) {
		// Only the archive's index moves: the state differs exactly there.
		t.Fatalf("the archive index of the second entry is not in the state")
	}
}

func TestArchivedTaskUpdatesAsFinal(t *testing.T) {
	h := archiveHarness(t, t.TempDir())
	archiveFixture(h)
	h.ok(&fsm.ArchiveTasks{TaskIDs: fsm.IDList{1, 2}, At: at(100)})
	state := stateBytes(t, h.m)
	// A retried report of the end is harmless; other moves conflict.
	if r := h.ok(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusCompleted, At: at(200)}); r.Value.(*fsm.Task).TaskID != 1 {
		t.Fatalf("retried final report: %+v", r)
	}
	h.reject(&fsm.UpdateTask{TaskID: 1, Status: fsm.StatusRunning, At: at(200)}, fsm.ErrConflict)
	h.reject(&fsm.KillTask{TaskID: 2, Message: "x", At: at(200)}, fsm.ErrConflict)
	h.reject(&fsm.UpdateTask{TaskID: 98, Status: fsm.StatusRunning, At: at(200)}, fsm.ErrNotFound)
	assertSameState(t, "updates of archived tasks", state, stateBytes(t, h.m))
}

// archiveLog is a log with an archive entry in the middle and more work
// after it: entries[i] is applied at index i+1.
func archiveLog(t testing.TB) [][]byte {
	var log [][]byte
	add := func(c fsm.Command) { log = append(log, encode(t, c)) }
	add(&fsm.RegisterNode{Node: testNode("n1"), At: at(0)})
	for id := int64(1); id <= 20; id++ {
		tk := newTask(id)
		tk.BatchID = 1000 + id%3
		add(&fsm.SubmitTasks{RequestID: "r" + string(rune('A'+id)), Tasks: []*fsm.Task{tk}})
		add(&fsm.AssignTask{TaskID: id, Node: "n1", At: at(int(id))})
		if id%5 != 0 { // every fifth task keeps running
			add(&fsm.UpdateTask{TaskID: id, Status: fsm.StatusCompleted, ExitCode: intp(0), At: at(int(id) + 1)})
		}
	}
	add(&fsm.ArchiveTasks{TaskIDs: fsm.IDList{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, At: at(50)})
	for id := int64(21); id <= 25; id++ {
		add(&fsm.SubmitTasks{Tasks: []*fsm.Task{newTask(id)}})
	}
	add(&fsm.UpdateTask{TaskID: 5, Status: fsm.StatusFailed, At: at(60)}) // 5 was running: it ends
	add(&fsm.ArchiveTasks{TaskIDs: fsm.IDList{5, 11, 12, 13, 14, 15}, At: at(70)})
	add(&fsm.UpdateTask{TaskID: 11, Status: fsm.StatusCompleted, At: at(80)}) // a retried report of an archived task
	return log
}

func applyLog(t testing.TB, m *fsm.Machine, log [][]byte, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if r := m.Apply(uint64(i+1), log[i]); errors.Is(r.Err, fsm.ErrHalted) {
			t.Fatalf("entry %d halted: %v", i+1, r.Err)
		}
	}
}

func TestArchiveDeterministicAcrossReplicas(t *testing.T) {
	log := archiveLog(t)
	var states [][]byte
	for range 3 {
		m := fsm.NewWithArchive(openArchive(t, t.TempDir()))
		defer m.Close()
		applyLog(t, m, log, 0, len(log))
		states = append(states, snapshotBytes(t, m))
		checkCounts(t, m)
	}
	for i := 1; i < len(states); i++ {
		assertSameState(t, "replica state", states[0], states[i])
	}
	if !bytes.Contains(states[0], []byte(`"archived":[`)) {
		t.Fatalf("the snapshot carries no archived tasks")
	}
	// A replica restored from every point of the log and then replaying
	// the rest ends in the same state.
	for cut := 0; cut <= len(log); cut += 7 {
		src := fsm.NewWithArchive(openArchive(t, t.TempDir()))
		applyLog(t, src, log, 0, cut)
		snap := snapshotBytes(t, src)
		src.Close()
		dst := fsm.NewWithArchive(openArchive(t, t.TempDir()))
		if err := dst.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatalf("restore at %d: %v", cut, err)
		}
		applyLog(t, dst, log, cut, len(log))
		assertSameState(t, "restored at entry "+string(rune('0'+cut/7)), states[0], snapshotBytes(t, dst))
		checkCounts(t, dst)
		dst.Close()
	}
}

// TestArchiveRestart is a replica that crashes after archiving: its
// archive file is ahead of its last Raft snapshot (or there is no
// snapshot). Restore and the replay of the log must end in the state of a
// replica that never stopped, with no task lost or twice.
func TestArchiveRestart(t *testing.T) {
	log := archiveLog(t)
	ref := fsm.NewWithArchive(openArchive(t, t.TempDir()))
	defer ref.Close()
	applyLog(t, ref, log, 0, len(log))
	want := snapshotBytes(t, ref)
	for _, snapAt := range []int{-1, 0, 30, len(log) - 3, len(log)} {
		dir := t.TempDir()
		m := fsm.NewWithArchive(openArchive(t, dir))
		var snap []byte
		if snapAt >= 0 {
			applyLog(t, m, log, 0, snapAt)
			snap = snapshotBytes(t, m)
		}
		applyLog(t, m, log, max(snapAt, 0), len(log))
		m.Close() // the crash: the archive holds every entry's tasks
		m = fsm.NewWithArchive(openArchive(t, dir))
		from := 0
		if snap != nil {
			if err := m.Restore(bytes.NewReader(snap)); err != nil {
				t.Fatalf("snapshot at %d: restore: %v", snapAt, err)
			}
			from = snapAt
		}
		applyLog(t, m, log, from, len(log))
		assertSameState(t, "restarted", want, snapshotBytes(t, m))
		checkCounts(t, m)
		m.Close()
	}
}

func TestArchiveCorruptSnapshotKeepsArchive(t *testing.T) {
	log := archiveLog(t)
	dir := t.TempDir()
	m := fsm.NewWithArchive(openArchive(t, dir))
	defer m.Close()
	applyLog(t, m, log, 0, len(log))
	good := snapshotBytes(t, m)
	for name, bad := range map[string][]byte{
		"ids descend": bytes.Replace(good, []byte(`"archived":[{"task_id":"1"`), []byte(`"archived":[{"task_id":"99"`), 1),
		"not final":   replaceAfter(good, `"archived":[`, `"status":"completed"`, `"status":"running"`),
		"count":       bytes.Replace(good, []byte(`"archive":{"index":`), []byte(`"archive":{"counts":{"lost":1},"index":`), 1),
		"cut in half": good[:len(good)*2/3],
		"no header":   bytes.Replace(good, []byte(`"archive":`), []byte(`"archivex":`), 1),
		"tasks after": bytes.Replace(bytes.Replace(good, []byte(`"tasks":`), []byte(`"tasks0":`), 1), []byte(`"requests":`), []byte(`"tasks":[],"requests":`), 1),
	} {
		if bytes.Equal(bad, good) {
			t.Fatalf("%s: the corruption did not apply", name)
		}
		if err := m.Restore(bytes.NewReader(bad)); err == nil {
			t.Fatalf("%s: Restore accepted a corrupt snapshot", name)
		}
		assertSameState(t, name, good, snapshotBytes(t, m))
	}
	if _, err := os.Stat(filepath.Join(dir, "archive.db.restore")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed restore left its file: %v", err)
	}
}

func TestArchiveWriteErrorHalts(t *testing.T) {
	a := openArchive(t, t.TempDir())
	h := &harness{t: t, m: fsm.NewWithArchive(a)}
	archiveFixture(h)
	a.Close() // every write now fails
	h.idx++
	r := h.m.Apply(h.idx, encode(t, &fsm.ArchiveTasks{TaskIDs: fsm.IDList{1}, At: at(100)}))
	if !errors.Is(r.Err, fsm.ErrHalted) || !errors.Is(h.m.Halted(), fsm.ErrHalted) {
		t.Fatalf("archive write error: result %v, Halted %v; want ErrHalted", r.Err, h.m.Halted())
	}
	if tk, ok := h.m.Task(1); !ok || tk.Status != fsm.StatusCompleted {
		t.Fatalf("task 1 after the failed archive: %v %v", tk, ok)
	}
}

func TestReadSnapshotWithArchive(t *testing.T) {
	log := archiveLog(t)
	m := fsm.NewWithArchive(openArchive(t, t.TempDir()))
	defer m.Close()
	applyLog(t, m, log, 0, len(log))
	snap := snapshotBytes(t, m)
	r, err := fsm.ReadSnapshot(bytes.NewReader(snap))
	if err != nil {
		t.Fatalf("ReadSnapshot: %v", err)
	}
	if r.Len() != m.Len() || r.ArchiveStats().Tasks != m.ArchiveStats().Tasks {
		t.Fatalf("ReadSnapshot: %d tasks (%d archived), want %d (%d)", r.Len(), r.ArchiveStats().Tasks, m.Len(), m.ArchiveStats().Tasks)
	}
	assertSameState(t, "read back", snap, snapshotBytes(t, r))
	tmp := filepath.Dir(r.ArchiveStats().Path)
	r.Close()
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the temporary archive %s: %v", tmp, err)
	}
	// A Machine without an archive refuses archived tasks.
	if err := fsm.New().Restore(bytes.NewReader(snap)); err == nil {
		t.Fatalf("a Machine without archive restored archived tasks")
	}
}

func TestArchiveCandidates(t *testing.T) {
	h := archiveHarness(t, t.TempDir())
	archiveFixture(h) // 1-6 final, completed at 30-35 s; 7 running
	cases := []struct {
		cutoff time.Time
		keep   int
		limit  int
		want   []int64
	}{
		{time.Time{}, -1, 100, nil},
		{time.Time{}, 4, 100, []int64{1, 2}},
		{at(33), -1, 100, []int64{1, 2, 3}},
		{at(33), 4, 100, []int64{1, 2, 3}},
		{at(40), 0, 2, []int64{1, 2}},
		{time.Time{}, 0, 100, []int64{1, 2, 3, 4, 5, 6}},
	}
	for _, c := range cases {
		got := h.m.ArchiveCandidates(c.cutoff, c.keep, c.limit)
		if len(got) != len(c.want) {
			t.Fatalf("ArchiveCandidates(%v, %d, %d) = %v, want %v", c.cutoff, c.keep, c.limit, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("ArchiveCandidates(%v, %d, %d) = %v, want %v", c.cutoff, c.keep, c.limit, got, c.want)
			}
		}
	}
}

// replaceAfter replaces the first old after mark in b (a copy).
func replaceAfter(b []byte, mark, old, new string) []byte {
	i := bytes.Index(b, []byte(mark))
	if i < 0 {
		return b
	}
	out := append([]byte(nil), b[:i]...)
	return append(out, bytes.Replace(b[i:], []byte(old), []byte(new), 1)...)
}

// BenchmarkApplyArchive2000 measures one ArchiveTasks entry of 2,000
// finished tasks (the leader's batch): encoding, compressing and one
// fsync'd bbolt commit, all under the Machine's lock.
func BenchmarkApplyArchive2000(b *testing.B) {
	h := archiveHarness(b, b.TempDir())
	h.register("n1", 0)
	var next int64 = 1
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		sub := &fsm.SubmitTasks{}
		ends := &fsm.UpdateTasks{}
		ids := fsm.IDList{}
		for range 2000 {
			sub.Tasks = append(sub.Tasks, newTask(next))
			ends.Updates = append(ends.Updates, fsm.UpdateTask{TaskID: next, Status: fsm.StatusCompleted, ExitCode: intp(0), At: at(5)})
			ids = append(ids, next)
			next++
		}
		h.ok(sub)
		h.ok(ends)
		entry := encode(b, &fsm.ArchiveTasks{TaskIDs: ids, At: at(9)})
		h.idx++
		b.StartTimer()
		if r := h.m.Apply(h.idx, entry); r.Err != nil || r.Value.(fsm.ArchiveResult).Moved != 2000 {
			b.Fatalf("archive: %+v", r)
		}
	}
}

// TestArchiveConcurrentReads reads (Task, Tasks, Counts, snapshots) while
// entries archive tasks and a Restore swaps the archive: run with -race.
// Every listing must be one state: no task twice, counts that add up.
func TestArchiveConcurrentReads(t *testing.T) {
	log := archiveLog(t)
	m := fsm.NewWithArchive(openArchive(t, t.TempDir()))
	defer m.Close()
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for r := range 3 {
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				all, _ := m.Tasks(fsm.Filter{}, 0, 0)
				seen := map[int64]bool{}
				for _, tk := range all {
					if seen[tk.TaskID] {
						errs <- fmt.Errorf("reader %d: task %d listed twice", r, tk.TaskID)
						return
					}
					seen[tk.TaskID] = true
				}
				m.Task(int64(1 + i%25))
				m.Tasks(fsm.Filter{Batch: 1001}, 0, 2)
				m.Counts()
				if r == 0 {
					var b bytes.Buffer
					if err := m.Snapshot().Write(&b); err != nil {
						errs <- fmt.Errorf("snapshot: %w", err)
						return
					}
				}
			}
		}()
	}
	for round := range 3 {
		fresh := fsm.NewWithArchive(openArchive(t, t.TempDir()))
		applyLog(t, fresh, log, 0, len(log)/2+round)
		snap := snapshotBytes(t, fresh)
		fresh.Close()
		if err := m.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatal(err)
		}
		applyLog(t, m, log, len(log)/2+round, len(log))
	}
	close(stop)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	checkCounts(t, m)
}

// TestArchiveKeepsUsageAndPendingRetries: usage sums are the same before
// and after tasks move to the archive (accounting survives archival), and
// a failed task whose next attempt is still to come is never archived.
func TestArchiveKeepsUsageAndPendingRetries(t *testing.T) {
	h := archiveHarness(t, t.TempDir())
	archiveFixture(h) // 1-6 final on n1/n2, 7 running
	h.retryTask(8, 2, "n1")
	if !h.task(8).RetryPending() {
		t.Fatal("task 8: no retry pending after its first attempt failed")
	}
	q := fsm.UsageQuery{By: fsm.UsageByNode, Now: at(1000)}
	before, err := h.m.UsageReport(q)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.m.ArchiveCandidates(time.Time{}, 0, 100); len(got) != 6 || slices.Contains(got, 8) {
		t.Fatalf("ArchiveCandidates = %v, want 1-6 (not task 8, whose retry is pending)", got)
	}
	r := h.ok(&fsm.ArchiveTasks{TaskIDs: fsm.IDList{1, 2, 3, 4, 5, 6, 8}, At: at(100)})
	if got := r.Value.(fsm.ArchiveResult).Moved; got != 6 {
		t.Fatalf("moved %d tasks, want 6 (task 8 stays: its retry is pending)", got)
	}
	if _, ok := h.m.Task(8); !ok || !h.task(8).RetryPending() {
		t.Fatal("task 8 left memory with its retry pending")
	}
	after, err := h.m.UsageReport(q)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("usage changed when tasks moved to the archive:\nbefore %+v\nafter  %+v", before, after)
	}
	own, err := h.m.UsageReport(fsm.UsageQuery{Owner: "alice", Now: at(1000)})
	if err != nil {
		t.Fatal(err)
	}
	if len(own) != 1 || own[0].Tasks != 3 { // 1, 3 and 5, all archived
		t.Fatalf("alice's usage after archiving = %+v, want her 3 tasks", own)
	}
}
