package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// countingProposer counts the commands of each type it applies.
type countingProposer struct {
	localProposer
	types []fsm.CommandType
}

func (p *countingProposer) apply(ctx context.Context, c fsm.Command) (any, error) {
	p.mu.Lock()
	p.types = append(p.types, c.Type())
	p.mu.Unlock()
	return p.localProposer.apply(ctx, c)
}

func newTrueTask(id int64, at time.Time) *fsm.Task {
	return &fsm.Task{TaskID: id, TaskType: fsm.TaskCommand, BatchID: id, Command: "true", RequiredCores: 1,
		Status: fsm.StatusPending, ContainerName: "NULL", SubmittedAt: at}
}

// TestLeaderSubmitPlaces: with nothing queued and room on a node, a submit
// commits as one SubmitPlaced entry and /run goes out at once, before any
// scheduling pass; with a task waiting ahead, a submit is a plain
// SubmitTasks and the new task waits its turn; when a replica does not know
// SubmitPlaced yet, the leader never proposes it.
func TestLeaderSubmitPlaces(t *testing.T) {
	x := newLeaderHarness(t)
	p := &countingProposer{localProposer: localProposer{m: x.m}}
	x.l.apply = p.apply
	known := fsm.MaxKnownCommand
	x.l.known = func(c fsm.CommandType) error {
		if c > known {
			return ErrUpgradePending
		}
		return nil
	}
	ran := make(chan struct{}, 8)
	x.runners.run = func(context.Context) error { ran <- struct{}{}; return nil }
	now := x.clock.now()
	x.must(t, &fsm.RegisterNode{Node: &fsm.Node{Hostname: "n1", URL: "http://n1", TotalCores: 2, MemoryTotalBytes: 8 << 30}, At: now})
	// The leader runs (runCtx set) but its loops do not: only submit may
	// send /run in this test.
	x.l.runCtx = context.Background()
	p.types = nil

	sr, err := x.l.submit(context.Background(), &fsm.SubmitTasks{RequestID: "a", Tasks: []*fsm.Task{newTrueTask(1, now)}})
	if err != nil || !slices.Equal(sr.Placed, []int64{1}) {
		t.Fatalf("submit: %+v %v, want task 1 placed", sr, err)
	}
	select {
	case <-ran:
	case <-time.After(20 * time.Second):
		t.Fatal("no /run for the task placed at submit")
	}
	// A retry: the first answer, nothing placed or sent again.
	if sr, err := x.l.submit(context.Background(), &fsm.SubmitTasks{RequestID: "a", Tasks: []*fsm.Task{newTrueTask(2, now)}}); err != nil || !sr.Duplicate || sr.Placed != nil {
		t.Fatalf("retry: %+v %v", sr, err)
	}
	// Task 3 takes the last core; task 4 finds none and waits; task 5
	// queues behind it: neither is proposed with a placement.
	for _, id := range []int64{3, 4, 5} {
		if _, err := x.l.submit(context.Background(), &fsm.SubmitTasks{Tasks: []*fsm.Task{newTrueTask(id, now)}}); err != nil {
			t.Fatal(err)
		}
	}
	if s3, s4, s5 := x.status(t, 3), x.status(t, 4), x.status(t, 5); s3 != fsm.StatusAssigning || s4 != fsm.StatusPending || s5 != fsm.StatusPending {
		t.Fatalf("tasks 3, 4, 5: %s, %s, %s", s3, s4, s5)
	}
	want := []fsm.CommandType{fsm.CmdSubmitPlaced, fsm.CmdSubmitPlaced, fsm.CmdSubmitPlaced, fsm.CmdSubmitTasks, fsm.CmdSubmitTasks}
	if !slices.Equal(p.types, want) {
		t.Fatalf("proposed %v, want %v", p.types, want)
	}

	// A replica that knows only the older commands: plain submits.
	known = fsm.CmdRecord
	x.must(t, &fsm.KillTask{TaskID: 4, At: now})
	x.must(t, &fsm.KillTask{TaskID: 5, At: now})
	x.must(t, &fsm.KillTask{TaskID: 3, At: now})
	p.types = nil
	if sr, err := x.l.submit(context.Background(), &fsm.SubmitTasks{Tasks: []*fsm.Task{newTrueTask(6, now)}}); err != nil || sr.Placed != nil {
		t.Fatalf("submit during an upgrade: %+v %v", sr, err)
	}
	if !slices.Equal(p.types, []fsm.CommandType{fsm.CmdSubmitTasks}) {
		t.Fatalf("proposed %v during an upgrade", p.types)
	}
}

// TestLeaderPassPlacesInOneEntry: the placements of one scheduling pass
// commit as one AssignTasks entry, and each placed task gets its /run.
func TestLeaderPassPlacesInOneEntry(t *testing.T) {
	x := newLeaderHarness(t)
	p := &countingProposer{localProposer: localProposer{m: x.m}}
	x.l.apply = p.apply
	now := x.clock.now()
	x.must(t, &fsm.RegisterNode{Node: &fsm.Node{Hostname: "n1", URL: "http://n1", TotalCores: 3, MemoryTotalBytes: 8 << 30}, At: now})
	var tasks []*fsm.Task
	for id := int64(1); id <= 5; id++ {
		tasks = append(tasks, newTrueTask(id, now))
	}
	x.must(t, &fsm.SubmitTasks{Tasks: tasks})
	p.types = nil
	d := x.l.disp
	x.l.schedulePass(context.Background(), d)
	d.wg.Wait()
	if !slices.Equal(p.types, []fsm.CommandType{fsm.CmdAssignTasks}) {
		t.Fatalf("proposed %v, want one assign_tasks", p.types)
	}
	placed := 0
	for id := int64(1); id <= 5; id++ {
		if x.status(t, id) == fsm.StatusAssigning {
			placed++
		}
	}
	if placed != 3 || x.runners.runs.Load() != 3 {
		t.Fatalf("%d placed, %d /run sent; want 3 and 3", placed, x.runners.runs.Load())
	}
}
