package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// VPSRunners is the leader's way to a VPS's runner for the VPS lifecycle
// (api.RunnerClient's VPS calls).
type VPSRunners interface {
	StopVPS(ctx context.Context, runnerURL string, id int64) error
	VPSState(ctx context.Context, runnerURL string, id int64) (string, error)
	RemoveStoppedVPS(ctx context.Context, runnerURL string, id int64) error
}

// vpsRunnerTimeout bounds one lifecycle call to a runner (docker stop
// waits up to 10 s for the VPS's processes).
const vpsRunnerTimeout = 45 * time.Second

// lifecycleVPS checks that r names a VPS its caller may act on and returns
// it with its node; it answers the error itself and returns false on
// failure.
func (a *API) lifecycleVPS(w http.ResponseWriter, r *http.Request, what string) (*fsm.Task, *fsm.Node, bool) {
	id, err := ParseTaskID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, err)
		return nil, nil, false
	}
	if err := noBody(r); err != nil {
		writeError(w, err)
		return nil, nil, false
	}
	t, ok := a.d.Tasks.Task(id)
	if !ok {
		writeError(w, notFound("task %d not found", id))
		return nil, nil, false
	}
	if err := mayActOn(principal(r), t, what); err != nil {
		writeError(w, err)
		return nil, nil, false
	}
	if t.TaskType != fsm.TaskVPS {
		writeError(w, badRequest("task %d is not a VPS (it is a %s task)", id, t.TaskType))
		return nil, nil, false
	}
	if a.d.VPS == nil {
		writeError(w, fmt.Errorf("VPS lifecycle calls are not wired on this replica"))
		return nil, nil, false
	}
	n, _ := a.d.Nodes.Node(t.AssignedNode)
	return t, n, true
}

// runnerFailure turns a failed runner call into the client's error.
func runnerFailure(id int64, node, what string, err error) error {
	var re *api.APIError
	if errors.As(err, &re) && re.StatusCode == http.StatusGone {
		return conflict("VPS %d: its container no longer exists on node %s (removed outside HakuRiver): its disk is gone; kill the VPS and create a new one", id, node)
	}
	if errors.As(err, &re) && re.StatusCode < 500 {
		return conflict("VPS %d: runner %s refused to %s it: %s", id, node, what, re.Message)
	}
	return &httpError{status: http.StatusBadGateway, msg: fmt.Sprintf("VPS %d: could not %s it on runner %s: %v", id, what, node, err)}
}

// VPSStop serves POST /api/vps/{id}/stop on the leader: the runner stops
// the VPS's container and keeps it, then the task becomes stopped and its
// resources are free. The runner acts first: a commit that then fails
// leaves a stopped container of a running task, which the next heartbeats
// find missing (lost) rather than a running container of a stopped one.
func (a *API) VPSStop(w http.ResponseWriter, r *http.Request) {
	t, n, ok := a.lifecycleVPS(w, r, "stop")
	if !ok {
		return
	}
	id := t.TaskID
	switch {
	case t.Status == fsm.StatusStopped:
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("VPS %d is already stopped.", id)})
		return
	case t.Status != fsm.StatusRunning && t.Status != fsm.StatusPaused:
		writeError(w, conflict("VPS %d cannot be stopped: it is %s (only a running or paused VPS can)", id, t.Status))
		return
	case n == nil:
		writeError(w, conflict("VPS %d cannot be stopped: its node %q is not registered", id, t.AssignedNode))
		return
	case n.Status != fsm.NodeOnline:
		writeError(w, conflict("VPS %d cannot be stopped: its node %s is %s", id, n.Hostname, n.Status))
		return
	}
	rctx, cancel := context.WithTimeout(r.Context(), vpsRunnerTimeout)
	err := a.d.VPS.StopVPS(rctx, n.URL, id)
	cancel()
	if err != nil {
		writeError(w, runnerFailure(id, n.Hostname, "stop", err))
		return
	}
	ctx, cancel := ApplyContext(r)
	defer cancel()
	msg := fmt.Sprintf("Stopped by %s.", principal(r).Name)
	if _, err := a.d.Proposer.Propose(ctx, &fsm.VPSStop{TaskID: id, Message: msg, At: time.Now().UTC()}); err != nil {
		writeError(w, err)
		return
	}
	a.d.Proposer.KickScheduler() // its resources are free
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("VPS %d stopped; its container is kept on %s.", id, n.Hostname)})
}

// VPSStart serves POST /api/vps/{id}/start on the leader: a stopped VPS is
// placed again on the node that keeps its container, when that node is
// online, has room for it and still has the container; the dispatcher then
// starts the container and the runner reports it running with its new SSH
// port. Otherwise 409 says which of these failed.
func (a *API) VPSStart(w http.ResponseWriter, r *http.Request) {
	t, n, ok := a.lifecycleVPS(w, r, "start")
	if !ok {
		return
	}
	id := t.TaskID
	switch {
	case t.Status == fsm.StatusAssigning && t.Restarting, t.Status == fsm.StatusRunning:
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("VPS %d is already %s.", id, t.Status)})
		return
	case t.Status != fsm.StatusStopped:
		writeError(w, conflict("VPS %d cannot be started: it is %s (only a stopped VPS can)", id, t.Status))
		return
	case n == nil:
		writeError(w, conflict("VPS %d cannot be started: its node %q is not registered", id, t.AssignedNode))
		return
	case n.Status != fsm.NodeOnline:
		writeError(w, conflict("VPS %d cannot be started: its node %s is offline; its container is kept there, start it once the node is back", id, n.Hostname))
		return
	}
	p, why := scheduler.FitOn(t, n, a.d.Tasks.Active())
	if p == nil {
		writeError(w, conflict("VPS %d cannot be started: no room on its node: %s", id, why))
		return
	}
	rctx, cancel := context.WithTimeout(r.Context(), vpsRunnerTimeout)
	state, err := a.d.VPS.VPSState(rctx, n.URL, id)
	cancel()
	if err != nil {
		writeError(w, runnerFailure(id, n.Hostname, "look up", err))
		return
	}
	if state == "absent" {
		writeError(w, conflict("VPS %d cannot be started: its container no longer exists on node %s (removed outside HakuRiver): its disk is gone; kill the VPS and create a new one", id, n.Hostname))
		return
	}
	ctx, cancel := ApplyContext(r)
	defer cancel()
	if _, err := a.d.Proposer.Propose(ctx, &fsm.VPSStart{TaskID: id, GPUs: p.GPUs, NUMA: p.NUMA, At: time.Now().UTC()}); err != nil {
		writeError(w, err)
		return
	}
	a.d.Proposer.KickScheduler() // dispatch it now
	writeJSON(w, http.StatusAccepted, api.MessageResponse{Message: fmt.Sprintf("VPS %d is starting on %s.", id, n.Hostname)})
}

// removeStopped asks the runner of a stopped VPS that was just killed to
// remove its kept container. A runner that cannot be reached keeps it
// (logged): nothing else will remove it.
func (a *API) removeStopped(r *http.Request, t *fsm.Task) {
	n, ok := a.d.Nodes.Node(t.AssignedNode)
	if !ok || a.d.VPS == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), vpsRunnerTimeout)
	defer cancel()
	if err := a.d.VPS.RemoveStoppedVPS(ctx, n.URL, t.TaskID); err != nil {
		a.log.Warn("remove the container of a killed stopped VPS; it stays on its node", "task_id", t.TaskID, "node", n.Hostname, "err", err)
	}
}
