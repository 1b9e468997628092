package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// redriveAfter is how long an assigning task waits after a dispatch attempt
// before the leader sends /run again (it is idempotent on the runner).
const redriveAfter = 3 * time.Second

// runRequest turns a committed task into the runner's /run body, with the
// cluster's ID and its environment's recorded tarball.
func (l *leader) runRequest(t *fsm.Task) api.RunRequest {
	r := runRequest(t)
	r.ClusterID = l.state.ClusterID()
	if r.DockerImageName != "" {
		if tb, ok := l.state.Tarball(t.ContainerName); ok {
			r.EnvTarball = &api.EnvTarball{Version: tb.Version, SHA256: tb.SHA256, Size: tb.Size}
		}
	}
	return r
}

// runRequest turns a committed task into the runner's /run body.
func runRequest(t *fsm.Task) api.RunRequest {
	image := ""
	if !environment.IsNative(t.ContainerName) && t.ContainerName != "" {
		image = environment.ImageName(t.ContainerName)
	}
	env := make(map[string]string, len(t.EnvVars)+2)
	for k, v := range t.EnvVars {
		env[k] = v
	}
	env["HAKURIVER_TASK_ID"] = fmt.Sprint(t.TaskID)
	if t.BatchID != 0 {
		env["HAKURIVER_BATCH_ID"] = fmt.Sprint(t.BatchID)
	}
	if t.ArrayIndex != nil {
		env["HAKURIVER_ARRAY_INDEX"] = fmt.Sprint(*t.ArrayIndex)
	}
	if t.Attempt > 0 {
		env["HAKURIVER_ATTEMPT"] = fmt.Sprint(t.Attempt)
	}
	return api.RunRequest{
		TaskID: t.TaskID, TaskType: string(t.TaskType), Command: t.Command, Arguments: t.Arguments,
		EnvVars: env, WorkDir: t.WorkDir, RequiredCores: t.RequiredCores, RequiredGPUs: t.RequiredGPUs,
		RequiredMemoryBytes: t.RequiredMemoryBytes, TargetNUMANodeID: t.TargetNUMANodeID,
		StdoutPath: t.StdoutPath, StderrPath: t.StderrPath, ContainerName: t.ContainerName,
		DockerImageName: image, DockerPrivileged: t.Privileged, DockerMounts: t.AdditionalMounts, BatchID: t.BatchID,
		RunAs: t.RunAs, AllowRoot: t.AllowRoot, Restart: t.Restarting, Attempt: t.Attempt,
	}
}

// dispatcher tracks the leader's in-flight /run calls.
type dispatcher struct {
	mu       sync.Mutex
	attempts map[int64]time.Time
	// tries is the task attempt each entry of attempts was for.
	tries map[int64]int
	// inflight holds tasks whose /run call has not returned yet: a task is
	// never sent twice at once (an image load may take minutes).
	inflight map[int64]bool
	// planned is the applied index the last Plan saw: placements depend on
	// committed state only, so an unchanged index needs no new Plan.
	planned uint64
	// wakeAt is when the last Plan's first retry delay ends (zero: none
	// waits): Plan runs again then, though nothing was committed.
	wakeAt time.Time
	wg     sync.WaitGroup
}

func newDispatcher() *dispatcher {
	return &dispatcher{attempts: map[int64]time.Time{}, tries: map[int64]int{}, inflight: map[int64]bool{}}
}

// claim reports whether task id is due for a /run at now (never sent, or
// last sent more than redriveAfter ago, and none in flight) and, if so,
// marks it in flight until done.
func (d *dispatcher) claim(id int64, now time.Time) bool { return d.claimAttempt(id, 1, now) }

// claimAttempt is claim for a given attempt of the task: a /run of an
// earlier attempt does not delay the first /run of the next one.
func (d *dispatcher) claimAttempt(id int64, attempt int, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	attempt = max(1, attempt)
	last, seen := d.attempts[id]
	if seen && d.tries[id] != attempt {
		seen = false
	}
	if seen && now.Sub(last) <= redriveAfter || d.inflight[id] {
		return false
	}
	d.attempts[id] = now
	d.tries[id] = attempt
	d.inflight[id] = true
	return true
}

// done ends the /run call of a claimed task.
func (d *dispatcher) done(id int64) {
	d.mu.Lock()
	delete(d.inflight, id)
	d.mu.Unlock()
}

