package cluster

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// tokenOK reports whether got is the cluster token, in constant time. An
// empty configured token matches only in insecure mode.
func (h *Host) tokenOK(got string) bool {
	if h.cfg.ClusterToken == "" {
		return h.cfg.InsecureNoToken
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.ClusterToken)) == 1
}

// requireToken rejects calls that do not carry the cluster token: internal
// calls and membership changes. Only a replica started with InsecureNoToken
// (and no token) lets them through.
func (h *Host) requireToken(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.tokenOK(r.Header.Get(api.TokenHeader)) {
			h.log.Warn("rejected call without a valid cluster token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			writeError(w, &httpError{status: http.StatusUnauthorized, msg: "missing or wrong cluster token"})
			return
		}
		next(w, r)
	}
}

func (h *Host) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req api.RegisterRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if !targetRE.MatchString(req.Hostname) || req.TotalCores < 1 || req.TotalRAMBytes < 0 {
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
	ctx, cancel := h.applyCtx(r)
	defer cancel()
	if _, err := h.apply(ctx, &fsm.RegisterNode{Node: node, At: now}); err != nil {
		writeError(w, err)
		return
	}
	if l := h.currentLeader(); l != nil {
		l.registered(req.Hostname, now)
	}
	h.log.Info("runner registered", "runner", req.Hostname, "url", req.RunnerURL, "cores", req.TotalCores)
	writeJSON(w, http.StatusOK, api.RegisterResponse{Message: fmt.Sprintf("Runner %s acknowledged.", req.Hostname), ClusterID: h.machine.ClusterID()})
}

// handleHeartbeat hands a runner's heartbeat to the leader (leader.heartbeat)
// and answers the tasks the runner must kill.
func (h *Host) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "hostname")
	var hb api.HeartbeatRequest
	if err := decodeJSON(r, &hb); err != nil {
		writeError(w, err)
		return
	}
	node, ok := h.machine.Node(name)
	if !ok {
		writeError(w, notFound("Node not registered"))
		return
	}
	l := h.currentLeader()
	if l == nil {
		writeError(w, ErrNotLeader) // leadership was lost since onLeader looked
		return
	}
	ctx, cancel := h.applyCtx(r)
	defer cancel()
	kill, err := l.heartbeat(ctx, node, hb, time.Now().UTC())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.HeartbeatResponse{Message: "Heartbeat received", Kill: kill})
}

func (h *Host) handleUpdate(w http.ResponseWriter, r *http.Request) {
	var req api.UpdateRequest
	if err := decodeJSON(r, &req); err != nil {
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
	t, ok := h.machine.Task(req.TaskID)
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
	ctx, cancel := h.applyCtx(r)
	defer cancel()
	_, err := h.apply(ctx, &fsm.UpdateTask{
		TaskID: req.TaskID, Status: st, ExitCode: req.ExitCode, Message: req.Message,
		StartedAt: req.StartedAt, CompletedAt: req.CompletedAt, SSHPort: req.SSHPort, At: time.Now().UTC(),
	})
	if err != nil {
		writeError(w, err)
		return
	}
	if st.Final() {
		h.kickScheduler()
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: "Task status updated successfully."})
}

// nodeViews joins committed nodes with accounting and, on the leader, live
// figures.
func (h *Host) nodeViews() []api.NodeView {
	nodes := h.machine.Nodes()
	usage := scheduler.Account(h.machine.Active())
	live := h.liveState()
	out := make([]api.NodeView, 0, len(nodes))
	for _, n := range nodes {
		v := api.NodeView{Node: *n}
		if u := usage[n.Hostname]; u != nil {
			v.CoresInUse, v.MemoryInUseBytes = u.Cores, u.MemoryBytes
		}
		if n.Status == fsm.NodeOnline {
			v.AvailableCores = max(0, n.TotalCores-v.CoresInUse)
		}
		if hb, at, ok := live.get(n.Hostname); ok {
			s := at.Format(time.RFC3339Nano)
			v.LastHeartbeat = &s
			v.CPUPercent, v.MemoryPercent, v.MemoryUsedBytes = hb.CPUPercent, hb.MemoryPercent, hb.MemoryUsedBytes
			v.CurrentAvgTemp, v.CurrentMaxTemp = hb.CurrentAvgTemp, hb.CurrentMaxTemp
			if len(hb.GPUInfo) > 0 {
				v.GPUInfo = hb.GPUInfo
			}
		}
		out = append(out, v)
	}
	return out
}
