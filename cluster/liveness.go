package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// livenessLoop marks runners offline after heartbeat_interval ×
// heartbeat_timeout_factor of silence (their unfinished tasks become lost in
// the same entry), enforces time limits and samples health once a second.
func (l *leader) livenessLoop(ctx context.Context) {
	tick := time.NewTicker(l.livenessTick)
	defer tick.Stop()
	lastSample := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := l.now().UTC()
		l.checkLiveness(ctx, now)
		if now.Sub(lastSample) >= time.Second {
			lastSample = now
			l.sampleHealth(now)
		}
	}
}

// checkLiveness is one pass of the liveness loop at now: silent runners go
// offline, tasks past their time limit are killed.
func (l *leader) checkLiveness(ctx context.Context, now time.Time) {
	for _, n := range l.state.Nodes() {
		if n.Status != fsm.NodeOnline || l.mono().Sub(l.live.lastSeen(n.Hostname)) <= l.heartbeatTimeout {
			continue
		}
		l.log.Warn("runner went offline (heartbeat timeout)", "runner", n.Hostname, "timeout", l.heartbeatTimeout)
		l.applyLogged(ctx, &fsm.SetNodeStatus{Hostname: n.Hostname, Status: fsm.NodeOffline, At: now})
	}
	l.enforceTimeLimits(ctx, now)
}

// enforceTimeLimits kills running tasks past their time limit.
func (l *leader) enforceTimeLimits(ctx context.Context, now time.Time) {
	for _, t := range l.state.Active() {
		if t.TimeLimitSeconds <= 0 || t.StartedAt == nil || (t.Status != fsm.StatusRunning && t.Status != fsm.StatusPaused) {
			continue
		}
		limit := time.Duration(t.TimeLimitSeconds) * time.Second
		if now.Sub(*t.StartedAt) < limit {
			continue
		}
		l.log.Info("killing task past its time limit", "task_id", t.TaskID, "limit", limit)
		msg := fmt.Sprintf("Killed: time limit (%s) exceeded.", limit)
		l.applyLogged(ctx, &fsm.KillTask{TaskID: t.TaskID, Message: msg, At: now})
		l.notifyKill(ctx, t)
	}
}

// notifyKill tells the task's runner to kill it, in the background (a
// goroutine of the leader's). If the runner cannot be reached, or this
// leader stops first, the next heartbeat that still lists the task gets it
// in its kill list (invariant 5).
func (l *leader) notifyKill(ctx context.Context, t *fsm.Task) {
	node, ok := l.state.Node(t.AssignedNode)
	if !ok || node.Status != fsm.NodeOnline {
		return
	}
	l.goRun(func() {
		kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ref := api.TaskRef{TaskID: t.TaskID, UnitName: t.SystemdUnitName}
		err := l.runners.Kill(kctx, node.URL, ref)
		var ae *api.APIError
		switch {
		case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
			// The runner tracks it no more: it ended and its end was
			// reported meanwhile. Nothing is left to kill.
			l.log.Debug("kill on runner: the task is not tracked there", "task_id", t.TaskID, "runner", node.Hostname)
		case err != nil:
			l.log.Warn("kill on runner; the next heartbeat will retry", "task_id", t.TaskID, "runner", node.Hostname, "err", err)
		}
	})
}

// killOnRunner tells the runner of a task a user killed (the kill is
// committed) to kill it, in the background, as notifyKill does for the
// leader's own kills: the call is the leader's, bounded by its term. A
// leader not started, or stopping, sends nothing; the next heartbeat's kill
// list covers it.
func (l *leader) killOnRunner(t *fsm.Task) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || l.runCtx == nil {
		l.log.Info("kill left to the next heartbeat: leadership is ending", "task_id", t.TaskID)
		return
	}
	l.notifyKill(l.runCtx, t)
}

// registered records a runner's registration (committed by the caller) as
// its first heartbeat and asks for a scheduling pass.
func (l *leader) registered(name string, now time.Time) {
	l.live.heartbeat(name, api.HeartbeatRequest{}, now, l.mono())
	l.kickScheduler()
}

// heartbeat keeps a runner's live figures in memory only; it writes to the
// log only for a real state change (node back online, a task lost or killed
// on the runner). It returns the tasks the runner must kill.
func (l *leader) heartbeat(ctx context.Context, node *fsm.Node, hb api.HeartbeatRequest, now time.Time) ([]int64, error) {
	name := node.Hostname
	ln := l.live.heartbeat(name, hb, now, l.mono())
	if node.Status != fsm.NodeOnline {
		if _, err := l.apply(ctx, &fsm.SetNodeStatus{Hostname: name, Status: fsm.NodeOnline, At: now}); err != nil {
			return nil, err
		}
		l.log.Info("runner back online", "runner", name)
		l.kickScheduler()
	}
	for _, k := range hb.KilledTasks {
		t, ok := l.state.Task(k.TaskID)
		if !ok || t.Status.Final() {
			continue
		}
		status, code, msg := fsm.StatusFailed, -9, "Killed by runner: "+k.Reason
		if k.Reason == "oom" {
			status = fsm.StatusKilledOOM
		}
		l.applyLogged(ctx, &fsm.UpdateTask{TaskID: k.TaskID, Attempt: t.Attempt, Status: status, ExitCode: &code, Message: &msg, At: now})
	}
	// Reconciliation (invariant 5): kill what the FSM does not place here,
	// lose what the runner keeps omitting.
	active := l.state.Active()
	var rec scheduler.Reconciliation
	l.live.reconcile(ln, func(missing map[int64]int) map[int64]int {
		rec = scheduler.Reconcile(name, active, scheduler.Report{Running: hb.RunningTasks, Partial: hb.Partial}, missing)
		return rec.Missing
	})
	for _, id := range rec.Lost {
		code, msg := -1, fmt.Sprintf("Runner %s no longer reports this task.", name)
		l.log.Warn("task lost: runner no longer reports it", "task_id", id, "runner", name)
		l.applyLogged(ctx, &fsm.UpdateTask{TaskID: id, Attempt: attemptOf(l.state, id), Status: fsm.StatusLost, ExitCode: &code, Message: &msg, At: now})
	}
	return append(rec.Kill, staleAttempts(name, hb, l.state)...), nil
}

// staleAttempts lists the tasks a runner reports running at an attempt
// other than the committed one, though placed on it: an earlier attempt,
// lost with its runner and retried here, that still runs. The runner
// refuses the current attempt until it ends, so it is killed.
func staleAttempts(node string, hb api.HeartbeatRequest, state *fsm.Machine) []int64 {
	var out []int64
	for id, attempt := range hb.Attempts {
		t, ok := state.Task(id)
		if !ok || t.Status.Final() || t.AssignedNode != node || max(1, attempt) == t.CurrentAttempt() {
			continue
		}
		out = append(out, id)
	}
	return out
}
