package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Task access through any replica: `hakuriver forward` (GET
// /api/task/{id}/forward?port=N, upgraded to a raw stream) and `hakuriver
// cp` (PUT and GET /api/task/{id}/files?path=P, a tar stream). The caller
// is checked (role by the route table, owner or operator here) before
// anything reaches the runner; the runner is found in this replica's own
// state (taskstream.go), so the leader plays no part in the stream. Each
// session is recorded in the audit log once it ends.

// Session actions in the audit log.
const (
	actionForward  = "forward"
	actionCopyTo   = "cp-to"
	actionCopyFrom = "cp-from"
)

// maxCopyPath bounds the path of a copy.
const maxCopyPath = 4096

// accessTask reads the task of the request and checks that its caller may
// reach into it.
func (h *Host) accessTask(r *http.Request, what string) (*fsm.Task, auth.Principal, error) {
	p, _ := auth.FromContext(r.Context())
	id, err := httpapi.ParseTaskID(chi.URLParam(r, "id"))
	if err != nil {
		return nil, p, err
	}
	t, ok := h.machine.Task(id)
	if !ok || !runningStatus(t.Status) {
		// This replica may lag behind the leader (a task just started):
		// the leader's view, when there is a leader to ask.
		if lt, err := h.leaderTask(r.Context(), id); err == nil {
			t, ok = lt, true
		}
	}
	if !ok {
		return nil, p, notFound("task %d not found", id)
	}
	if err := httpapi.MayActOn(p, t, what); err != nil {
		return nil, p, err
	}
	return t, p, nil
}

// leaderLookupBound bounds asking the leader for a task.
const leaderLookupBound = 3 * time.Second

func runningStatus(s fsm.Status) bool { return s == fsm.StatusRunning || s == fsm.StatusPaused }

// leaderTask reads task id from the leader (after its Barrier); an error
// when this replica leads (its own state is the answer), when no leader
// is known or it does not answer within leaderLookupBound.
func (h *Host) leaderTask(ctx context.Context, id int64) (*fsm.Task, error) {
	lid, base := h.leaderInfo()
	if lid == "" || base == "" || lid == h.cfg.NodeID {
		return nil, ErrNoLeader
	}
	ctx, cancel := context.WithTimeout(ctx, leaderLookupBound)
	defer cancel()
	t, err := h.replicas.Task(ctx, base, id)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// handleForward connects the caller's stream to a port inside the task,
// through its runner.
func (h *Host) handleForward(w http.ResponseWriter, r *http.Request) {
	t, p, err := h.accessTask(r, "forward a port of")
	if err != nil {
		writeError(w, err)
		return
	}
	raw := r.URL.Query().Get("port")
	port, err := strconv.Atoi(raw)
	if err != nil || port < 1 || port > 65535 || raw[0] == '+' {
		writeError(w, badRequest("port %q: must be a number from 1 to 65535", raw))
		return
	}
	if r.URL.Query().Get("check") == "1" {
		// The CLI's check before it listens: may this caller forward,
		// and does the task run somewhere? Nothing is opened.
		if _, err := h.taskRunner(t); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("task %d port %d can be forwarded", t.TaskID, port)})
		return
	}
	if !api.IsStreamRequest(r) {
		writeError(w, badRequest("forward: needs the headers Connection: Upgrade and Upgrade: %s", api.StreamProtocol))
		return
	}
	target, err := h.dialTaskStream(r.Context(), t, fmt.Sprintf("/tasks/%d/forward?port=%d", t.TaskID, port))
	if err != nil {
		writeError(w, err)
		return
	}
	conn, err := api.AcceptStream(w)
	if err != nil {
		target.Close()
		h.log.Info("forward: the caller went away", "task_id", t.TaskID, "port", port, "err", err)
		return
	}
	end := h.beginStream(p, actionForward, r.Header.Get(api.SessionHeader), fmt.Sprintf("task %d port %d", t.TaskID, port))
	defer end()
	api.Pipe(conn, target)
}

// copyPathParam reads and checks the path of a copy.
func copyPathParam(r *http.Request) (string, error) {
	p := r.URL.Query().Get("path")
	switch {
	case p == "":
		return "", badRequest("path: required (a path in the task, absolute or relative to its working directory)")
	case len(p) > maxCopyPath:
		return "", badRequest("path: longer than %d bytes", maxCopyPath)
	case strings.ContainsRune(p, 0):
		return "", badRequest("path: contains a NUL byte")
	}
	return p, nil
}

