package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// heartbeatLoop registers (again after a 404) and heartbeats every
// HeartbeatInterval with live figures and the IDs of every task the runner
// tracks, including finished ones whose end the cluster has not yet
// acknowledged, so that none is declared lost while its report is in flight.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	for {
		wait := a.cfg.HeartbeatInterval
		if !a.registered.Load() {
			if err := a.register(ctx); err != nil {
				a.log.Debug("register", "err", err)
				wait = min(wait, 500*time.Millisecond)
			} else {
				a.registered.Store(true)
				a.log.Info("registered with the cluster")
			}
		}
		if a.registered.Load() {
			if err := a.heartbeat(ctx); err != nil {
				var ae *api.APIError
				if errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound {
					a.registered.Store(false)
					wait = 0
				}
				a.log.Debug("heartbeat", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (a *Agent) register(ctx context.Context) error {
	c, err := a.hostClient()
	if err != nil {
		return err
	}
	req := api.RegisterRequest{
		Hostname: a.cfg.Name, TotalCores: a.static.TotalCores, TotalRAMBytes: a.static.MemoryTotalBytes,
		RunnerURL: a.url, NUMATopology: a.static.NUMATopology, GPUInfo: a.static.GPUInfo,
		CgroupsLimited: a.cfg.NativeLimited, Version: a.cfg.Version,
	}
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var resp api.RegisterResponse
	if _, err = c.Do(rctx, http.MethodPost, "/api/register", req, &resp); err != nil {
		return err
	}
	a.log.Debug("registered", "cluster_id", resp.ClusterID)
	return nil
}

func (a *Agent) heartbeat(ctx context.Context) error {
	c, err := a.hostClient()
	if err != nil {
		return err
	}
	hb := api.HeartbeatRequest{RunningTasks: []int64{}}
	states, owner, complete := a.allStates(ctx)
	hb.Partial = !complete
	for id := range states {
		hb.RunningTasks = append(hb.RunningTasks, id)
	}
	if live, err := a.sampler.Sample(ctx); err == nil {
		hb.CPUPercent, hb.MemoryPercent = &live.CPUPercent, &live.MemoryPercent
		hb.MemoryUsedBytes, hb.MemoryTotalBytes = &live.MemoryUsedBytes, &live.MemoryTotalBytes
		hb.CurrentAvgTemp, hb.CurrentMaxTemp = live.CurrentAvgTemp, live.CurrentMaxTemp
		hb.GPUInfo = live.GPUInfo
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var resp api.HeartbeatResponse
	if _, err := c.Do(rctx, http.MethodPut, "/api/heartbeat/"+url.PathEscape(a.cfg.Name), hb, &resp); err != nil {
		return err
	}
	for _, id := range resp.Kill {
		if ex := owner[id]; ex != nil {
			a.killFinished(ctx, ex, id)
		}
	}
	return nil
}

// killFinished kills a task the cluster holds a final status for. Most
// often the task ended on its own and its end was committed while this
// heartbeat, which still listed it, was in flight: the kill then finds it
// ended (or forgotten), which is the normal course. Only a process that was
// really still running is worth a warning.
func (a *Agent) killFinished(ctx context.Context, ex executor.Executor, id int64) {
	if err := ex.Kill(ctx, id); errors.Is(err, executor.ErrUnknownTask) {
		return
	} else if err != nil {
		a.log.Warn("kill a task the cluster considers finished", "task_id", id, "err", err)
		return
	}
	list, err := ex.List(ctx)
	if err != nil {
		a.log.Warn("list tasks", "err", err)
		return
	}
	for _, s := range list {
		if s.TaskID == id && s.Exit != nil && s.Exit.Killed {
			a.log.Warn("killed a task the cluster considers finished", "task_id", id)
			return
		}
	}
	a.log.Debug("task the cluster considers finished had ended already", "task_id", id)
}

// watchLoop reports every task's status change to the cluster and forgets
// a finished task once its end is acknowledged.
func (a *Agent) watchLoop(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-a.kick:
		}
		states, owner := a.states(ctx)
		for id, s := range states {
			if s.Starting {
				// Not running yet: reported once its process exists, so
				// that the cluster never offers to pause a task that
				// cannot be paused yet (the heartbeat lists it already).
				continue
			}
			u := statusUpdate(s)
			// A VPS's port is part of what was acknowledged: it changes
			// when Docker restarts the container.
			ack := u.Status
			if u.SSHPort != 0 {
				ack += ":" + strconv.Itoa(u.SSHPort)
			}
			if a.acked[id] == ack {
				continue
			}
			if err := a.report(ctx, u); err != nil {
				a.log.Debug("report status", "task_id", id, "status", u.Status, "err", err)
				continue
			}
			a.acked[id] = ack
			if s.Exit != nil {
				a.markFinished(id)
				if err := owner[id].Forget(ctx, id); err != nil && ctx.Err() == nil {
					a.log.Warn("forget task", "task_id", id, "err", err)
				}
				delete(a.acked, id)
			}
		}
	}
}

// statusUpdate turns an executor state into the status report to send.
func statusUpdate(s executor.State) api.UpdateRequest {
	u := api.UpdateRequest{TaskID: s.TaskID}
	if !s.Started.IsZero() {
		st := s.Started.UTC()
		u.StartedAt = &st
	}
	switch {
	case s.Exit == nil && s.Paused:
		u.Status, u.SSHPort = "paused", s.SSHPort
	case s.Exit == nil:
		u.Status, u.SSHPort = "running", s.SSHPort
	default:
		e := s.Exit
		code := e.Code
		u.ExitCode = &code
		end := e.EndedAt.UTC()
		u.CompletedAt = &end
		var msg string
		switch {
		case e.OOM:
			u.Status, msg = "killed_oom", "Killed: memory limit exceeded."
		case e.Killed:
			u.Status, msg = "killed", "Killed on the runner."
		case e.Code == 0:
			u.Status = "completed"
		default:
			u.Status, msg = "failed", fmt.Sprintf("Process exited with code %d.", e.Code)
		}
		if e.Message != "" {
			msg = e.Message
		}
		if msg != "" {
			u.Message = &msg
		}
	}
	return u
}

// report sends one status update. A 409 (the cluster already holds a final
// status) counts as acknowledged. A 404 may come from a replica that has not
// applied the task yet, so it is retried, and taken as final only after
// unknownTaskGrace.
func (a *Agent) report(ctx context.Context, u api.UpdateRequest) error {
	c, err := a.hostClient()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = c.Do(rctx, http.MethodPost, "/api/update", u, nil)
	var ae *api.APIError
	switch {
	case errors.As(err, &ae) && ae.StatusCode == http.StatusConflict:
		return nil
	case errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound:
		first, seen := a.notFound[u.TaskID]
		if !seen {
			a.notFound[u.TaskID] = time.Now()
			return err
		}
		if time.Since(first) < unknownTaskGrace {
			return err
		}
		delete(a.notFound, u.TaskID)
		return nil
	}
	delete(a.notFound, u.TaskID)
	return err
}

// unknownTaskGrace is how long a runner keeps reporting a task the cluster
// says it does not know before giving up on it.
const unknownTaskGrace = time.Minute
