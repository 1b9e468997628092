package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Status serves GET /api/status/{id}: one task, 404 when unknown. Here
// and in every task listing, env_vars values are HiddenValue for callers
// who may not see them (shown).
//
// With ?wait=DURATION&unless=STATUS it is a blocking query: the answer
// waits while the task's status is STATUS, at most DURATION (up to
// api.MaxStatusWait), and then gives the task as it is, so that a client
// that knows a task's status learns of its change at once, without
// polling. It answers at once for a task that is done (final, no retry to
// follow), while the replica's API shuts down, and while its places for
// waiting queries are all taken (AppliedWatcher.HoldWaiter); a replica of
// an earlier version ignores both parameters and answers at once. A
// waiting query reads the task again after each applied entry, at most
// once per statusRecheck.
func (a *API) Status(w http.ResponseWriter, r *http.Request) {
	id, err := ParseTaskID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, err)
		return
	}
	wait, unless, err := statusWait(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var expired <-chan time.Time
	if caller := waiterKey(principal(r)); wait > 0 && a.d.Applied != nil && a.d.Applied.HoldWaiter(caller) {
		defer a.d.Applied.ReleaseWaiter(caller)
		t := time.NewTimer(wait)
		defer t.Stop()
		expired = t.C
	}
	var last time.Time
	for {
		if !last.IsZero() {
			// Under a stream of entries, a read per statusRecheck at
			// most; one made after the pause sees all before it.
			time.Sleep(statusRecheck - time.Since(last))
		}
		last = time.Now()
		var changed <-chan struct{}
		if expired != nil {
			changed = a.d.Applied.NextApplied() // before the read: no change is missed
		}
		t, ok := a.d.Tasks.Task(id)
		if !ok {
			writeError(w, notFound("task %d not found", id))
			return
		}
		if changed == nil || t.Status != unless || t.Done() {
			writeJSON(w, http.StatusOK, shown(principal(r), t))
			return
		}
		select {
		case <-changed:
		case <-expired:
			expired = nil // answer with what the next read finds
		case <-a.d.Applied.Stopping():
			expired = nil
		case <-r.Context().Done():
			return // the caller left
		}
	}
}

// waiterKey names the caller whose share of the places for waiting
// queries a query of p takes: its account, or one share for all anonymous
// callers and one for the cluster token.
func waiterKey(p auth.Principal) string {
	switch p.Kind {
	case auth.Account:
		return "account:" + p.Name
	case auth.Cluster:
		return "cluster"
	}
	return "anonymous"
}

// statusRecheck is the shortest time between two reads of a waiting
// blocking query's task.
const statusRecheck = 2 * time.Millisecond

// statusWait reads GET /api/status's blocking-query parameters: both or
// neither, a wait of at most api.MaxStatusWait and a known status.
func statusWait(r *http.Request) (wait time.Duration, unless fsm.Status, err error) {
	q := r.URL.Query()
	ws, us := q.Get("wait"), q.Get("unless")
	switch {
	case ws == "" && us == "":
		return 0, "", nil
	case ws == "":
		return 0, "", badRequest("wait: required with unless (a duration such as 15s)")
	case us == "":
		return 0, "", badRequest("unless: required with wait (the status the caller knows)")
	}
	wait, err = time.ParseDuration(ws)
	if err != nil || wait <= 0 || wait > api.MaxStatusWait {
		return 0, "", badRequest("wait %q: want a duration above 0 and at most %s", ws, api.MaxStatusWait)
	}
	unless = fsm.Status(us)
	if !unless.Valid() {
		return 0, "", badRequest("unless %q: not a task status", us)
	}
	return wait, unless, nil
}

