package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/gorilla/websocket"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/cluster/taskstream"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// RunnerStreams opens authenticated WebSockets to runners
// (taskstream.Client is one).
type RunnerStreams interface {
	Dial(ctx context.Context, base, path string, q url.Values) (*websocket.Conn, error)
}

// SessionAuditor records task access sessions in the audit log.
// RecordSession must not block: it hands the record on (to the leader) in
// the background.
type SessionAuditor interface {
	RecordSession(rec api.SessionRecord)
}

// TaskFinder finds a task for a session: in this replica's state, or the
// leader's view of a task not yet seen running here.
type TaskFinder interface {
	FindTask(ctx context.Context, id int64) (*fsm.Task, bool)
}

// ExecAPI serves GET /api/task/{id}/exec: a command (or a shell) inside a
// running task, streamed over a WebSocket to the task's runner. Every check
// happens before the upgrade, from this replica's local state alone, so a
// session opens and goes on whoever leads.
type ExecAPI struct {
	NodeID  string
	Tasks   TaskFinder
	Nodes   taskstream.Nodes
	Streams RunnerStreams
	Audit   SessionAuditor
	Log     *slog.Logger
}

// Exec checks the caller (a browser upgrade must come from this replica's
// own page; the task's owner, or an operator), finds the task's runner,
// opens the runner's exec stream and only then upgrades the caller's
// connection and relays the two.
func (e *ExecAPI) Exec(w http.ResponseWriter, r *http.Request) {
	if err := checkWebSocketOrigin(r); err != nil {
		writeError(w, err)
		return
	}
	id, err := ParseTaskID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, err)
		return
	}
	p := principal(r)
	t, ok := e.Tasks.FindTask(r.Context(), id)
	if !ok {
		writeError(w, notFound("Task %d not found.", id))
		return
	}
	if err := mayActOn(p, t, "exec into"); err != nil {
		writeError(w, err)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(w, badRequest("this endpoint is a WebSocket: send an upgrade request (hakuriver task exec does)"))
		return
	}
	req, err := api.ParseExecRequest(r.URL.Query())
	if err != nil {
		writeError(w, badRequest("%v", err))
		return
	}
	runnerURL, err := taskstream.RunnerURL(e.Nodes, t, taskstream.Reach{})
	if err != nil {
		writeError(w, err)
		return
	}
	dctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	runner, err := e.Streams.Dial(dctx, runnerURL, api.RunnerExecPath(id), req.Query())
	cancel()
	if err != nil {
		writeError(w, runnerRefusal(id, err))
		return
	}
	defer runner.Close()
	up := websocket.Upgrader{ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10, CheckOrigin: auth.SameOrigin}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade answered the client
	}
	defer conn.Close()
	conn.SetReadLimit(api.MaxExecFrameBytes + 1)
	runner.SetReadLimit(api.MaxExecFrameBytes + 1)
	begin := time.Now().UTC()
	rec := api.SessionRecord{User: p.Name, Role: string(p.Role), TaskID: id, Via: e.NodeID, At: begin.Format(time.RFC3339Nano), TTY: req.TTY}
	start := rec
	start.Action = api.SessionExecStart
	e.Audit.RecordSession(start)
	e.Log.Info("exec session opened", "task_id", id, "user", p.Name, "tty", req.TTY, "runner", t.AssignedNode)
	relayErr := taskstream.Relay(conn, runner)
	took := time.Since(begin)
	end := rec
	end.Action, end.Seconds = api.SessionExecEnd, took.Seconds()
	e.Audit.RecordSession(end)
	e.Log.Info("exec session closed", "task_id", id, "user", p.Name, "took", took.Round(time.Millisecond), "end", relayErr)
}

// runnerRefusal maps a runner's refusal of an exec stream to the caller's
// answer: its 4xx verdicts on the task pass on (a 401 would be this
// replica's own fault), anything else is a 502.
func runnerRefusal(id int64, err error) error {
	var re *api.APIError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusNotFound, http.StatusConflict:
			return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("task %d: its runner says: %s", id, re.Message)}
		case http.StatusBadRequest:
			return badRequest("%s", re.Message)
		}
	}
	return &httpError{status: http.StatusBadGateway, msg: fmt.Sprintf("task %d: open the exec stream on its runner: %v", id, err)}
}
