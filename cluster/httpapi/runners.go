package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
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
	if !api.TargetRE().MatchString(req.Hostname) || req.TotalCores < 1 || req.TotalRAMBytes < 0 {
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
	now := a.now().UTC()
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
	kill, err := a.d.RunnerBook.Heartbeat(ctx, node, hb, a.now().UTC())
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
	st, err := reportStatus(req.Status, "status")
	if err == nil {
		err = a.checkUsage(req, st, "usage")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if done, err := a.settled(req, st); done {
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: "Task status updated successfully."})
		return
	}
	ctx, cancel := ApplyContext(r)
	defer cancel()
	if err := a.applyOne(ctx, updateCommand(req, st, a.now().UTC())); err != nil {
		writeError(w, err)
		return
	}
	if st.Final() {
		a.d.Proposer.KickScheduler()
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: "Task status updated successfully."})
}

// Updates serves POST /api/updates: a runner reports many tasks' statuses,
// committed in one entry. The batch is checked whole first (size, every
// status, no task twice): a bad one is refused with nothing applied. Each
// report then gets what /api/update would answer for it alone (a report
// with impossible figures: 400 naming them, the others still applied).
func (a *API) Updates(w http.ResponseWriter, r *http.Request) {
	var req api.UpdatesRequest
	if err := DecodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	sts, err := checkBatch(req.Updates)
	if err != nil {
		writeError(w, err)
		return
	}
	now := a.now().UTC()
	results := make([]api.UpdateResult, len(req.Updates))
	var cmds []fsm.UpdateTask
	var at []int // index in the request of each of cmds
	for i, u := range req.Updates {
		results[i] = api.UpdateResult{TaskID: u.TaskID, Status: http.StatusOK}
		if err := a.checkUsage(u, sts[i], fmt.Sprintf("updates[%d].usage", i)); err != nil {
			// Refused alone, so that one runner's bad figures hold back
			// no other report (the runner sends this end again without).
			results[i] = updateResult(u.TaskID, err)
			continue
		}
		if done, err := a.settled(u, sts[i]); done {
			results[i] = updateResult(u.TaskID, err)
			continue
		}
		cmds = append(cmds, *updateCommand(u, sts[i], now))
		at = append(at, i)
	}
	if len(cmds) > 0 {
		ctx, cancel := ApplyContext(r)
		defer cancel()
		errs, err := a.d.Proposer.UpdateTasks(ctx, cmds)
		if err != nil {
			writeError(w, err)
			return
		}
		kick := false
		for k, e := range errs {
			results[at[k]] = updateResult(cmds[k].TaskID, e)
			kick = kick || (e == nil && cmds[k].Status.Final())
		}
		if kick {
			a.d.Proposer.KickScheduler()
		}
	}
	writeJSON(w, http.StatusOK, api.UpdatesResponse{Results: results})
}

// checkBatch validates a batch of reports at the boundary and returns
// their statuses.
func checkBatch(us []api.UpdateRequest) ([]fsm.Status, error) {
	switch {
	case us == nil:
		return nil, badRequest("updates: required (a list of reports)")
	case len(us) > api.MaxUpdateBatch:
		return nil, &httpError{status: http.StatusRequestEntityTooLarge,
			msg: fmt.Sprintf("updates: %d reports, more than the limit of %d per request", len(us), api.MaxUpdateBatch)}
	}
	sts := make([]fsm.Status, len(us))
	seen := make(map[int64]int, len(us))
	for i, u := range us {
		if u.TaskID <= 0 {
			return nil, badRequest("updates[%d].task_id: must be a positive task ID", i)
		}
		if j, dup := seen[u.TaskID]; dup {
			return nil, badRequest("updates[%d].task_id: task %d is reported twice (also updates[%d])", i, u.TaskID, j)
		}
		seen[u.TaskID] = i
		st, err := reportStatus(u.Status, fmt.Sprintf("updates[%d].status", i))
		if err != nil {
			return nil, err
		}
		sts[i] = st
	}
	return sts, nil
}

