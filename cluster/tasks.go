package cluster

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// maxMemoryBytes bounds required_memory_bytes (1 PiB): anything larger is a
// typo, not a lab machine.
const maxMemoryBytes = int64(1) << 50

// maxCores bounds required_cores.
const maxCores = 1 << 16

var targetRE = regexp.MustCompile(`^([a-zA-Z0-9._-]+)(?::(\d+))?$`)

func allStatusNames() []fsm.Status { return fsm.AllStatuses() }

// applyTimeout bounds one proposal.
func (h *Host) applyCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}

// buildTasks turns a submit request that validateSubmit accepted into tasks
// (without IDs), checking what depends on the cluster's state. It reads
// only the local FSM, which on the leader is up to date.
func (h *Host) buildTasks(req *api.SubmitRequest) ([]*fsm.Task, error) {
	typ := fsm.TaskType(req.TaskType)
	if typ == "" {
		typ = fsm.TaskCommand
	}
	cores := 1
	if req.RequiredCores != nil {
		cores = *req.RequiredCores
	}
	var mem int64
	if req.RequiredMemoryBytes != nil {
		mem = *req.RequiredMemoryBytes
	}
	container := h.cfg.DefaultContainer
	if req.ContainerName != nil && *req.ContainerName != "" {
		container = *req.ContainerName
		// An environment named explicitly must exist; the default one is
		// checked by the runner when it syncs (it may be created later).
		if err := h.checkEnvironment(container); err != nil {
			return nil, err
		}
	}
	if typ == fsm.TaskVPS && environment.IsNative(container) {
		return nil, badRequest("container_name: VPS tasks require a Docker container")
	}
	var after fsm.IDList
	for _, a := range req.After {
		id, err := parseTaskID(a)
		if err != nil {
			return nil, err
		}
		if _, ok := h.machine.Task(id); !ok {
			return nil, badRequest("after: task %d does not exist", id)
		}
		after = append(after, id)
	}
	indexes, throttle := []int{-1}, 0
	if req.Array != "" {
		var err error
		if indexes, throttle, err = parseArray(req.Array); err != nil {
			return nil, badRequest("%v", err)
		}
	}
	targets := req.Targets
	if len(targets) == 0 {
		targets = []string{""}
	}
	if err := checkStoredSize(req, len(targets)*len(indexes)); err != nil {
		return nil, err
	}
	tasks := make([]*fsm.Task, 0, len(targets)*len(indexes))
	for i, tg := range targets {
		for _, idx := range indexes {
			t := &fsm.Task{
				TaskType:            typ,
				Command:             req.Command,
				Arguments:           req.Arguments,
				EnvVars:             req.EnvVars,
				WorkDir:             req.WorkDir,
				RequiredCores:       cores,
				RequiredMemoryBytes: mem,
				Status:              fsm.StatusPending,
				ContainerName:       container,
				AdditionalMounts:    req.AdditionalMounts,
				Priority:            req.Priority,
				GPUCount:            req.GPUCount,
				TimeLimitSeconds:    req.TimeLimitSeconds,
				After:               after,
				ArrayThrottle:       throttle,
			}
			if idx >= 0 {
				v := idx
				t.ArrayIndex = &v
			}
			t.Privileged = h.cfg.TasksPrivileged
			if req.Privileged != nil {
				t.Privileged = *req.Privileged
			}
			if req.AdditionalMounts == nil {
				t.AdditionalMounts = h.cfg.AdditionalMounts // the original: the request replaces, never merges
			}
			if typ == fsm.TaskVPS {
				t.Arguments, t.EnvVars = nil, nil
			}
			if len(req.RequiredGPUs) > 0 {
				t.RequiredGPUs = req.RequiredGPUs[i]
			}
			if tg != "" {
				if err := h.resolveTarget(t, tg); err != nil {
					return nil, err
				}
			} else if err := h.checkCapacity(t); err != nil {
				return nil, err
			}
			tasks = append(tasks, t)
		}
	}
	return tasks, nil
}

