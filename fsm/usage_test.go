package fsm_test

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// usageSetup makes tasks 1..4 running on n1 (16 cores), started at 10 s.
func usageSetup(t *testing.T) *harness {
	h := newHarness(t)
	h.register("n1", 0)
	h.submit(1, 2, 3, 4)
	h.ok(&fsm.AssignTasks{Assign: []fsm.AssignTask{place(1, "n1"), place(2, "n1"), place(3, "n1"), place(4, "n1")}})
	for id := int64(1); id <= 4; id++ {
		h.ok(&fsm.UpdateTask{TaskID: id, Status: fsm.StatusRunning, StartedAt: timep(at(10)), At: at(10)})
	}
	return h
}

// end is a report of task id's end at 20 s with usage u.
func end(id int64, st fsm.Status, code int, u *fsm.Usage) fsm.UpdateTask {
	return fsm.UpdateTask{TaskID: id, Status: st, ExitCode: intp(code), CompletedAt: timep(at(20)), At: at(20), Usage: u}
}

// TestReportTasksRecordsUsage checks that ReportTasks records a valid
// Usage with the end, and that the plain update commands ignore it (an
// old replica, which does not know ReportTasks, holds the same state).
func TestReportTasksRecordsUsage(t *testing.T) {
	u := &fsm.Usage{CPUUserNs: 1_500_000_000, CPUSystemNs: 500_000_000, PeakMemoryBytes: 200 << 20, Source: "cgroup"}
	h := usageSetup(t)
	res := h.ok(&fsm.ReportTasks{Updates: []fsm.UpdateTask{end(1, fsm.StatusCompleted, 0, u)}})
	if errs := res.Value.(fsm.UpdateResults); len(errs) != 1 || errs[0] != nil {
		t.Fatalf("results %v, want one nil", errs)
	}
	got := h.task(1)
	if got.Status != fsm.StatusCompleted || got.Usage == nil || *got.Usage != *u {
		t.Fatalf("task 1: status %s usage %+v, want completed with %+v", got.Status, got.Usage, u)
	}
	if got.Usage.CPUTime() != 2*time.Second {
		t.Errorf("CPUTime %s, want 2s", got.Usage.CPUTime())
	}
	// A retry changes nothing; figures, once recorded, are never replaced.
	h.unchanged(&fsm.ReportTasks{Updates: []fsm.UpdateTask{end(1, fsm.StatusCompleted, 0, &fsm.Usage{CPUUserNs: 1})}})

	// The same report as UpdateTask / UpdateTasks: the status, not the usage.
	for _, c := range []fsm.Command{ptr(end(2, fsm.StatusCompleted, 0, u)), &fsm.UpdateTasks{Updates: []fsm.UpdateTask{end(3, fsm.StatusCompleted, 0, u)}}} {
		h.ok(c)
	}
	for _, id := range []int64{2, 3} {
		if tk := h.task(id); tk.Status != fsm.StatusCompleted || tk.Usage != nil {
			t.Errorf("task %d after a plain update: status %s usage %+v, want completed without usage", id, tk.Status, tk.Usage)
		}
	}
	// A task killed by its user first takes the figures of the runner's
	// report of its end (a conflict for the status, not for the usage).
	h.ok(&fsm.KillTask{TaskID: 4, At: at(15)})
	res = h.ok(&fsm.ReportTasks{Updates: []fsm.UpdateTask{end(4, fsm.StatusFailed, 137, u)}})
	if errs := res.Value.(fsm.UpdateResults); errs[0] != nil {
		t.Fatalf("usage of a killed task: %v", errs[0])
	}
	if tk := h.task(4); tk.Status != fsm.StatusKilled || tk.Usage == nil {
		t.Fatalf("task 4: status %s usage %+v, want killed with usage", tk.Status, tk.Usage)
	}
	// The snapshot carries the figures.
	snap := snapshotBytes(t, h.m)
	m := fsm.New()
	if err := m.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if tk, _ := m.Task(1); tk.Usage == nil || *tk.Usage != *u {
		t.Fatalf("restored task 1 usage %+v, want %+v", tk.Usage, u)
	}
	assertSameState(t, "restore", stateBytes(t, h.m), stateBytes(t, m))

	// The figures are replicated state: the snapshot (and so the state
	// digest, its hash) differs with and without them.
	with, without := usageSetup(t), usageSetup(t)
	with.ok(&fsm.ReportTasks{Updates: []fsm.UpdateTask{end(1, fsm.StatusCompleted, 0, u)}})
	without.ok(&fsm.UpdateTasks{Updates: []fsm.UpdateTask{end(1, fsm.StatusCompleted, 0, u)}})
	if bytes.Equal(snapshotBytes(t, with.m), snapshotBytes(t, without.m)) {
		t.Fatal("the snapshot does not carry the figures")
	}
}

func ptr(u fsm.UpdateTask) *fsm.UpdateTask { return &u }