// reportStatus parses a status a runner reports; field names it in errors.
func reportStatus(s, field string) (fsm.Status, error) {
	st := fsm.Status(s)
	if !st.Valid() {
		return "", badRequest("%s %q: unknown status", field, s)
	}
	if st != fsm.StatusRunning && st != fsm.StatusPaused && !st.Final() {
		// Queueing and placement are the leader's decisions, never a runner's.
		return "", badRequest("%s %q: a runner may report running, paused or a final status", field, s)
	}
	return st, nil
}

// settled answers, without a log entry, a report that changes nothing (a
// retry, a stale report, a task this cluster does not know): done is true
// and err what the FSM would answer. Only state transitions go into the
// log (invariant 2).
func (a *API) settled(u api.UpdateRequest, st fsm.Status) (done bool, err error) {
	t, ok := a.d.Tasks.Task(u.TaskID)
	switch {
	case !ok:
		return true, fmt.Errorf("%w: task %d", fsm.ErrNotFound, u.TaskID)
	case u.Usage != nil && t.Status.Final() && t.Usage == nil && t.StartedAt != nil:
		return false, nil // the end's figures are still to record
	case u.Attempt != 0 && u.Attempt != t.CurrentAttempt():
		return true, fmt.Errorf("%w: task %d: report of attempt %d, the task is at attempt %d", fsm.ErrConflict, u.TaskID, u.Attempt, t.CurrentAttempt())
	case t.Status == st && (u.SSHPort == 0 || t.Status.Final()):
		return true, nil
	case t.Status.Final():
		return true, fmt.Errorf("%w: task %d cannot move from %s to %s", fsm.ErrConflict, u.TaskID, t.Status, st)
	}
	return false, nil
}

// updateCommand is the FSM command of a runner report.
func updateCommand(u api.UpdateRequest, st fsm.Status, now time.Time) *fsm.UpdateTask {
	return &fsm.UpdateTask{
		TaskID: u.TaskID, Status: st, ExitCode: u.ExitCode, Message: u.Message,
		StartedAt: u.StartedAt, CompletedAt: u.CompletedAt, SSHPort: u.SSHPort, At: now, Usage: u.Usage, Attempt: u.Attempt,
	}
}

// applyOne commits one report: through UpdateTasks when it carries
// figures (recorded where every replica knows fsm.ReportTasks), else as
// one fsm.UpdateTask.
func (a *API) applyOne(ctx context.Context, c *fsm.UpdateTask) error {
	if c.Usage == nil {
		_, err := a.d.Proposer.Propose(ctx, c)
		return err
	}
	errs, err := a.d.Proposer.UpdateTasks(ctx, []fsm.UpdateTask{*c})
	if err != nil {
		return err
	}
	if len(errs) != 1 {
		return fmt.Errorf("update task %d: %d results for one report", c.TaskID, len(errs))
	}
	return errs[0]
}

// checkUsage validates the figures of a report at the boundary (a
// runner's report is hostile input): only with a final status, every
// figure in range, no more CPU time than the task's node has cores for
// the time it ran. field names the figures in the error (400).
func (a *API) checkUsage(u api.UpdateRequest, st fsm.Status, field string) error {
	if u.Usage == nil {
		return nil
	}
	if !st.Final() {
		return badRequest("%s: figures come with a final status only, not %s", field, st)
	}
	elapsed, cores := time.Duration(-1), 0
	if t, ok := a.d.Tasks.Task(u.TaskID); ok {
		start, stop := t.StartedAt, t.CompletedAt
		if start == nil {
			start = u.StartedAt
		}
		if stop == nil {
			stop = u.CompletedAt
		}
		if start != nil {
			end := a.now()
			if stop != nil {
				end = *stop
			}
			elapsed = max(0, end.Sub(*start))
		}
		if n, ok := a.d.Nodes.Node(t.AssignedNode); ok {
			cores = n.TotalCores
		}
	}
	if err := u.Usage.Check(field, elapsed, cores); err != nil {
		return badRequest("%s", strings.TrimPrefix(err.Error(), fsm.ErrInvalid.Error()+": "))
	}
	return nil
}

// updateResult is the result of one report of a batch.
func updateResult(id int64, err error) api.UpdateResult {
	if err == nil {
		return api.UpdateResult{TaskID: id, Status: http.StatusOK}
	}
	return api.UpdateResult{TaskID: id, Status: StatusOf(err), Error: err.Error()}
}