// Tasks serves GET /api/tasks: tasks filtered by status, node, type,
// batch, name, owner (?user=) and a substring of the command line (?text=, see
// fsm.Filter.Text), paged by ?after and ?limit (api.MoreHeader and
// api.NextAfterHeader say where the next page starts). ?view=summary
// answers api.TaskSummary rows (bounded in size, what a list shows)
// instead of whole tasks.
func (a *API) Tasks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := fsm.Filter{Status: fsm.Status(q.Get("status")), Node: q.Get("node"), Type: fsm.TaskType(q.Get("type")), Owner: q.Get("user"), Text: q.Get("text"), Name: q.Get("name")}
	if f.Name != "" && !fsm.ValidTaskName(f.Name) {
		writeError(w, badRequest("name %q: not a task name", f.Name))
		return
	}
	if len(f.Text) > fsm.MaxFilterText || !utf8.ValidString(f.Text) {
		writeError(w, badRequest("text: must be valid UTF-8 of at most %d bytes", fsm.MaxFilterText))
		return
	}
	view := q.Get("view")
	if view != "" && view != "summary" && view != "full" {
		writeError(w, badRequest("view %q: unknown view (want summary or full)", view))
		return
	}
	if f.Owner != "" && !fsm.NameRE().MatchString(f.Owner) {
		writeError(w, badRequest("user %q: not an account name (want 1-32 characters a-z 0-9 _ . - starting with a letter or _)", f.Owner))
		return
	}
	if f.Status != "" && !f.Status.Valid() {
		writeError(w, badRequest("status %q: unknown status", f.Status))
		return
	}
	if f.Type != "" && f.Type != fsm.TaskCommand && f.Type != fsm.TaskVPS {
		writeError(w, badRequest("type %q: unknown task type (want command or vps)", f.Type))
		return
	}
	if b := q.Get("batch"); b != "" {
		id, err := ParseTaskID(b)
		if err != nil {
			writeError(w, badRequest("batch %q: must be a positive decimal integer", b))
			return
		}
		f.Batch = id
	}
	var after int64
	if s := q.Get("after"); s != "" {
		id, err := ParseTaskID(s)
		if err != nil {
			writeError(w, badRequest("after %q: must be a positive decimal integer", s))
			return
		}
		after = id
	}
	limit := a.cfg.MaxListTasks
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100000 {
			writeError(w, badRequest("limit %q: must be an integer between 1 and 100000", l))
			return
		}
		limit = n
	}
	tasks, more := a.d.Tasks.Tasks(f, after, limit)
	if more && len(tasks) > 0 {
		w.Header().Set(api.MoreHeader, "true")
		w.Header().Set(api.NextAfterHeader, strconv.FormatInt(tasks[len(tasks)-1].TaskID, 10))
	}
	if view == "summary" {
		out := make([]api.TaskSummary, len(tasks))
		for i, t := range tasks {
			out[i] = api.Summarize(t)
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	if tasks == nil {
		tasks = []*fsm.Task{}
	}
	writeJSON(w, http.StatusOK, shownAll(principal(r), tasks))
}

// Kill serves POST /api/kill/{id} on the leader: the task is marked killed
// and its runner told to kill it.
func (a *API) Kill(w http.ResponseWriter, r *http.Request) {
	id, err := ParseTaskID(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, err)
		return
	}
	reqID := r.Header.Get(api.RequestIDHeader)
	if err := checkRequestID(reqID); err != nil {
		writeError(w, err)
		return
	}
	// Reject what the leader's up-to-date FSM already knows is impossible,
	// without writing a log entry; the FSM checks again when applying.
	t, ok := a.bodilessTask(w, r, id)
	if !ok {
		return
	}
	if (t.Status == fsm.StatusKilled || t.NoRetry) && reqID != "" && t.KillRequestID == reqID {
		// A retry of a kill that already committed (e.g. forwarded again
		// after a leader change): same answer as the first time.
		writeJSON(w, http.StatusAccepted, api.MessageResponse{Message: fmt.Sprintf("Kill requested for task %d. Task marked as killed.", id)})
		return
	}
	if t.Done() { // final, and no retry follows: a task waiting for a retry may be killed (no retry then)
		writeError(w, fmt.Errorf("%w: task %d cannot be killed (state: %s)", fsm.ErrConflict, id, t.Status))
		return
	}
	ctx, cancel := ApplyContext(r)
	defer cancel()
	if _, err := a.d.Proposer.Propose(ctx, &fsm.KillTask{TaskID: id, Message: "Kill requested by user.", At: a.now().UTC(), RequestID: reqID}); err != nil {
		writeError(w, err)
		return
	}
	if t.RetryPending() {
		writeJSON(w, http.StatusAccepted, api.MessageResponse{Message: fmt.Sprintf("Kill requested for task %d: no further attempt (its last attempt ended %s).", id, t.Status)})
		return
	}
	switch {
	case t.Status == fsm.StatusStopped:
		a.removeStopped(r, t) // no runner lists it: it would never be killed
	case t.AssignedNode != "":
		a.d.Runners.NotifyKill(t)
	}
	writeJSON(w, http.StatusAccepted, api.MessageResponse{Message: fmt.Sprintf("Kill requested for task %d. Task marked as killed.", id)})
}