// scheduleLoop is the leader's placement and dispatch loop: it commits
// placements for pending tasks and (re-)sends /run for assigning ones,
// including those a previous leader left behind.
func (l *leader) scheduleLoop(ctx context.Context) {
	d := l.disp
	defer d.wg.Wait()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		last := time.Now()
		l.schedulePass(ctx, d)
		took := time.Since(last)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-l.kick:
			// Under a stream of submits, coalesce kicks: at most one pass
			// per minPassInterval, so a pass never runs per request, and
			// never more often than passGap allows, so that a long queue
			// (a pass is O(active tasks)) does not take the leader's CPU
			// from the submits that fill it.
			if wait := passGap(took) - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
	}
}

// minPassInterval is the shortest time between two kicked scheduling passes.
const minPassInterval = 10 * time.Millisecond

// passSlowdown bounds the share of a core kicked scheduling passes take to
// 1/passSlowdown: after a pass that took d, the next kicked one starts no
// sooner than passSlowdown*d after it began.
const passSlowdown = 5

// passGap is the shortest time from the start of a pass that took took to
// the start of the next kicked one.
func passGap(took time.Duration) time.Duration {
	return max(minPassInterval, took*passSlowdown)
}

func (l *leader) schedulePass(ctx context.Context, d *dispatcher) {
	now := l.now().UTC()
	if !d.wakeAt.IsZero() && !now.Before(d.wakeAt) {
		d.planned, d.wakeAt = 0, time.Time{} // a retry delay ended: plan again
	}
	if idx := l.state.AppliedIndex(); idx != d.planned {
		d.planned = idx
		ok := true
		defer func() {
			if !ok {
				d.planned = 0 // something did not commit: plan again next pass
			}
		}()
		ok = l.retryEnded(ctx, now) && ok
		res := scheduler.Plan(scheduler.View{Nodes: l.state.Nodes(), Active: l.state.Active(), Lookup: l.state.Task,
			Quotas: scheduler.NewQuotas(l.state.Users(), l.state.Groups()), Now: now})
		l.recordQueue(res)
		d.wakeAt = res.WakeAt
		for _, f := range res.Failed {
			code, msg := -1, "Not started: "+f.Reason
			ok = l.applyLogged(ctx, &fsm.UpdateTask{TaskID: f.TaskID, Attempt: attemptOf(l.state, f.TaskID), Status: fsm.StatusFailed, ExitCode: &code, Message: &msg, At: now}) && ok
		}
		if len(res.Placements) > 1 && l.known(fsm.CmdAssignTasks) == nil {
			ok = l.assignAll(ctx, res.Placements, now) && ok
			res.Placements = nil // committed together, in one entry
		}
		for _, p := range res.Placements {
			if ctx.Err() != nil {
				return
			}
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := l.apply(actx, &fsm.AssignTask{TaskID: p.TaskID, Node: p.Node, GPUs: p.GPUs, NUMA: p.NUMA, At: now})
			cancel()
			if err != nil {
				ok = false
				if leadershipEnded(ctx, err) {
					// A pass racing the end of this term: the next leader
					// plans again from the committed state.
					l.log.Info("placements not committed: leadership ended", "task_id", p.TaskID, "err", err)
					return
				}
				l.log.Warn("commit placement", "task_id", p.TaskID, "node", p.Node, "err", err)
				continue
			}
			l.placed()
		}
	}
	if l.state.Counts()[fsm.StatusAssigning] == 0 {
		d.mu.Lock()
		clear(d.attempts)
		clear(d.tries)
		d.mu.Unlock()
		return
	}
	for _, t := range l.state.Active() {
		if t.Status != fsm.StatusAssigning {
			continue
		}
		if !d.claimAttempt(t.TaskID, t.Attempt, now) {
			continue
		}
		node, ok := l.state.Node(t.AssignedNode)
		if !ok || node.Status != fsm.NodeOnline {
			d.done(t.TaskID)
			continue
		}
		d.wg.Add(1)
		go func(t *fsm.Task) {
			defer d.wg.Done()
			l.dispatch(ctx, node, t)
			d.done(t.TaskID)
		}(t)
	}
	d.mu.Lock()
	for id := range d.attempts {
		if t, ok := l.state.Task(id); !ok || t.Status != fsm.StatusAssigning {
			delete(d.attempts, id)
			delete(d.tries, id)
		}
	}
	d.mu.Unlock()
}

