package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// RunnerBook is the leader's bookkeeping of its runners: their live
// figures, kept in memory only, and the reconciliation of what they report
// with the committed state. The route table sends the runner calls to the
// leader, so it is called there only.
type RunnerBook interface {
	// Registered records a runner's registration (already committed) as
	// its first heartbeat and asks for a scheduling pass. Without a leader
	// (lost since the request was routed) it does nothing: the runner's
	// next heartbeat reaches the new one.
	Registered(name string, now time.Time)
	// Heartbeat takes a runner's heartbeat, writing to the log only for a
	// real state change, and returns the tasks the runner must kill; it
	// fails with ErrNotLeader when leadership was lost since the request
	// was routed.
	Heartbeat(ctx context.Context, node *fsm.Node, hb api.HeartbeatRequest, now time.Time) (kill []int64, err error)
}

// ClusterIDReader gives the committed cluster ID ("" until the first
// leader names the cluster; *fsm.Machine is one).
type ClusterIDReader interface {
	ClusterID() string
}

// Register serves POST /api/register: a runner announces itself and its
// resources; the node is committed online and counts as heard from.
func (a *API) Register(w http.ResponseWriter, r *http.Request) {
	var req api.RegisterRequest
	if err := DecodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if !api.TargetRE.MatchString(req.Hostname) || req.TotalCores < 1 || req.TotalRAMBytes < 0 {
		writeError(w, badRequest("hostname, total_cores and total_ram_bytes: need a valid hostname, at least one core, non-negative memory"))
		return
	}
	if u, err := url.Parse(req.RunnerURL); err != nil || u.Host == "" {
		writeError(w, badRequest("runner_url %q: not an absolute URL", req.RunnerURL))
		return
	}
	node := &fsm.Node{
		Hostname:         req.Hostname,
		URL:              req.RunnerURL,
		TotalCores:       req.TotalCores,
		MemoryTotalBytes: req.TotalRAMBytes,
		NUMATopology:     req.NUMATopology,
		GPUInfo:          req.GPUInfo,
		CgroupsLimited:   req.CgroupsLimited,
	}
	now := time.Now().UTC()
	ctx, cancel := ApplyContext(r)
	defer cancel()
	if _, err := a.d.Proposer.Propose(ctx, &fsm.RegisterNode{Node: node, At: now}); err != nil {
		writeError(w, err)
		return
	}
	a.d.RunnerBook.Registered(req.Hostname, now)
	a.log.Info("runner registered", "runner", req.Hostname, "url", req.RunnerURL, "cores", req.TotalCores)
	writeJSON(w, http.StatusOK, api.RegisterResponse{Message: fmt.Sprintf("Runner %s acknowledged.", req.Hostname), ClusterID: a.d.ClusterID.ClusterID()})
}

// Heartbeat serves PUT /api/heartbeat/{hostname}: it hands a runner's
// heartbeat to the leader's bookkeeping and answers the tasks the runner
// must kill.
func (a *API) Heartbeat(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "hostname")
	var hb api.HeartbeatRequest
	if err := DecodeJSON(r, &hb); err != nil {
		writeError(w, err)
		return
	}
	node, ok := a.d.Nodes.Node(name)
	if !ok {
		writeError(w, notFound("Node not registered"))
		return
	}
	ctx, cancel := ApplyContext(r)
	defer cancel()
	kill, err := a.d.RunnerBook.Heartbeat(ctx, node, hb, time.Now().UTC())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.HeartbeatResponse{Message: "Heartbeat received", Kill: kill})
}

// Update serves POST /api/update: a runner reports a task's status.
func (a *API) Update(w http.ResponseWriter, r *http.Request) {
	var req api.UpdateRequest
	if err := DecodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	st := fsm.Status(req.Status)
	if !st.Valid() {
		writeError(w, badRequest("status %q: unknown status", req.Status))
		return
	}
	if st != fsm.StatusRunning && st != fsm.StatusPaused && !st.Final() {
		// Queueing and placement are the leader's decisions, never a runner's.
		writeError(w, badRequest("status %q: a runner may report running, paused or a final status", req.Status))
		return
	}
	// Answer what the FSM would answer without a log entry when the report
	// changes nothing (a retry, a stale report, a task this cluster does not
	// know): only state transitions go into the log (invariant 2).
	t, ok := a.d.Tasks.Task(req.TaskID)
	switch {
	case !ok:
		writeError(w, fmt.Errorf("%w: task %d", fsm.ErrNotFound, req.TaskID))
		return
	case t.Status == st && (req.SSHPort == 0 || t.Status.Final()):
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: "Task status updated successfully."})
		return
	case t.Status.Final():
		writeError(w, fmt.Errorf("%w: task %d cannot move from %s to %s", fsm.ErrConflict, req.TaskID, t.Status, st))
		return
	}
	ctx, cancel := ApplyContext(r)
	defer cancel()
	_, err := a.d.Proposer.Propose(ctx, &fsm.UpdateTask{
		TaskID: req.TaskID, Status: st, ExitCode: req.ExitCode, Message: req.Message,
		StartedAt: req.StartedAt, CompletedAt: req.CompletedAt, SSHPort: req.SSHPort, At: time.Now().UTC(),
	})
	if err != nil {
		writeError(w, err)
		return
	}
	if st.Final() {
		a.d.Proposer.KickScheduler()
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: "Task status updated successfully."})
}