// TestReportTasksBadUsage checks that figures a runner cannot have
// measured are refused by Check and not recorded by Apply, the status
// being applied as without them.
func TestReportTasksBadUsage(t *testing.T) {
	bad := map[string]fsm.Usage{
		"cpu_user_ns":       {CPUUserNs: -1},
		"cpu_system_ns":     {CPUSystemNs: -5},
		"overflow":          {CPUUserNs: math.MaxInt64, CPUSystemNs: math.MaxInt64},
		"peak_memory_bytes": {PeakMemoryBytes: -1},
		"peak too large":    {PeakMemoryBytes: fsm.MaxPeakMemoryBytes + 1},
		"signal":            {Signal: 99},
		// 10 s on 16 cores is at most 160 s (plus slack).
		"cpu beyond cores": {CPUUserNs: int64(200 * time.Second)},
	}
	for name, u := range bad {
		t.Run(name, func(t *testing.T) {
			if err := u.Check("usage", 10*time.Second, 16); !errors.Is(err, fsm.ErrInvalid) {
				t.Fatalf("Check(%+v) = %v, want ErrInvalid", u, err)
			}
			h := usageSetup(t)
			h.ok(&fsm.ReportTasks{Updates: []fsm.UpdateTask{end(1, fsm.StatusCompleted, 0, &u)}})
			if tk := h.task(1); tk.Status != fsm.StatusCompleted || tk.Usage != nil {
				t.Fatalf("task 1: status %s usage %+v, want completed without usage", tk.Status, tk.Usage)
			}
		})
	}
	ok := fsm.Usage{CPUUserNs: int64(150 * time.Second), PeakMemoryBytes: 1 << 30, Signal: 9}
	if err := ok.Check("usage", 10*time.Second, 16); err != nil {
		t.Fatalf("Check(%+v) = %v, want nil", ok, err)
	}
}

// TestUsageReport checks the sums by user, node, day and in total against
// sums over the tasks, and the time window.
func TestUsageReport(t *testing.T) {
	h := newHarness(t)
	h.register("n1", 0)
	h.register("n2", 0)
	c := &fsm.SubmitTasks{}
	owners := []string{"alice", "bob", "", "alice", "bob", "alice"}
	for i, o := range owners {
		tk := newTask(int64(i + 1))
		tk.Owner = o
		tk.RequiredCores = i + 1
		c.Tasks = append(c.Tasks, tk)
	}
	h.ok(c)
	day := 24 * time.Hour
	for i := range owners {
		id := int64(i + 1)
		node := []string{"n1", "n2"}[i%2]
		var gpus []int
		if i%2 == 0 {
			gpus = []int{0, 1}
		}
		h.ok(&fsm.AssignTask{TaskID: id, Node: node, GPUs: gpus, At: at(1)})
		start := t0.Add(time.Duration(i) * day)
		h.ok(&fsm.UpdateTask{TaskID: id, Status: fsm.StatusRunning, StartedAt: &start, At: start})
		if id == 6 {
			continue // still running
		}
		st := []fsm.Status{fsm.StatusCompleted, fsm.StatusFailed, fsm.StatusKilledOOM, fsm.StatusCompleted, fsm.StatusLost}[i]
		stop := start.Add(time.Duration(i+1) * time.Hour)
		u := &fsm.Usage{CPUUserNs: int64(i+1) * int64(time.Minute), PeakMemoryBytes: int64(i+1) << 20}
		h.ok(&fsm.ReportTasks{Updates: []fsm.UpdateTask{{TaskID: id, Status: st, ExitCode: intp(1), CompletedAt: &stop, At: stop, Usage: u}}})
	}
	now := t0.Add(5*day + 30*time.Minute)
	all, _ := h.m.Tasks(fsm.Filter{}, 0, 0)
	for _, by := range []string{fsm.UsageByUser, fsm.UsageByNode, fsm.UsageByDay, fsm.UsageByTotal} {
		rows, err := h.m.UsageReport(fsm.UsageQuery{By: by, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]*fsm.UsageRow{}
		for _, tk := range all {
			e, _ := fsm.UsageEnd(tk, now)
			key := map[string]string{fsm.UsageByUser: tk.Owner, fsm.UsageByNode: tk.AssignedNode,
				fsm.UsageByDay: e.Format(time.DateOnly), fsm.UsageByTotal: "total"}[by]
			if key == "" {
				key = fsm.UsageNone
			}
			if want[key] == nil {
				want[key] = &fsm.UsageRow{Key: key}
			}
			w, f := want[key], fsm.FiguresOf(tk, now)
			w.Tasks++
			w.CoreHours += f.CoreHours
			w.GPUHours += f.GPUHours
			w.CPUHours += f.CPUHours
			if f.Failed {
				w.Failed++
			}
		}
		if len(rows) != len(want) {
			t.Fatalf("by %q: %d rows %+v, want %d", by, len(rows), rows, len(want))
		}
		for _, r := range rows {
			w := want[r.Key]
			if w == nil || r.Tasks != w.Tasks || r.Failed != w.Failed || !near(r.CoreHours, w.CoreHours) ||
				!near(r.GPUHours, w.GPUHours) || !near(r.CPUHours, w.CPUHours) {
				t.Errorf("by %q: row %+v, want %+v", by, r, w)
			}
		}
	}
	// Hand-checked: alice has tasks 1 (1 core, 1 h, 2 GPUs), 4 (4 cores,
	// 4 h) and 6 (6 cores, running 30 min at now).
	rows, _ := h.m.UsageReport(fsm.UsageQuery{By: fsm.UsageByUser, Owner: "alice", Now: now})
	if len(rows) != 1 || rows[0].Key != "alice" || rows[0].Tasks != 3 || !near(rows[0].CoreHours, 1+16+3) ||
		!near(rows[0].GPUHours, 2) || rows[0].Running != 1 || rows[0].Completed != 2 || rows[0].MaxPeakMemoryBytes != 4<<20 {
		t.Fatalf("alice: %+v", rows)
	}
	// The window is on the end: [day 1, day 3) holds tasks 2 and 3.
	rows, _ = h.m.UsageReport(fsm.UsageQuery{Since: t0.Add(day), Until: t0.Add(3 * day), Now: now})
	if len(rows) != 1 || rows[0].Tasks != 2 || rows[0].Failed != 2 {
		t.Fatalf("window: %+v", rows)
	}
	if _, err := h.m.UsageReport(fsm.UsageQuery{By: "week"}); !errors.Is(err, fsm.ErrInvalid) {
		t.Fatalf("by week: %v, want ErrInvalid", err)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*max(1, math.Abs(b)) }
