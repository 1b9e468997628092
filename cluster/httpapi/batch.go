package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// maxBatchTasks bounds the tasks one batch action reads (a batch holds at
// most maxArray tasks per target).
const maxBatchTasks = 100000

// batchWorkers bounds the actions of one batch call in flight at once.
const batchWorkers = 32

// Batch serves POST /api/batch/{id}/{kill|pause|resume} on the leader: the
// action on every task of the batch it applies to (kill: every task not yet
// final; pause: the running ones; resume: the paused ones). The caller must
// be allowed to act on every task of the batch (its owner, or an
// operator), else nothing is done. The answer lists the tasks acted on and
// those whose action failed.
func (a *API) Batch(w http.ResponseWriter, r *http.Request) {
	id, err := ParseTaskID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, err)
		return
	}
	action := chi.URLParam(r, "action")
	if action != "kill" && action != "pause" && action != "resume" {
		writeError(w, badRequest("action %q: unknown action (want kill, pause or resume)", action))
		return
	}
	if err := noBody(r); err != nil {
		writeError(w, err)
		return
	}
	reqID := r.Header.Get(api.RequestIDHeader)
	if err := checkRequestID(reqID); err != nil {
		writeError(w, err)
		return
	}
	tasks, _ := a.d.Tasks.Tasks(fsm.Filter{Batch: id}, 0, maxBatchTasks)
	if len(tasks) == 0 {
		writeError(w, notFound("batch %d not found", id))
		return
	}
	p := principal(r)
	for _, t := range tasks {
		if err := mayActOn(p, t, action); err != nil {
			writeError(w, err)
			return
		}
	}
	out := api.BatchActionResponse{BatchID: strconv.FormatInt(id, 10), Acted: []string{}}
	var todo []*fsm.Task
	for _, t := range tasks {
		switch {
		case action == "kill" && !t.Done(),
			action == "pause" && t.Status == fsm.StatusRunning,
			action == "resume" && t.Status == fsm.StatusPaused:
			todo = append(todo, t)
		}
	}
	// Several at once: the leader batches concurrent proposals into one
	// log write, so a batch of thousands is killed in a few round trips.
	errs := make([]error, len(todo))
	sem := make(chan struct{}, batchWorkers)
	var wg sync.WaitGroup
	for i, t := range todo {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if action == "kill" {
				errs[i] = a.killOne(r.Context(), t.TaskID, reqID)
			} else {
				errs[i] = a.pauseResume(r.Context(), t, action)
			}
		}()
	}
	wg.Wait()
	for i, t := range todo {
		tid := strconv.FormatInt(t.TaskID, 10)
		switch err := errs[i]; {
		case errors.Is(err, fsm.ErrConflict):
			// It ended meanwhile: nothing to do.
		case err != nil:
			out.Failed = append(out.Failed, api.FailedTask{TaskID: tid, Reason: err.Error()})
		default:
			out.Acted = append(out.Acted, tid)
		}
	}
	verb := map[string]string{"kill": "Kill requested", "pause": "Pause sent", "resume": "Resume sent"}[action]
	out.Message = fmt.Sprintf("%s for %d of the %d tasks of batch %d.", verb, len(out.Acted), len(tasks), id)
	if len(out.Failed) > 0 {
		out.Message += fmt.Sprintf(" %d failed.", len(out.Failed))
	}
	writeJSON(w, http.StatusOK, out)
}

// killOne marks task id killed (idempotently for a retried reqID) and
// tells its runner, if it has one by then.
func (a *API) killOne(ctx context.Context, id int64, reqID string) error {
	if reqID != "" {
		reqID = fmt.Sprintf("%s/%d", reqID, id)
		if len(reqID) > api.MaxRequestIDBytes {
			reqID = ""
		}
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := a.d.Proposer.Propose(actx, &fsm.KillTask{TaskID: id, Message: "Kill requested by user (batch).", At: a.now().UTC(), RequestID: reqID}); err != nil {
		return err
	}
	if t, ok := a.d.Tasks.Task(id); ok && t.AssignedNode != "" && !t.NoRetry {
		a.d.Runners.NotifyKill(t) // not for a task killed between attempts: nothing runs
	}
	return nil
}

// pauseResume asks t's runner to pause or resume it and mirrors the new
// status in the log.
func (a *API) pauseResume(ctx context.Context, t *fsm.Task, action string) error {
	node, ok := a.d.Nodes.Node(t.AssignedNode)
	if !ok || node.Status != fsm.NodeOnline {
		return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("runner %s of task %d is offline", t.AssignedNode, t.TaskID)}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	call := a.d.Runners.Pause
	if action == "resume" {
		call = a.d.Runners.Resume
	}
	if err := call(ctx, node.URL, t.TaskID); err != nil {
		return &httpError{status: http.StatusBadGateway, msg: fmt.Sprintf("%s task %d on %s: %v", action, t.TaskID, node.Hostname, err)}
	}
	st := map[string]fsm.Status{"pause": fsm.StatusPaused, "resume": fsm.StatusRunning}[action]
	if _, err := a.d.Proposer.Propose(ctx, &fsm.UpdateTask{TaskID: t.TaskID, Status: st, At: a.now().UTC()}); err != nil && !errors.Is(err, fsm.ErrConflict) {
		return err
	}
	return nil
}
