package scheduler_test

import (
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// TestPlanHoldsRetryUntilNotBefore: a retried task is not placed before its
// NotBefore (it waits as retry_delay and WakeAt names the time), and is
// placed from then on; a dependant of a task whose retry is due waits.
func TestPlanHoldsRetryUntilNotBefore(t *testing.T) {
	nb := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	retried := pending(1, 1, 1, func(t *fsm.Task) { t.Retries, t.Attempt, t.NotBefore = 2, 2, &nb })
	ended := finished(2, fsm.StatusFailed)
	started := nb.Add(-time.Minute)
	ended.Retries, ended.RetryOn, ended.Attempt, ended.StartedAt = 1, fsm.DefaultRetryOn(), 1, &started
	dependant := pending(3, 1, 1, after(2))
	lookup := func(id int64) (*fsm.Task, bool) {
		if id == 2 {
			return ended, true
		}
		return nil, false
	}
	v := scheduler.View{Nodes: []*fsm.Node{node("n1", 8, 16)}, Active: []*fsm.Task{retried, dependant}, Lookup: lookup, Now: nb.Add(-time.Second)}
	res := scheduler.Plan(v)
	if len(res.Placements) != 0 || !res.WakeAt.Equal(nb) {
		t.Fatalf("before NotBefore: placements %+v, WakeAt %s; want none, %s", res.Placements, res.WakeAt, nb)
	}
	kinds := map[int64]string{}
	for _, d := range res.Waiting {
		kinds[d.TaskID] = d.Kind
	}
	if kinds[1] != scheduler.WaitRetryDelay || kinds[3] != scheduler.WaitDependency || len(res.Failed) != 0 {
		t.Fatalf("waiting %+v failed %+v; want task 1 retry_delay, task 3 dependency", res.Waiting, res.Failed)
	}
	v.Now = nb
	if res := scheduler.Plan(v); len(res.Placements) != 1 || res.Placements[0].TaskID != 1 || !res.WakeAt.IsZero() {
		t.Fatalf("at NotBefore: %+v, want task 1 placed", res)
	}
}