// resolveTarget checks "node[:numa]" against the committed nodes and
// refuses a target that could never hold t (scheduler.Limit).
func (h *Host) resolveTarget(t *fsm.Task, target string) error {
	m := targetRE.FindStringSubmatch(target)
	if m == nil {
		return badRequest("target %q: expected HOST or HOST:NUMA_ID", target)
	}
	node, ok := h.machine.Node(m[1])
	if !ok {
		return badRequest("target %q: unknown node %q", target, m[1])
	}
	t.TargetNode = node.Hostname
	if m[2] != "" {
		numa, err := strconv.Atoi(m[2])
		if err != nil {
			return badRequest("target %q: invalid NUMA ID", target)
		}
		t.TargetNUMANodeID = &numa
	}
	if reason := scheduler.Limit(t, node); reason != "" {
		return badRequest("target %q: %s", target, reason)
	}
	return nil
}

// checkCapacity rejects untargeted work that no registered node could ever
// hold, naming the largest node. With no node registered, work waits.
func (h *Host) checkCapacity(t *fsm.Task) error {
	nodes := h.machine.Nodes()
	if len(nodes) == 0 {
		return nil
	}
	var largest *fsm.Node
	for _, n := range nodes {
		if scheduler.Capacity(t, n) {
			return nil
		}
		if largest == nil || n.TotalCores > largest.TotalCores ||
			n.TotalCores == largest.TotalCores && n.MemoryTotalBytes > largest.MemoryTotalBytes {
			largest = n
		}
	}
	return badRequest("no registered node can ever hold this task (%d cores, %d bytes of memory, %d GPUs); the largest node, %s, has %d cores, %d bytes of memory and %d GPUs",
		t.RequiredCores, t.RequiredMemoryBytes, t.GPUCount, largest.Hostname, largest.TotalCores, largest.MemoryTotalBytes, len(largest.GPUInfo))
}

