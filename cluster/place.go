package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// submit commits a submit on the leader. When nothing waits in the queue
// and a node fits, the same entry places the new tasks (fsm.SubmitPlaced),
// and their /run starts as soon as it commits: submission and placement
// cost one fsync round instead of two. Whatever is not placed waits for the
// scheduler, which is kicked. A submit too large for one entry is
// committed in parts (submitParts).
func (l *leader) submit(ctx context.Context, c *fsm.SubmitTasks) (fsm.SubmitResult, error) {
	if done := l.splitSubmit(c); done != nil {
		return l.submitParts(ctx, c, done)
	}
	var cmd fsm.Command = c
	if place := l.placeAtSubmit(c.Tasks); len(place) > 0 {
		cmd = &fsm.SubmitPlaced{SubmitTasks: *c, Place: place}
	}
	v, err := l.apply(ctx, cmd)
	if err != nil {
		return fsm.SubmitResult{}, err
	}
	sr, _ := v.(fsm.SubmitResult)
	if len(sr.Placed) > 0 {
		for range sr.Placed {
			l.placed()
		}
		l.dispatchPlaced(sr.Placed)
	}
	if len(sr.Placed) < len(sr.TaskIDs) {
		l.kickScheduler()
	}
	return sr, nil
}

// placeAtSubmit returns the scheduler's placements of new tasks (not yet
// committed) when nothing is pending ahead of them, or nil. Apply checks
// them again against the state at the entry (fsm.SubmitPlaced).
func (l *leader) placeAtSubmit(tasks []*fsm.Task) []fsm.AssignTask {
	if l.known(fsm.CmdSubmitPlaced) != nil || l.state.Counts()[fsm.StatusPending] > 0 {
		return nil
	}
	fresh := make(map[int64]bool, len(tasks))
	for _, t := range tasks {
		if t.Status != fsm.StatusPending || len(t.After) > 0 {
			return nil // dependencies are the scheduler's
		}
		fresh[t.TaskID] = true
	}
	res := scheduler.Plan(scheduler.View{Nodes: l.state.Nodes(), Active: append(l.state.Active(), tasks...),
		Lookup: l.state.Task, Quotas: scheduler.NewQuotas(l.state.Users(), l.state.Groups())})
	now := l.now().UTC()
	var out []fsm.AssignTask
	for _, p := range res.Placements {
		if fresh[p.TaskID] {
			out = append(out, fsm.AssignTask{TaskID: p.TaskID, Node: p.Node, GPUs: p.GPUs, NUMA: p.NUMA, At: now})
		}
	}
	return out
}

// assignAll commits the placements of one pass in one entry
// (fsm.AssignTasks); it reports whether every one was applied.
func (l *leader) assignAll(ctx context.Context, ps []scheduler.Placement, now time.Time) bool {
	c := &fsm.AssignTasks{Assign: make([]fsm.AssignTask, len(ps))}
	for i, p := range ps {
		c.Assign[i] = fsm.AssignTask{TaskID: p.TaskID, Node: p.Node, GPUs: p.GPUs, NUMA: p.NUMA, At: now}
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := l.apply(actx, c)
	if err != nil {
		if errors.Is(err, ErrNotLeader) || ctx.Err() != nil {
			l.log.Info("placements not committed: leadership ended", "placements", len(ps), "err", err)
		} else {
			l.log.Warn("commit placements", "placements", len(ps), "err", err)
		}
		return false
	}
	ok := true
	for i, err := range v.(fsm.AssignResults) {
		if err != nil {
			l.log.Warn("commit placement", "task_id", ps[i].TaskID, "node", ps[i].Node, "err", err)
			ok = false
			continue
		}
		l.placed()
	}
	return ok
}

// dispatchPlaced sends /run for tasks placed at submit right away, without
// waiting for a scheduling pass. A leader that is stopping sends nothing:
// the next leader's pass sends /run for every assigning task.
func (l *leader) dispatchPlaced(ids []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || l.runCtx == nil {
		return
	}
	now := l.now().UTC()
	for _, id := range ids {
		t, ok := l.state.Task(id)
		if !ok || t.Status != fsm.StatusAssigning {
			continue
		}
		node, ok := l.state.Node(t.AssignedNode)
		if !ok || node.Status != fsm.NodeOnline || !l.disp.claim(id, now) {
			continue
		}
		ctx := l.runCtx
		l.goRun(func() {
			defer l.disp.done(id)
			l.dispatch(ctx, node, t)
		})
	}
}
