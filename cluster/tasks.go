package cluster

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
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

// buildTasks validates a submit request and turns it into tasks (without
// IDs). It reads only the local FSM, which on the leader is up to date.
func (h *Host) buildTasks(req *api.SubmitRequest) ([]*fsm.Task, error) {
	typ := fsm.TaskType(req.TaskType)
	if typ == "" {
		typ = fsm.TaskCommand
	}
	if typ != fsm.TaskCommand && typ != fsm.TaskVPS {
		return nil, badRequest("task_type %q: only 'command' and 'vps' are supported", req.TaskType)
	}
	if typ == fsm.TaskCommand && strings.TrimSpace(req.Command) == "" {
		return nil, badRequest("command: must not be empty")
	}
	cores := 1
	if req.RequiredCores != nil {
		cores = *req.RequiredCores
	}
	if cores < 0 || cores > maxCores {
		return nil, badRequest("required_cores: %d is out of range (0..%d)", cores, maxCores)
	}
	var mem int64
	if req.RequiredMemoryBytes != nil {
		mem = *req.RequiredMemoryBytes
	}
	if mem < 0 || mem > maxMemoryBytes {
		return nil, badRequest("required_memory_bytes: %d is out of range (0..%d)", mem, maxMemoryBytes)
	}
	container := h.cfg.DefaultContainer
	if req.ContainerName != nil && *req.ContainerName != "" {
		container = *req.ContainerName
	}
	if typ == fsm.TaskVPS {
		if container == "NULL" {
			return nil, badRequest("container_name: VPS tasks require a Docker container")
		}
		if len(req.Targets) > 1 {
			return nil, badRequest("targets: VPS tasks cannot be submitted to multiple targets")
		}
	}
	for k := range req.EnvVars {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, badRequest("env_vars: invalid variable name %q", k)
		}
	}
	if len(req.RequiredGPUs) > 0 && len(req.RequiredGPUs) != len(req.Targets) {
		return nil, badRequest("required_gpus: %d GPU lists for %d targets (one list per target; GPUs need a target)", len(req.RequiredGPUs), len(req.Targets))
	}
	targets := req.Targets
	if len(targets) == 0 {
		targets = []string{""}
	}
	tasks := make([]*fsm.Task, 0, len(targets))
	for i, tg := range targets {
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
		}
		if req.Privileged != nil {
			t.Privileged = *req.Privileged
		}
		if typ == fsm.TaskVPS {
			t.Arguments, t.EnvVars = nil, nil
		}
		if tg != "" {
			if err := h.resolveTarget(t, tg); err != nil {
				return nil, err
			}
		}
		if len(req.RequiredGPUs) > 0 {
			for _, g := range req.RequiredGPUs[i] {
				if g < 0 {
					return nil, badRequest("required_gpus: target %q: GPU ID %d is negative", tg, g)
				}
			}
			t.RequiredGPUs = req.RequiredGPUs[i]
		}
		tasks = append(tasks, t)
	}
	return tasks, nil
}

// resolveTarget checks "node[:numa]" against the committed nodes.
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
		if _, ok := node.NUMATopology[m[2]]; !ok {
			return badRequest("target %q: node %s has no NUMA node %d", target, node.Hostname, numa)
		}
		t.TargetNUMANodeID = &numa
	}
	return nil
}

func (h *Host) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var req api.SubmitRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.RequestID == "" {
		req.RequestID = r.Header.Get(requestIDHeader)
	}
	if ids, ok := h.machine.RequestTasks(req.RequestID); ok {
		writeJSON(w, http.StatusAccepted, submitResponse(ids))
		return
	}
	tasks, err := h.buildTasks(&req)
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
	// Reject what the leader's up-to-date FSM already knows is impossible,
	// without writing a log entry; the FSM checks again when applying.
	t, ok := h.machine.Task(id)
	if !ok {
		writeError(w, notFound("task %d not found", id))
		return
	}
	if t.Status.Final() {
		writeError(w, fmt.Errorf("%w: task %d cannot be killed (state: %s)", fsm.ErrConflict, id, t.Status))
		return
	}
	ctx, cancel := h.applyCtx(r)
	defer cancel()
	if _, err := h.apply(ctx, &fsm.KillTask{TaskID: id, Message: "Kill requested by user.", At: time.Now().UTC()}); err != nil {
		writeError(w, err)
		return
	}
	if t.AssignedNode != "" {
		h.notifyKill(t)
	}
	writeJSON(w, http.StatusAccepted, api.MessageResponse{Message: fmt.Sprintf("Kill requested for task %d. Task marked as killed.", id)})
}
