package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestLeaderLivenessIgnoresWallClockSteps: the leader measures a runner's
// silence on the monotonic clock, so a step of its wall clock by minutes
// (NTP, or the chaos tests' skewed replica) neither marks a heartbeating
// runner offline and its tasks lost (forwards) nor keeps a silent one
// online (backwards). Before, silence was wall-clock time minus the wall
// clock of the last heartbeat: a +5 min step lost every running task.
func TestLeaderLivenessIgnoresWallClockSteps(t *testing.T) {
	for _, step := range []time.Duration{5 * time.Minute, -5 * time.Minute} {
		t.Run(step.String(), func(t *testing.T) {
			x := newLeaderHarness(t)
			wall := &fakeClock{t: x.clock.now()}
			x.l.now = wall.now // x.clock stays the monotonic clock
			x.runningTask(t)
			ctx := context.Background()
			node := func() fsm.NodeStatus { n, _ := x.m.Node("n1"); return n.Status }
			n, _ := x.m.Node("n1")
			if _, err := x.l.heartbeat(ctx, n, api.HeartbeatRequest{RunningTasks: []int64{7}}, wall.now()); err != nil {
				t.Fatal(err)
			}
			wall.advance(step)
			x.clock.advance(time.Second)
			x.l.checkLiveness(ctx, wall.now())
			if node() != fsm.NodeOnline {
				t.Fatalf("node %s one second after a heartbeat, wall clock stepped by %s: want online", node(), step)
			}
			if s := x.status(t, 7); s != fsm.StatusRunning {
				t.Fatalf("task is %s after a wall-clock step of %s, want running", s, step)
			}
			x.clock.advance(2*time.Second + time.Millisecond) // past the 3 s timeout
			x.l.checkLiveness(ctx, wall.now())
			if node() != fsm.NodeOffline {
				t.Fatalf("node %s after 3 s of silence, wall clock stepped by %s: want offline", node(), step)
			}
		})
	}
}
