package runner

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// countingExecutor lists one running task and counts its listings.
type countingExecutor struct {
	executor.Executor
	id    int64
	lists atomic.Int64
}

func (c *countingExecutor) List(context.Context) ([]executor.State, error) {
	c.lists.Add(1)
	return []executor.State{{TaskID: c.id, Running: true}}, nil
}

// TestStatesForListsOnlyWhatChanged checks that a listing for one executor
// (a native start or end) uses the other's recent listing, and lists it
// afresh once it is marked changed or every executor is asked for.
func TestStatesForListsOnlyWhatChanged(t *testing.T) {
	nat, dock := &countingExecutor{id: 1}, &countingExecutor{id: 2}
	a := &Agent{cfg: Config{Native: nat, Docker: dock}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), kick: make(chan struct{}, 1)}
	// A listing stays recent for the whole test, however slow the machine.
	a.lists = listings{last: map[executor.Executor]listing{}, dirty: map[executor.Executor]bool{}, maxAge: time.Hour}
	ctx := context.Background()
	if states, _, complete := a.allStates(ctx); len(states) != 2 || !complete {
		t.Fatalf("allStates = %v (complete %v), want both tasks", states, complete)
	}
	states, owner, complete := a.statesFor(ctx, nat)
	if len(states) != 2 || !complete || owner[2] != dock {
		t.Fatalf("statesFor = %v (complete %v), want both tasks", states, complete)
	}
	if n, m := nat.lists.Load(), dock.lists.Load(); n != 2 || m != 1 {
		t.Fatalf("listings: native %d, docker %d; want 2 and 1 (docker's reused)", n, m)
	}
	a.kickFor(dock)
	a.statesFor(ctx, nil)
	if m := dock.lists.Load(); m != 2 {
		t.Fatalf("docker listed %d times after it changed, want 2", m)
	}
	a.allStates(ctx)
	if m := dock.lists.Load(); m != 3 {
		t.Fatalf("docker listed %d times after allStates, want 3", m)
	}
}

// gatedExecutor lists what its tasks hold when the listing began, and
// holds the answer until release is closed (for the first listing only).
type gatedExecutor struct {
	executor.Executor
	tasks   atomic.Pointer[[]executor.State]
	started chan struct{}
	release chan struct{}
	calls   atomic.Int64
}

func (g *gatedExecutor) List(context.Context) ([]executor.State, error) {
	list := *g.tasks.Load()
	if g.calls.Add(1) == 1 {
		close(g.started)
		<-g.release
	}
	return list, nil
}

// TestOverlappingListingsKeepTheNewest: a listing that began before a task
// was forgotten and ends after a newer listing must not replace it (the
// watch loop would report the forgotten task's end again and forget it a
// second time: "forget task: unknown task", TestHealthyLoadIsQuiet).
func TestOverlappingListingsKeepTheNewest(t *testing.T) {
	g := &gatedExecutor{started: make(chan struct{}), release: make(chan struct{})}
	ended := []executor.State{{TaskID: 7, Exit: &executor.Exit{}}}
	g.tasks.Store(&ended)
	a := &Agent{cfg: Config{Native: g}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), kick: make(chan struct{}, 1)}
	a.lists = listings{last: map[executor.Executor]listing{}, dirty: map[executor.Executor]bool{}, maxAge: time.Hour}
	ctx := context.Background()
	old := make(chan struct{})
	go func() {
		defer close(old)
		a.listFresh(ctx, g) //nolint:errcheck // gatedExecutor never fails
	}()
	<-g.started
	none := []executor.State{}
	g.tasks.Store(&none) // the task is forgotten
	a.markChanged(g)
	if states, _, _ := a.statesFor(ctx, nil); len(states) != 0 {
		t.Fatalf("fresh listing after the forget = %v, want none", states)
	}
	close(g.release)
	<-old
	if list, ok := a.cachedList(g); !ok || len(list) != 0 {
		t.Fatalf("kept listing = %v (usable %v): the older listing, which still shows the forgotten task, replaced the newer", list, ok)
	}
}
