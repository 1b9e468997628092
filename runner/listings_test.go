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
	a.lists = listings{last: map[executor.Executor]listing{}, dirty: map[executor.Executor]bool{}}
	ctx := context.Background()
	begin := time.Now()
	if states, _, complete := a.allStates(ctx); len(states) != 2 || !complete {
		t.Fatalf("allStates = %v (complete %v), want both tasks", states, complete)
	}
	states, owner, complete := a.statesFor(ctx, nat)
	if time.Since(begin) > listingMaxAge {
		t.Skip("the machine is too slow for the Docker listing to count as recent")
	}
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