// Command serves POST /api/command/{id}/{pause|resume}: the leader
// asks the runner, which reports the new status through /api/update.
func (a *API) Command(w http.ResponseWriter, r *http.Request) {
	id, err := ParseTaskID(chi.URLParam(r, "id"))
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
	t, ok := a.bodilessTask(w, r, id)
	if !ok {
		return
	}
	if t.Status != want {
		writeError(w, fmt.Errorf("%w: cannot %s task %d in state %s", fsm.ErrConflict, action, id, t.Status))
		return
	}
	if err := a.pauseResume(r.Context(), t, action); err != nil {
		writeError(w, err)
		return
	}
	label := map[string]string{"pause": "Pause", "resume": "Resume"}[action]
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("%s for task %d sent to runner: %s command sent successfully.", label, id, action)})
}

// Log serves GET /api/task/{id}/stdout|stderr from this replica's
// shared_dir. ?offset=N returns the bytes from N on (for --follow); the
// X-Hakuriver-Offset header gives the offset to ask for next; ?tail=N
// (instead of offset) returns the last N bytes, and X-Hakuriver-Start says
// where they start. A file not
// written yet is a 404, or with ?missing=empty an empty 200 with the header
// X-Hakuriver-Log-Missing (the dashboard's viewers follow a task from before
// it starts).
func (a *API) Log(stream string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := ParseTaskID(chi.URLParam(r, "id"))
		if err != nil {
			writeError(w, err)
			return
		}
		t, ok := a.d.Tasks.Task(id)
		if !ok {
			writeError(w, notFound("task %d not found", id))
			return
		}
		if err := mayActOn(principal(r), t, "read the logs of"); err != nil {
			writeError(w, err)
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
		path := filepath.Join(a.cfg.SharedDir, dir, filepath.Base(src))
		var offset int64
		if o := r.URL.Query().Get("offset"); o != "" {
			if offset, err = strconv.ParseInt(o, 10, 64); err != nil || offset < 0 {
				writeError(w, badRequest("offset %q: must be a non-negative integer", o))
				return
			}
		}
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) && r.URL.Query().Get("missing") == "empty" {
			// A viewer that follows a task from before its start: nothing
			// yet, and no error for the browser to log.
			w.Header().Set("X-Hakuriver-Offset", "0")
			w.Header().Set("X-Hakuriver-Log-Missing", "true")
			w.Header().Set("X-Hakuriver-Task-Status", string(t.Status))
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			return
		}
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
		if tail := r.URL.Query().Get("tail"); tail != "" {
			// The last bytes only: a viewer opening a large log.
			n, err := strconv.ParseInt(tail, 10, 64)
			if err != nil || n < 1 {
				writeError(w, badRequest("tail %q: must be a positive integer", tail))
				return
			}
			if r.URL.Query().Get("offset") != "" {
				writeError(w, badRequest("tail and offset: give one or the other"))
				return
			}
			st, err := f.Stat()
			if err != nil {
				writeError(w, fmt.Errorf("stat %s: %w", stream, err))
				return
			}
			offset = max(0, st.Size()-n)
		}
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
		w.Header().Set("X-Hakuriver-Start", strconv.FormatInt(offset, 10))
		w.Header().Set("X-Hakuriver-Task-Status", string(t.Status))
		w.WriteHeader(http.StatusOK)
		w.Write(data) //nolint:errcheck // the client went away
	}
}

// VPSList serves GET /api/vps: every VPS task, any status, newest first
// (the original's §3.7); items are whole tasks as Status serves them.
func (a *API) VPSList(w http.ResponseWriter, r *http.Request) {
	tasks, _ := a.d.Tasks.Tasks(fsm.Filter{Type: fsm.TaskVPS}, 0, 0)
	if tasks == nil {
		tasks = []*fsm.Task{}
	}
	writeJSON(w, http.StatusOK, shownAll(principal(r), tasks))
}

// VPSStatus serves GET /api/vps/status: the active VPS tasks (pending,
// assigning, running, paused), newest first, with ssh_port once the runner
// published it (the original's §3.8).
func (a *API) VPSStatus(w http.ResponseWriter, r *http.Request) {
	out := []*fsm.Task{}
	for _, t := range a.d.Tasks.Active() {
		if t.TaskType == fsm.TaskVPS {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID > out[j].TaskID })
	writeJSON(w, http.StatusOK, shownAll(principal(r), out))
}

// bodilessTask checks that r carries no body and returns task id; it
// answers the error itself (400, 404) and returns false when either fails.
func (a *API) bodilessTask(w http.ResponseWriter, r *http.Request, id int64) (*fsm.Task, bool) {
	if err := noBody(r); err != nil {
		writeError(w, err)
		return nil, false
	}
	t, ok := a.d.Tasks.Task(id)
	if !ok {
		writeError(w, notFound("task %d not found", id))
		return nil, false
	}
	if err := mayActOn(principal(r), t, "act on"); err != nil {
		writeError(w, err)
		return nil, false
	}
	return t, true
}