// handleSubmit serves POST /api/submit on the leader, behind checkSubmit.
func (h *Host) handleSubmit(w http.ResponseWriter, r *http.Request) {
	req, err := submitRequest(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if req.RequestID == "" {
		req.RequestID = r.Header.Get(requestIDHeader)
		if err := checkRequestID(req.RequestID); err != nil {
			writeError(w, err)
			return
		}
	}
	if ids, ok := h.machine.RequestTasks(req.RequestID); ok {
		writeJSON(w, http.StatusAccepted, submitResponse(ids))
		return
	}
	tasks, err := h.buildTasks(req)
	if err != nil {
		writeError(w, err)
		return
	}
	now := time.Now().UTC()
	floor := h.machine.MaxTaskID()
	for i, t := range tasks {
		t.TaskID = h.ids.next(floor)
		t.BatchID = tasks[0].TaskID
		t.SubmittedAt = now
		idStr := strconv.FormatInt(t.TaskID, 10)
		t.StdoutPath = filepath.Join(h.cfg.SharedDir, "task_outputs", idStr+".out")
		t.StderrPath = filepath.Join(h.cfg.SharedDir, "task_errors", idStr+".err")
		t.SystemdUnitName = "hakuriver-task-" + idStr + ".scope"
		if len(tasks) == 1 {
			t.BatchID = 0
		}
		tasks[i] = t
	}
	ctx, cancel := h.applyCtx(r)
	defer cancel()
	v, err := h.apply(ctx, &fsm.SubmitTasks{RequestID: req.RequestID, Tasks: tasks})
	if err != nil {
		writeError(w, err)
		return
	}
	// Place the new work now rather than at the next scheduling tick.
	h.kickScheduler()
	writeJSON(w, http.StatusAccepted, submitResponse(v.(fsm.SubmitResult).TaskIDs))
}

func submitResponse(ids []int64) api.SubmitResponse {
	out := api.SubmitResponse{
		Message: fmt.Sprintf("Task batch submitted successfully. %d tasks created.", len(ids)),
		TaskIDs: make([]string, len(ids)),
	}
	for i, id := range ids {
		out.TaskIDs[i] = strconv.FormatInt(id, 10)
	}
	return out
}

func (h *Host) handleStatus(w http.ResponseWriter, r *http.Request) {
	id, err := parseTaskID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, err)
		return
	}
	t, ok := h.machine.Task(id)
	if !ok {
		writeError(w, notFound("task %d not found", id))
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (h *Host) handleTasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := fsm.Filter{Status: fsm.Status(q.Get("status")), Node: q.Get("node"), Type: fsm.TaskType(q.Get("type"))}
	if f.Status != "" && !f.Status.Valid() {
		writeError(w, badRequest("status %q: unknown status", f.Status))
		return
	}
	if f.Type != "" && f.Type != fsm.TaskCommand && f.Type != fsm.TaskVPS {
		writeError(w, badRequest("type %q: unknown task type (want command or vps)", f.Type))
		return
	}
	if b := q.Get("batch"); b != "" {
		id, err := parseTaskID(b)
		if err != nil {
			writeError(w, badRequest("batch %q: must be a positive decimal integer", b))
			return
		}
		f.Batch = id
	}
	var after int64
	if a := q.Get("after"); a != "" {
		id, err := parseTaskID(a)
		if err != nil {
			writeError(w, badRequest("after %q: must be a positive decimal integer", a))
			return
		}
		after = id
	}
	limit := h.cfg.MaxListTasks
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100000 {
			writeError(w, badRequest("limit %q: must be an integer between 1 and 100000", l))
			return
		}
		limit = n
	}
	tasks, more := h.machine.Tasks(f, after, limit)
	if more && len(tasks) > 0 {
		w.Header().Set(api.MoreHeader, "true")
		w.Header().Set(api.NextAfterHeader, strconv.FormatInt(tasks[len(tasks)-1].TaskID, 10))
	}
	if tasks == nil {
		tasks = []*fsm.Task{}
	}
	writeJSON(w, http.StatusOK, tasks)
}

func (h *Host) handleKill(w http.ResponseWriter, r *http.Request) {
	id, err := parseTaskID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, err)
		return
	}
	reqID := r.Header.Get(requestIDHeader)
	if err := checkRequestID(reqID); err != nil {
		writeError(w, err)
		return
	}
	if err := noBody(r); err != nil {
		writeError(w, err)
		return
	}
	// Reject what the leader's up-to-date FSM already knows is impossible,
	// without writing a log entry; the FSM checks again when applying.
	t, ok := h.machine.Task(id)
	if !ok {
		writeError(w, notFound("task %d not found", id))
		return
	}
	if t.Status == fsm.StatusKilled && reqID != "" && t.KillRequestID == reqID {
		// A retry of a kill that already committed (e.g. forwarded again
		// after a leader change): same answer as the first time.
		writeJSON(w, http.StatusAccepted, api.MessageResponse{Message: fmt.Sprintf("Kill requested for task %d. Task marked as killed.", id)})
		return
	}
	if t.Status.Final() {
		writeError(w, fmt.Errorf("%w: task %d cannot be killed (state: %s)", fsm.ErrConflict, id, t.Status))
		return
	}
	ctx, cancel := h.applyCtx(r)
	defer cancel()
	if _, err := h.apply(ctx, &fsm.KillTask{TaskID: id, Message: "Kill requested by user.", At: time.Now().UTC(), RequestID: reqID}); err != nil {
		writeError(w, err)
		return
	}
	if t.AssignedNode != "" {
		h.notifyKill(t)
	}
	writeJSON(w, http.StatusAccepted, api.MessageResponse{Message: fmt.Sprintf("Kill requested for task %d. Task marked as killed.", id)})
}
