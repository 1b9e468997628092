package cluster

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// blockingKills is a runner whose /kill answers only when its context ends.
type blockingKills struct {
	fakeRunners
	reached  chan struct{}
	returned atomic.Bool
}

func (b *blockingKills) Kill(ctx context.Context, _ string, _ api.TaskRef) error {
	b.kills.Add(1)
	b.reached <- struct{}{}
	<-ctx.Done()
	b.returned.Store(true)
	return ctx.Err()
}

// TestLeaderUserKillEndsWithTheTerm: a user's kill is sent by the leader,
// in a goroutine of its own: stop cancels the call and waits for it; a
// leader that has stopped sends nothing (the next heartbeat's kill list
// covers the task).
func TestLeaderUserKillEndsWithTheTerm(t *testing.T) {
	x := newLeaderHarness(t)
	r := &blockingKills{reached: make(chan struct{}, 1)}
	x.l.runners = r
	x.runningTask(t)
	x.must(t, &fsm.KillTask{TaskID: 7, Message: "Killed by user.", At: x.clock.now()})
	tk, _ := x.m.Task(7)
	x.l.start(context.Background())
	x.l.killOnRunner(tk)
	select {
	case <-r.reached:
	case <-time.After(20 * time.Second):
		x.l.stop()
		t.Fatal("no /kill sent")
	}
	x.l.stop()
	if !r.returned.Load() {
		t.Fatal("stop returned while the user's /kill call was still in flight")
	}
	x.l.killOnRunner(tk)
	if k := r.kills.Load(); k != 1 {
		t.Fatalf("runner got %d kill calls, want 1 (none after stop)", k)
	}
}
