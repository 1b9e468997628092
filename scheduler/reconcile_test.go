package scheduler_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// TestReconcile covers DESIGN invariant 5 for one heartbeat of runner "r":
// what the runner must kill, what is now lost, and the counters it keeps.
func TestReconcile(t *testing.T) {
	active := []*fsm.Task{
		on(1, "r", 1, 0),
		on(2, "r", 1, 0, status(fsm.StatusPaused)),
		on(3, "r", 1, 0, status(fsm.StatusAssigning)),
		on(4, "other", 1, 0),
		pending(5, 1, 0),
	}
	for _, c := range []struct {
		name        string
		active      []*fsm.Task // nil: the tasks above
		report      scheduler.Report
		missing     map[int64]int
		kill, lost  []int64
		wantMissing map[int64]int
	}{
		{name: "all reported", report: scheduler.Report{Running: []int64{1, 2, 3}}, wantMissing: map[int64]int{}},
		{name: "assigning not yet reported is not counted", report: scheduler.Report{Running: []int64{1, 2}}, wantMissing: map[int64]int{}},
		{name: "unknown task is killed", report: scheduler.Report{Running: []int64{1, 2, 99}}, kill: []int64{99}, wantMissing: map[int64]int{}},
		{name: "final task is killed (not active)", report: scheduler.Report{Running: []int64{1, 2, 6}}, kill: []int64{6}, wantMissing: map[int64]int{}},
		{name: "task assigned elsewhere is killed", report: scheduler.Report{Running: []int64{1, 2, 4}}, kill: []int64{4}, wantMissing: map[int64]int{}},
		{name: "pending task is killed", report: scheduler.Report{Running: []int64{1, 2, 5}}, kill: []int64{5}, wantMissing: map[int64]int{}},
		{name: "missing once", report: scheduler.Report{Running: []int64{2}}, wantMissing: map[int64]int{1: 1}},
		{name: "missing twice is lost", report: scheduler.Report{Running: []int64{2}}, missing: map[int64]int{1: 1}, lost: []int64{1}, wantMissing: map[int64]int{1: 2}},
		{name: "still missing after lost stays lost", report: scheduler.Report{Running: []int64{2}}, missing: map[int64]int{1: 2}, lost: []int64{1}, wantMissing: map[int64]int{1: 3}},
		{name: "reappearing resets the counter", report: scheduler.Report{Running: []int64{1, 2}}, missing: map[int64]int{1: 1}, wantMissing: map[int64]int{}},
		{name: "paused tasks count", report: scheduler.Report{Running: []int64{1}}, missing: map[int64]int{2: 1}, lost: []int64{2}, wantMissing: map[int64]int{2: 2}},
		{name: "empty report: both counted, assigning never", report: scheduler.Report{}, wantMissing: map[int64]int{1: 1, 2: 1}},
		{name: "counters of finished tasks are dropped", report: scheduler.Report{Running: []int64{1, 2}}, missing: map[int64]int{7: 1}, wantMissing: map[int64]int{}},
		{
			name: "partial report changes nothing", report: scheduler.Report{Running: []int64{99, 4}, Partial: true},
			missing: map[int64]int{1: 1}, wantMissing: map[int64]int{1: 1},
		},
		{
			name: "subset of active for the node", active: []*fsm.Task{on(1, "r", 1, 0)},
			report: scheduler.Report{Running: []int64{4}}, missing: map[int64]int{1: 1},
			kill: []int64{4}, lost: []int64{1}, wantMissing: map[int64]int{1: 2},
		},
		{name: "no tasks, nothing reported", active: []*fsm.Task{}, wantMissing: map[int64]int{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			act := c.active
			if act == nil {
				act = active
			}
			before := maps.Clone(c.missing)
			r := scheduler.Reconcile("r", act, c.report, c.missing)
			if !slices.Equal(r.Kill, c.kill) {
				t.Errorf("kill = %v, want %v", r.Kill, c.kill)
			}
			if !slices.Equal(r.Lost, c.lost) {
				t.Errorf("lost = %v, want %v", r.Lost, c.lost)
			}
			if !maps.Equal(r.Missing, c.wantMissing) {
				t.Errorf("missing = %v, want %v", r.Missing, c.wantMissing)
			}
			if !maps.Equal(c.missing, before) {
				t.Errorf("Reconcile changed its input counters: %v, was %v", c.missing, before)
			}
		})
	}
}

// TestReconcileSequence runs heartbeats in turn, carrying the counters as
// the leader does: a task is lost on the second consecutive full omission,
// a partial heartbeat in between neither counts nor resets.
func TestReconcileSequence(t *testing.T) {
	active := []*fsm.Task{on(1, "r", 1, 0), on(2, "r", 1, 0)}
	var missing map[int64]int
	steps := []struct {
		report scheduler.Report
		lost   []int64
	}{
		{scheduler.Report{Running: []int64{2}}, nil},
		{scheduler.Report{Partial: true}, nil},
		{scheduler.Report{Running: []int64{1, 2}}, nil}, // 1 back: reset
		{scheduler.Report{Running: []int64{2}}, nil},
		{scheduler.Report{Running: []int64{}, Partial: true}, nil},
		{scheduler.Report{Running: []int64{2}}, []int64{1}},
	}
	for i, s := range steps {
		r := scheduler.Reconcile("r", active, s.report, missing)
		if !slices.Equal(r.Lost, s.lost) {
			t.Fatalf("step %d: lost = %v, want %v", i, r.Lost, s.lost)
		}
		missing = r.Missing
	}
}
