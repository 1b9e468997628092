package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
func (h *Host) runRequest(t *fsm.Task) api.RunRequest {
	r := runRequest(t)
	r.ClusterID = h.machine.ClusterID()
	if r.DockerImageName != "" {
		if tb, ok := h.machine.Tarball(t.ContainerName); ok {
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
	return api.RunRequest{
		TaskID: t.TaskID, TaskType: string(t.TaskType), Command: t.Command, Arguments: t.Arguments,
		EnvVars: env, WorkDir: t.WorkDir, RequiredCores: t.RequiredCores, RequiredGPUs: t.RequiredGPUs,
		RequiredMemoryBytes: t.RequiredMemoryBytes, TargetNUMANodeID: t.TargetNUMANodeID,
		StdoutPath: t.StdoutPath, StderrPath: t.StderrPath, ContainerName: t.ContainerName,
		DockerImageName: image, DockerPrivileged: t.Privileged, DockerMounts: t.AdditionalMounts, BatchID: t.BatchID,
	}
}

// dispatcher tracks the leader's in-flight /run calls.
type dispatcher struct {
	mu       sync.Mutex
	attempts map[int64]time.Time
	// inflight holds tasks whose /run call has not returned yet: a task is
	// never sent twice at once (an image load may take minutes).
	inflight map[int64]bool
	// planned is the applied index the last Plan saw: placements depend on
	// committed state only, so an unchanged index needs no new Plan.
	planned uint64
	wg      sync.WaitGroup
}

// scheduleLoop is the leader's placement and dispatch loop: it commits
// placements for pending tasks and (re-)sends /run for assigning ones,
// including those a previous leader left behind.
func (h *Host) scheduleLoop(ctx context.Context) {
	d := &dispatcher{attempts: map[int64]time.Time{}, inflight: map[int64]bool{}}
	defer d.wg.Wait()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		last := time.Now()
		h.schedulePass(ctx, d)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-h.kick:
			// Under a stream of submits, coalesce kicks: at most one pass
			// per minPassInterval, so a pass never runs per request.
			if wait := minPassInterval - time.Since(last); wait > 0 {
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

func (h *Host) schedulePass(ctx context.Context, d *dispatcher) {
	now := time.Now().UTC()
	if idx := h.machine.AppliedIndex(); idx != d.planned {
		d.planned = idx
		ok := true
		defer func() {
			if !ok {
				d.planned = 0 // something did not commit: plan again next pass
			}
		}()
		res := scheduler.Plan(scheduler.View{Nodes: h.machine.Nodes(), Active: h.machine.Active(), Lookup: h.machine.Task})
		for _, f := range res.Failed {
			code, msg := -1, "Not started: "+f.Reason
			ok = h.applyLogged(ctx, &fsm.UpdateTask{TaskID: f.TaskID, Status: fsm.StatusFailed, ExitCode: &code, Message: &msg, At: now}) && ok
		}
		for _, p := range res.Placements {
			if ctx.Err() != nil {
				return
			}
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := h.apply(actx, &fsm.AssignTask{TaskID: p.TaskID, Node: p.Node, GPUs: p.GPUs, NUMA: p.NUMA, At: now})
			cancel()
			if err != nil {
				h.log.Warn("commit placement", "task_id", p.TaskID, "node", p.Node, "err", err)
				ok = false
			}
		}
	}
	if h.machine.Counts()[fsm.StatusAssigning] == 0 {
		d.mu.Lock()
		clear(d.attempts)
		d.mu.Unlock()
		return
	}
	for _, t := range h.machine.Active() {
		if t.Status != fsm.StatusAssigning {
			continue
		}
		d.mu.Lock()
		last, seen := d.attempts[t.TaskID]
		due := (!seen || now.Sub(last) > redriveAfter) && !d.inflight[t.TaskID]
		if due {
			d.attempts[t.TaskID] = now
			d.inflight[t.TaskID] = true
		}
		d.mu.Unlock()
		if !due {
			continue
		}
		node, ok := h.machine.Node(t.AssignedNode)
		if !ok || node.Status != fsm.NodeOnline {
			d.mu.Lock()
			delete(d.inflight, t.TaskID)
			d.mu.Unlock()
			continue
		}
		d.wg.Add(1)
		go func(t *fsm.Task) {
			defer d.wg.Done()
			h.dispatch(ctx, node, t)
			d.mu.Lock()
			delete(d.inflight, t.TaskID)
			d.mu.Unlock()
		}(t)
	}
	d.mu.Lock()
	for id := range d.attempts {
		if t, ok := h.machine.Task(id); !ok || t.Status != fsm.StatusAssigning {
			delete(d.attempts, id)
		}
	}
	d.mu.Unlock()
}

// dispatch sends /run. A runner that rejects the task fails it; one that
// cannot be reached is retried on a later pass (or the task is lost when
// the runner goes offline).
func (h *Host) dispatch(ctx context.Context, node *fsm.Node, t *fsm.Task) {
	if cur, ok := h.machine.Task(t.TaskID); !ok || cur.Status != fsm.StatusAssigning {
		return // it moved on (started, finished, killed) since the pass began
	}
	// A first run may load an environment image: allow it minutes, as the
	// original host eventually did.
	rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	err := h.runners.Run(rctx, node.URL, h.runRequest(t))
	if err == nil {
		h.log.Debug("dispatched", "task_id", t.TaskID, "runner", node.Hostname)
		return
	}
	var re *api.APIError
	if errors.As(err, &re) && re.StatusCode != http.StatusServiceUnavailable && re.StatusCode != http.StatusUnauthorized {
		if cur, ok := h.machine.Task(t.TaskID); !ok || cur.Status != fsm.StatusAssigning {
			return // a late answer to a redundant /run: the task already moved on
		}
		code, msg := -1, fmt.Sprintf("Runner rejected task: %d - %s", re.StatusCode, re.Message)
		h.applyLogged(ctx, &fsm.UpdateTask{TaskID: t.TaskID, Status: fsm.StatusFailed, ExitCode: &code, Message: &msg, At: time.Now().UTC()})
		return
	}
	h.log.Warn("dispatch failed; will retry", "task_id", t.TaskID, "runner", node.Hostname, "err", err)
}

// livenessLoop marks runners offline after heartbeat_interval ×
// heartbeat_timeout_factor of silence (their unfinished tasks become lost in
// the same entry) and samples health once a second.
func (h *Host) livenessLoop(ctx context.Context) {
	timeout := h.cfg.HeartbeatInterval * time.Duration(h.cfg.HeartbeatTimeoutFactor)
	tick := time.NewTicker(min(250*time.Millisecond, h.cfg.HeartbeatInterval/4+1)) // offline within a quarter second of the timeout
	defer tick.Stop()
	lastSample := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now().UTC()
		live := h.liveState()
		for _, n := range h.machine.Nodes() {
			if n.Status != fsm.NodeOnline || now.Sub(live.lastSeen(n.Hostname)) <= timeout {
				continue
			}
			h.log.Warn("runner went offline (heartbeat timeout)", "runner", n.Hostname, "timeout", timeout)
			h.applyLogged(ctx, &fsm.SetNodeStatus{Hostname: n.Hostname, Status: fsm.NodeOffline, At: now})
		}
		h.enforceTimeLimits(ctx, now)
		if now.Sub(lastSample) >= time.Second {
			lastSample = now
			h.sampleHealth(now)
		}
	}
}

// applyLogged applies a leader-decided command whose failure is only worth
// a log line (the next pass retries); it reports whether it committed.
func (h *Host) applyLogged(ctx context.Context, c fsm.Command) bool {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := h.apply(actx, c); err != nil {
		h.log.Warn("apply", "command", c.Type().String(), "err", err)
		return false
	}
	return true
}

// kickScheduler asks the leader's scheduling loop for a pass now.
func (h *Host) kickScheduler() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// liveState returns the leader's current in-memory runner view.
func (h *Host) liveState() *liveState { return h.live.Load() }

// enforceTimeLimits kills running tasks past their time limit.
func (h *Host) enforceTimeLimits(ctx context.Context, now time.Time) {
	for _, t := range h.machine.Active() {
		if t.TimeLimitSeconds <= 0 || t.StartedAt == nil || (t.Status != fsm.StatusRunning && t.Status != fsm.StatusPaused) {
			continue
		}
		limit := time.Duration(t.TimeLimitSeconds) * time.Second
		if now.Sub(*t.StartedAt) < limit {
			continue
		}
		h.log.Info("killing task past its time limit", "task_id", t.TaskID, "limit", limit)
		msg := fmt.Sprintf("Killed: time limit (%s) exceeded.", limit)
		h.applyLogged(ctx, &fsm.KillTask{TaskID: t.TaskID, Message: msg, At: now})
		h.notifyKill(t)
	}
}