// handlePutFiles streams the request's tar body into the task at path.
func (h *Host) handlePutFiles(w http.ResponseWriter, r *http.Request) {
	t, p, err := h.accessTask(r, "copy files into")
	if err != nil {
		writeError(w, err)
		return
	}
	path, err := copyPathParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	start := time.Now()
	resp, err := h.taskRunnerRequest(r.Context(), t, http.MethodPut, filesPath(t.TaskID, path), r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	defer resp.Body.Close()
	h.recordSession(p, actionCopyTo, fmt.Sprintf("task %d path %s", t.TaskID, path), start, time.Now(), 1)
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("copied into %s in task %d", path, t.TaskID)})
}

// handleGetFiles streams a tar of path in the task to the caller.
func (h *Host) handleGetFiles(w http.ResponseWriter, r *http.Request) {
	t, p, err := h.accessTask(r, "copy files from")
	if err != nil {
		writeError(w, err)
		return
	}
	path, err := copyPathParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	start := time.Now()
	resp, err := h.taskRunnerRequest(r.Context(), t, http.MethodGet, filesPath(t.TaskID, path), nil)
	if err != nil {
		writeError(w, err)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, resp.Body); err != nil {
		h.log.Info("copy from a task ended early", "task_id", t.TaskID, "err", err)
	}
	h.recordSession(p, actionCopyFrom, fmt.Sprintf("task %d path %s", t.TaskID, path), start, time.Now(), 1)
}

func filesPath(id int64, path string) string {
	return fmt.Sprintf("/tasks/%d/files?path=%s", id, url.QueryEscape(path))
}

// sessionRecordBound bounds the attempts to record one session: a leader
// may have to be elected first.
const sessionRecordBound = 30 * time.Second

// sendSessionRecord records rec on the leader: here when this replica
// leads, else through the leader's internal endpoint.
func (h *Host) sendSessionRecord(rec api.SessionRecord) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if h.currentLeader() != nil {
		return h.applySessionRecord(ctx, rec)
	}
	lid, base := h.leaderInfo()
	if lid == "" || base == "" || lid == h.cfg.NodeID {
		return ErrNoLeader
	}
	return h.replicas.RecordSession(ctx, base, rec)
}

// applySessionRecord commits rec as an audit record of its user (on the
// leader).
func (h *Host) applySessionRecord(ctx context.Context, rec api.SessionRecord) error {
	if err := h.commandKnown(fsm.CmdRecord); err != nil {
		return nil // a replica cannot read audit records yet: nothing to keep
	}
	ctx = auth.WithPrincipal(ctx, auth.Principal{Kind: auth.Account, Name: rec.User, Role: fsm.Role(rec.Role)})
	ctx = context.WithValue(ctx, originKey{}, origin{via: rec.Via})
	ctx = context.WithValue(ctx, noteKey{}, note{action: rec.Action, target: rec.Target})
	_, err := h.apply(ctx, &fsm.Record{})
	return err
}

// handleSessionRecord is the leader's side of sendSessionRecord (cluster
// token only).
func (h *Host) handleSessionRecord(w http.ResponseWriter, r *http.Request) {
	var rec api.SessionRecord
	if err := decodeJSON(r, &rec); err != nil {
		writeError(w, err)
		return
	}
	switch {
	case rec.Action != actionForward && rec.Action != actionCopyTo && rec.Action != actionCopyFrom:
		writeError(w, badRequest("action %q: must be %s, %s or %s", rec.Action, actionForward, actionCopyTo, actionCopyFrom))
		return
	case rec.User == "" || len(rec.User) > 256:
		writeError(w, badRequest("user: required, at most 256 bytes"))
		return
	case len(rec.Target) > maxCopyPath+256 || len(rec.Via) > 256 || len(rec.Role) > 32:
		writeError(w, badRequest("target, via or role: too long"))
		return
	}
	if _, known := h.pool.Member(rec.Via); !known {
		rec.Via = h.cfg.NodeID
	}
	ctx, cancel := h.applyCtx(r)
	defer cancel()
	if err := h.applySessionRecord(ctx, rec); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: "recorded"})
}
