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
	h.liveState().heartbeat(req.Hostname, api.HeartbeatRequest{}, now)
	h.kickScheduler()
	h.log.Info("runner registered", "runner", req.Hostname, "url", req.RunnerURL, "cores", req.TotalCores)
	writeJSON(w, http.StatusOK, api.RegisterResponse{Message: fmt.Sprintf("Runner %s acknowledged.", req.Hostname), ClusterID: h.machine.ClusterID()})
}

// handleHeartbeat keeps live figures in the leader's memory only; it writes
// to the log only for a real state change (node back online, a task lost or
// killed on the runner).
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
	now := time.Now().UTC()
	ctx, cancel := h.applyCtx(r)
	defer cancel()
	live := h.liveState()
	ln := live.heartbeat(name, hb, now)
	if node.Status != fsm.NodeOnline {
		if _, err := h.apply(ctx, &fsm.SetNodeStatus{Hostname: name, Status: fsm.NodeOnline, At: now}); err != nil {
			writeError(w, err)
			return
		}
		h.log.Info("runner back online", "runner", name)
		h.kickScheduler()
	}
	for _, k := range hb.KilledTasks {
		t, ok := h.machine.Task(k.TaskID)
		if !ok || t.Status.Final() {
			continue
		}
		status, code, msg := fsm.StatusFailed, -9, "Killed by runner: "+k.Reason
		if k.Reason == "oom" {
			status = fsm.StatusKilledOOM
		}
		h.applyLogged(ctx, &fsm.UpdateTask{TaskID: k.TaskID, Status: status, ExitCode: &code, Message: &msg, At: now})
	}
	// Reconciliation (invariant 5): kill what the FSM does not place here,
	// lose what the runner keeps omitting.
	active := h.machine.Active()
	var rec scheduler.Reconciliation
	live.reconcile(ln, func(missing map[int64]int) map[int64]int {
		rec = scheduler.Reconcile(name, active, scheduler.Report{Running: hb.RunningTasks, Partial: hb.Partial}, missing)
		return rec.Missing
	})
	for _, id := range rec.Lost {
		code, msg := -1, fmt.Sprintf("Runner %s no longer reports this task.", name)
		h.log.Warn("task lost: runner no longer reports it", "task_id", id, "runner", name)
		h.applyLogged(ctx, &fsm.UpdateTask{TaskID: id, Status: fsm.StatusLost, ExitCode: &code, Message: &msg, At: now})
	}
	writeJSON(w, http.StatusOK, api.HeartbeatResponse{Message: "Heartbeat received", Kill: rec.Kill})
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
		if hb, at, ok := live.get(n.Hostname); ok && h.IsLeader() {
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

// sampleHealth appends one health sample (leader only, once a second).
func (h *Host) sampleHealth(now time.Time) {
	live := h.liveState()
	var s healthSample
	s.aggregate.LastUpdated = now
	var cpuWeighted float64
	for _, n := range h.machine.Nodes() {
		nh := api.NodeHealth{Hostname: n.Hostname, Status: string(n.Status), MemoryTotalBytes: n.MemoryTotalBytes,
			TotalCores: n.TotalCores, NUMATopology: n.NUMATopology, GPUInfo: n.GPUInfo}
		if hb, at, ok := live.get(n.Hostname); ok {
			at := at
			nh.LastHeartbeat = &at
			nh.CPUPercent, nh.MemoryPercent, nh.MemoryUsedBytes = hb.CPUPercent, hb.MemoryPercent, hb.MemoryUsedBytes
			nh.CurrentAvgTemp, nh.CurrentMaxTemp = hb.CurrentAvgTemp, hb.CurrentMaxTemp
			if len(hb.GPUInfo) > 0 {
				nh.GPUInfo = hb.GPUInfo
			}
			if at.After(s.aggregate.LastUpdated) {
				s.aggregate.LastUpdated = at
			}
		}
		a := &s.aggregate
		a.TotalNodes++
		if n.Status == fsm.NodeOnline {
			a.OnlineNodes++
		}
		a.TotalCores += n.TotalCores
		a.TotalMemBytes += n.MemoryTotalBytes
		if nh.MemoryUsedBytes != nil {
			a.UsedMemBytes += *nh.MemoryUsedBytes
		}
		if nh.CPUPercent != nil {
			cpuWeighted += *nh.CPUPercent * float64(n.TotalCores)
		}
		if nh.CurrentAvgTemp != nil {
			a.MaxAvgCPUTemp = max(a.MaxAvgCPUTemp, *nh.CurrentAvgTemp)
		}
		if nh.CurrentMaxTemp != nil {
			a.MaxMaxCPUTemp = max(a.MaxMaxCPUTemp, *nh.CurrentMaxTemp)
		}
		s.nodes = append(s.nodes, nh)
	}
	s.aggregate.AvgCPUPercent = cpuWeighted / float64(max(1, s.aggregate.TotalCores))
	s.aggregate.AvgMemPercent = float64(s.aggregate.UsedMemBytes) / float64(max(1, s.aggregate.TotalMemBytes)) * 100
	live.addSample(s)
}
