package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	MarkVPSStopped(ctx context.Context, runnerURL string, id int64) error
	UnmarkVPSStopped(ctx context.Context, runnerURL string, id int64) error
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

// StopKept stops VPS id on the runner at runnerURL and keeps it, committing
// the stop with propose: the runner first marks the VPS stopped (from then
// on it never removes the container, and lists it only while it runs),
// then the stop is committed (the task is stopped and its resources free),
// then the runner stops the container. The order leaves no moment at which
// the leader could find the VPS missing (and lose it) or kill it for good:
// between the commit and the runner's stop, the leader's reconciliation
// may ask the runner to kill it, which for a marked VPS is the same stop.
// A commit the state machine refused takes the mark back (one that may
// have committed keeps it); a stop that fails after the commit is left to
// that reconciliation (logged).
func StopKept(ctx context.Context, r VPSRunners, log *slog.Logger, runnerURL string, id int64, propose func(context.Context) error) error {
	mctx, cancel := context.WithTimeout(ctx, vpsRunnerTimeout)
	err := r.MarkVPSStopped(mctx, runnerURL, id)
	cancel()
	if err != nil {
		return err
	}
	if err := propose(ctx); err != nil {
		if !definitelyNotCommitted(err) {
			// It may have committed (a timeout, a leader change): the
			// mark stays, so the container is never removed.
			return err
		}
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), vpsRunnerTimeout)
		defer cancel()
		if uerr := r.UnmarkVPSStopped(uctx, runnerURL, id); uerr != nil {
			log.Warn("take back the stopped mark of a VPS whose stop was not committed", "task_id", id, "err", uerr)
		}
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), vpsRunnerTimeout)
	defer cancel()
	if err := r.StopVPS(sctx, runnerURL, id); err != nil {
		log.Warn("stop a VPS whose stop is committed; the runner's next heartbeat does it", "task_id", id, "err", err)
	}
	return nil
}

// definitelyNotCommitted reports whether a failed proposal certainly
// changed nothing: the state machine or the upgrade check refused it.
func definitelyNotCommitted(err error) bool {
	return errors.Is(err, fsm.ErrConflict) || errors.Is(err, fsm.ErrNotFound) || errors.Is(err, fsm.ErrInvalid) ||
		errors.Is(err, ErrUpgradePending)
}

// errCommit marks an error of the commit (not of the runner) in StopKept.
type errCommit struct{ err error }

func (e errCommit) Error() string { return e.err.Error() }
func (e errCommit) Unwrap() error { return e.err }

// VPSStop serves POST /api/vps/{id}/stop on the leader: the VPS is
// stopped and kept on its node (StopKept), its resources free.
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
	msg := fmt.Sprintf("Stopped by %s.", principal(r).Name)
	err := StopKept(r.Context(), a.d.VPS, a.log, n.URL, id, func(context.Context) error {
		ctx, cancel := ApplyContext(r)
		defer cancel()
		if _, err := a.d.Proposer.Propose(ctx, &fsm.VPSStop{TaskID: id, Message: msg, At: a.now().UTC()}); err != nil {
			return errCommit{err}
		}
		return nil
	})
	var ce errCommit
	switch {
	case errors.As(err, &ce):
		writeError(w, ce.err)
		return
	case err != nil:
		writeError(w, runnerFailure(id, n.Hostname, "stop", err))
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