// queuePlacing is the queue metric's kind of a task the pass places.
const queuePlacing = "placing"

// recordQueue keeps the pending tasks by kind of a pass's result for the
// metrics: why each waits, or that it is being placed.
func (l *leader) recordQueue(res scheduler.Result) {
	q := make(map[string]int, len(scheduler.WaitKinds())+1)
	for _, d := range res.Waiting {
		q[d.Kind]++
	}
	for _, d := range res.Failed {
		q[d.Kind]++
	}
	q[queuePlacing] = len(res.Placements)
	l.queue.Store(&q)
}

// queueByKind returns the pending tasks by kind as the last pass saw them
// (nil before the first pass).
func (l *leader) queueByKind() map[string]int {
	if q := l.queue.Load(); q != nil {
		return *q
	}
	return nil
}

// dispatch sends /run. A runner that rejects the task fails it; one that
// cannot be reached is retried on a later pass (or the task is lost when
// the runner goes offline).
func (l *leader) dispatch(ctx context.Context, node *fsm.Node, t *fsm.Task) {
	if cur, ok := l.state.Task(t.TaskID); !ok || cur.Status != fsm.StatusAssigning {
		return // it moved on (started, finished, killed) since the pass began
	}
	// A first run may load an environment image: allow it minutes, as the
	// original host eventually did.
	rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	err := l.runners.Run(rctx, node.URL, l.runRequest(t))
	if err == nil {
		l.log.Debug("dispatched", "task_id", t.TaskID, "runner", node.Hostname)
		return
	}
	var re *api.APIError
	if errors.As(err, &re) && re.StatusCode != http.StatusServiceUnavailable && re.StatusCode != http.StatusUnauthorized {
		if cur, ok := l.state.Task(t.TaskID); !ok || cur.Status != fsm.StatusAssigning {
			return // a late answer to a redundant /run: the task already moved on
		}
		if cur, _ := l.state.Task(t.TaskID); cur.Restarting {
			// A stopped VPS that could not start again (its container is
			// gone, or its sshd did not answer) stays stopped, with why.
			msg := fmt.Sprintf("Start failed on %s: %d - %s", node.Hostname, re.StatusCode, re.Message)
			l.applyLogged(ctx, &fsm.VPSStop{TaskID: t.TaskID, Message: msg, At: l.now().UTC()})
			return
		}
		code, msg := -1, fmt.Sprintf("Runner rejected task: %d - %s", re.StatusCode, re.Message)
		l.applyLogged(ctx, &fsm.UpdateTask{TaskID: t.TaskID, Attempt: t.Attempt, Status: fsm.StatusFailed, ExitCode: &code, Message: &msg, At: l.now().UTC()})
		return
	}
	if errors.As(err, &re) && re.StatusCode == http.StatusServiceUnavailable && strings.Contains(re.Message, "is still tracked") {
		// The runner still tracks the task's earlier attempt (running, or
		// its end not yet acknowledged): it never runs two at once, and
		// /run goes again on a later pass.
		l.log.Info("dispatch waits for the task's earlier attempt to end on its runner", "task_id", t.TaskID, "attempt", t.Attempt, "runner", node.Hostname)
		return
	}
	if ctx.Err() != nil {
		// Leadership ended while /run was in flight: the runner finishes
		// the start on its own and the next leader re-sends /run, which
		// finds the task tracked.
		l.log.Debug("dispatch abandoned: leadership ended", "task_id", t.TaskID, "runner", node.Hostname)
		return
	}
	if l.runnerLeft != nil && l.runnerLeft(node.Hostname) {
		// A runner that stopped cleanly (an upgrade): /run goes again
		// once it is back, or the task is lost if it stays away.
		l.log.Info("dispatch waits for a runner that is restarting", "task_id", t.TaskID, "runner", node.Hostname, "err", err)
		return
	}
	l.logLeaderErr(ctx, "dispatch failed; will retry", err, "task_id", t.TaskID, "runner", node.Hostname)
}

// leadershipEnded reports whether a failed apply failed because this
// replica stopped leading (ctx is the leader's, cancelled when it steps
// down): the normal course of a leader change, not a fault.
func leadershipEnded(ctx context.Context, err error) bool {
	return errors.Is(err, ErrNotLeader) || ctx.Err() != nil
}
