package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// notifyKill tells the task's runner to kill it, in the background. If the
// runner cannot be reached, the next heartbeat that still lists the task gets
// it in its kill list (invariant 5).
func (h *Host) notifyKill(t *fsm.Task) {
	node, ok := h.machine.Node(t.AssignedNode)
	if !ok || node.Status != fsm.NodeOnline {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ref := api.TaskRef{TaskID: t.TaskID, UnitName: t.SystemdUnitName}
		if err := h.runners.Kill(ctx, node.URL, ref); err != nil {
			h.log.Warn("kill on runner; the next heartbeat will retry", "task_id", t.TaskID, "runner", node.Hostname, "err", err)
		}
	}()
}

// handleCommand serves POST /api/command/{id}/{pause|resume}: the leader
// asks the runner, which reports the new status through /api/update.
func (h *Host) handleCommand(w http.ResponseWriter, r *http.Request) {
	id, err := parseTaskID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, err)
		return
	}
	action := chi.URLParam(r, "action")
	want := map[string]fsm.Status{"pause": fsm.StatusRunning, "resume": fsm.StatusPaused}[action]
	if want == "" {
		writeError(w, badRequest("action %q: unknown action (want pause or resume)", action))
		return
	}
	if err := noBody(r); err != nil {
		writeError(w, err)
		return
	}
	t, ok := h.machine.Task(id)
	if !ok {
		writeError(w, notFound("task %d not found", id))
		return
	}
	if t.Status != want {
		writeError(w, fmt.Errorf("%w: cannot %s task %d in state %s", fsm.ErrConflict, action, id, t.Status))
		return
	}
	node, ok := h.machine.Node(t.AssignedNode)
	if !ok || node.Status != fsm.NodeOnline {
		writeError(w, &httpError{status: http.StatusConflict, msg: fmt.Sprintf("runner %s of task %d is offline", t.AssignedNode, id)})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	call := h.runners.Pause
	if action == "resume" {
		call = h.runners.Resume
	}
	if err := call(ctx, node.URL, id); err != nil {
		writeError(w, &httpError{status: http.StatusBadGateway, msg: fmt.Sprintf("%s task %d on %s: %v", action, id, node.Hostname, err)})
		return
	}
	// The runner reports the status change itself; mirror it right away so
	// the caller sees it, idempotently.
	st := map[string]fsm.Status{"pause": fsm.StatusPaused, "resume": fsm.StatusRunning}[action]
	if _, err := h.apply(ctx, &fsm.UpdateTask{TaskID: id, Status: st, At: time.Now().UTC()}); err != nil && !errors.Is(err, fsm.ErrConflict) {
		writeError(w, err)
		return
	}
	label := map[string]string{"pause": "Pause", "resume": "Resume"}[action]
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("%s for task %d sent to runner: %s command sent successfully.", label, id, action)})
}

// handleLog serves GET /api/task/{id}/stdout|stderr from this replica's
// shared_dir. ?offset=N returns the bytes from N on (for --follow); the
// X-Hakuriver-Offset header gives the offset to ask for next.
func (h *Host) handleLog(stream string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
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
		if t.TaskType == fsm.TaskVPS {
			writeError(w, badRequest("VPS tasks do not have %s.", stream))
			return
		}
		dir, src := "task_outputs", t.StdoutPath
		if stream == "stderr" {
			dir, src = "task_errors", t.StderrPath
		}
		path := filepath.Join(h.cfg.SharedDir, dir, filepath.Base(src))
		var offset int64
		if o := r.URL.Query().Get("offset"); o != "" {
			if offset, err = strconv.ParseInt(o, 10, 64); err != nil || offset < 0 {
				writeError(w, badRequest("offset %q: must be a non-negative integer", o))
				return
			}
		}
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			w.Header().Set("X-Hakuriver-Offset", "0")
			writeError(w, notFound("%s file of task %d not found (might not be generated yet)", stream, id))
			return
		}
		if err != nil {
			writeError(w, fmt.Errorf("open %s: %w", stream, err))
			return
		}
		defer f.Close()
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			writeError(w, fmt.Errorf("seek %s: %w", stream, err))
			return
		}
		data, err := io.ReadAll(io.LimitReader(f, 64<<20))
		if err != nil {
			writeError(w, fmt.Errorf("read %s: %w", stream, err))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Hakuriver-Offset", strconv.FormatInt(offset+int64(len(data)), 10))
		w.Header().Set("X-Hakuriver-Task-Status", string(t.Status))
		w.WriteHeader(http.StatusOK)
		w.Write(data) //nolint:errcheck // the client went away
	}
}

// leaderView serves a read from the leader when one is known, because only
// the leader holds live runner figures; it falls back to the local replica.
func (h *Host) leaderView(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.IsLeader() && r.Header.Get(api.ForwardedHeader) == "" {
			if id, url := h.leaderInfo(); id != "" && id != h.cfg.NodeID && url != "" {
				if h.forward(w, r, url, nil) {
					return
				}
			}
		}
		next(w, r)
	}
}

// handleDrain serves POST /api/nodes/{name}/drain and /undrain: a drained
// node takes no new placements; its running work finishes.
func (h *Host) handleDrain(drain bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		if err := noBody(r); err != nil {
			writeError(w, err)
			return
		}
		if _, ok := h.machine.Node(name); !ok {
			writeError(w, notFound("node %q not registered", name))
			return
		}
		ctx, cancel := h.applyCtx(r)
		defer cancel()
		if _, err := h.apply(ctx, &fsm.SetNodeDrain{Hostname: name, Drained: drain}); err != nil {
			writeError(w, err)
			return
		}
		h.kickScheduler()
		verb := "drained: no new placements"
		if !drain {
			verb = "undrained: accepting placements"
		}
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("Node %s %s.", name, verb)})
	}
}

// handleQueue serves GET /api/queue: pending tasks in queue order with the
// reason each waits, computed by the scheduler from committed state.
func (h *Host) handleQueue(w http.ResponseWriter, r *http.Request) {
	active := h.machine.Active()
	res := scheduler.Plan(scheduler.View{Nodes: h.machine.Nodes(), Active: active, Lookup: h.machine.Task})
	reasons := map[int64]string{}
	for _, d := range res.Waiting {
		reasons[d.TaskID] = d.Reason
	}
	for _, d := range res.Failed {
		reasons[d.TaskID] = "will fail: " + d.Reason
	}
	for _, p := range res.Placements {
		reasons[p.TaskID] = "being placed on " + p.Node
	}
	var pending []*fsm.Task
	for _, t := range active {
		if t.Status == fsm.StatusPending {
			pending = append(pending, t)
		}
	}
	scheduler.Order(pending)
	out := make([]api.QueueEntry, 0, len(pending))
	for _, t := range pending {
		out = append(out, api.QueueEntry{
			TaskID: strconv.FormatInt(t.TaskID, 10), Priority: t.Priority, Command: t.Command,
			TargetNode: t.TargetNode, Reason: reasons[t.TaskID], SubmittedAt: t.SubmittedAt.Format(time.RFC3339),
		})
	}
	writeJSON(w, http.StatusOK, out)
}
