package cluster

import (
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

// Task access through any replica: `hakuriver task exec` (GET
// /api/task/{id}/exec, a WebSocket: httpapi/exec.go), `hakuriver forward` (GET
// /api/task/{id}/forward?port=N, upgraded to a raw stream) and `hakuriver
// cp` (PUT and GET /api/task/{id}/files?path=P, a tar stream). The caller
// is checked (role by the route table, owner or operator here) before
// anything reaches the runner; the runner is found in this replica's own
// state (taskrunner.go), so the leader plays no part in the stream. Each
// session is recorded in the audit log once it ends.

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
	t, ok := h.FindTask(r.Context(), id)
	if !ok {
		return nil, p, notFound("task %d not found", id)
	}
	if err := httpapi.MayActOn(p, t, what); err != nil {
		return nil, p, err
	}
	return t, p, nil
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
	end := h.beginStream(p, api.SessionForward, r.Header.Get(api.SessionHeader), t.TaskID, fmt.Sprintf("port %d", port))
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

// copyRequest checks a copy's caller (accessTask) and path.
func (h *Host) copyRequest(r *http.Request, what string) (*fsm.Task, auth.Principal, string, error) {
	t, p, err := h.accessTask(r, what)
	if err != nil {
		return nil, p, "", err
	}
	path, err := copyPathParam(r)
	if err != nil {
		return nil, p, "", err
	}
	return t, p, path, nil
}

// handlePutFiles streams the request's tar body into the task at path.
func (h *Host) handlePutFiles(w http.ResponseWriter, r *http.Request) {
	t, p, path, err := h.copyRequest(r, "copy files into")
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
	h.recordSession(p, api.SessionCopyTo, t.TaskID, "path "+path, start, time.Now(), 1)
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("copied into %s in task %d", path, t.TaskID)})
}

// handleGetFiles streams a tar of path in the task to the caller.
func (h *Host) handleGetFiles(w http.ResponseWriter, r *http.Request) {
	t, p, path, err := h.copyRequest(r, "copy files from")
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
	h.recordSession(p, api.SessionCopyFrom, t.TaskID, "path "+path, start, time.Now(), 1)
}

func filesPath(id int64, path string) string {
	return fmt.Sprintf("/tasks/%d/files?path=%s", id, url.QueryEscape(path))
}

// newExecAPI returns the exec handler: tasks found as for a forward
// (FindTask), runners reached with the cluster's client, sessions
// recorded by RecordSession.
func (h *Host) newExecAPI() *httpapi.ExecAPI {
	return &httpapi.ExecAPI{
		NodeID: h.cfg.NodeID, Tasks: h, Nodes: h.machine,
		Streams: h.runnerClient(), Audit: h, Log: h.log.With("component", "exec"),
	}
}
