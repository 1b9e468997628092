package scheduler

import "github.com/hakuriver/hakuriver-ha/fsm"

// MissingHeartbeats is how many consecutive full heartbeats may omit a task
// the FSM believes running or paused on a runner before the task is lost.
const MissingHeartbeats = 2

// Report is what one runner heartbeat says the runner runs.
type Report struct {
	// Running lists the task IDs the runner runs.
	Running []int64
	// Partial marks an incomplete list (the runner could not enumerate
	// every task): it proves nothing missing and nothing to kill.
	Partial bool
}

// Reconciliation is what Reconcile decided for one heartbeat.
type Reconciliation struct {
	// Kill lists reported tasks the runner must kill: unknown, finished or
	// assigned to another node.
	Kill []int64
	// Lost lists tasks the FSM believes running or paused on the node that
	// the runner has now omitted MissingHeartbeats times in a row.
	Lost []int64
	// Missing is the node's counters to keep for its next heartbeat: per
	// task, how many consecutive full heartbeats omitted it.
	Missing map[int64]int
}

// Reconcile compares a runner's report with the FSM (DESIGN invariant 5).
// active holds the tasks not in a final status (all of them, or at least
// those assigned to node); a reported task not among them assigned to node
// is killed. missing is the node's counters from the previous heartbeat
// (nil for none); Reconcile does not change it and returns the next ones.
// A partial report changes nothing: no kills, no counting. Tasks still
// assigning are never lost here (the leader re-dispatches them).
func Reconcile(node string, active []*fsm.Task, report Report, missing map[int64]int) Reconciliation {
	if report.Partial {
		return Reconciliation{Missing: missing}
	}
	here := make(map[int64]*fsm.Task)
	for _, t := range active {
		if t.AssignedNode == node {
			here[t.TaskID] = t
		}
	}
	var r Reconciliation
	reported := make(map[int64]bool, len(report.Running))
	for _, id := range report.Running {
		reported[id] = true
		if _, ok := here[id]; !ok {
			r.Kill = append(r.Kill, id)
		}
	}
	r.Missing = map[int64]int{}
	for _, t := range active {
		if t.AssignedNode != node || t.Status != fsm.StatusRunning && t.Status != fsm.StatusPaused || reported[t.TaskID] {
			continue
		}
		n := missing[t.TaskID] + 1
		r.Missing[t.TaskID] = n
		if n >= MissingHeartbeats {
			r.Lost = append(r.Lost, t.TaskID)
		}
	}
	return r
}
