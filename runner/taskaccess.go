package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/filecopy"
)

// The runner's side of `hakuriver forward` and `hakuriver cp`. A replica
// has checked the caller (role, owner) and calls these with the cluster
// token (requireToken); the runner decides from its own records where the
// task is and as whom to act, never from the request.
//
//	GET /tasks/{id}/forward?port=N   Upgrade: hakuriver-tcp → a TCP
//	                                 connection to port N inside the task
//	PUT /tasks/{id}/files?path=P     tar stream in → P in the task
//	GET /tasks/{id}/files?path=P     P in the task → tar stream out

// portDialTimeout bounds the connection to a task's port.
const portDialTimeout = 5 * time.Second

// containerAccess is what the Docker executor offers for reaching into a
// task's container.
type containerAccess interface {
	TaskAddress(ctx context.Context, id int64) (string, error)
	CopyTo(ctx context.Context, id int64, path string, r io.Reader, lim filecopy.Limits) error
	CopyFrom(ctx context.Context, id int64, path string) (io.ReadCloser, error)
}

// nativeAccess is what the native executor offers: the launch spec.
type nativeAccess interface {
	TaskSpec(ctx context.Context, id int64) (executor.Spec, error)
}

// accessRoutes adds the task access endpoints to r.
func (a *Agent) accessRoutes(r chi.Router) {
	r.Get("/tasks/{id}/forward", a.handleForward)
	r.Put("/tasks/{id}/files", a.handlePutFiles)
	r.Get("/tasks/{id}/files", a.handleGetFiles)
}

// taskExecutor returns the executor that runs task id: its container
// access for a container task, else its native access.
func (a *Agent) taskExecutor(r *http.Request) (int64, containerAccess, nativeAccess, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, nil, nil, accessError{http.StatusBadRequest, fmt.Sprintf("task id %q: want a positive integer", chi.URLParam(r, "id"))}
	}
	_, owner := a.states(r.Context())
	ex := owner[id]
	if ex == nil {
		return id, nil, nil, accessError{http.StatusNotFound, fmt.Sprintf("task %d is not running on runner %s", id, a.cfg.Name)}
	}
	if ex == a.cfg.Native {
		if na, ok := ex.(nativeAccess); ok {
			return id, nil, na, nil
		}
	} else if ca, ok := ex.(containerAccess); ok {
		return id, ca, nil, nil
	}
	return id, nil, nil, accessError{http.StatusNotImplemented, fmt.Sprintf("task %d: its executor cannot be reached into", id)}
}

// accessError is an answer with its status.
type accessError struct {
	status int
	msg    string
}

func (e accessError) Error() string { return e.msg }

// writeAccessErr answers err with its status: an accessError's own,
// 404 for an unknown task or path, 409 for a task not running, 400 for
// a refused archive, else 500.
func writeAccessErr(w http.ResponseWriter, err error) {
	var ae accessError
	status := http.StatusInternalServerError
	switch {
	case errors.As(err, &ae):
		status = ae.status
	case errors.Is(err, executor.ErrUnknownTask), errors.Is(err, executor.ErrNoSuchPath), errors.Is(err, os.ErrNotExist):
		status = http.StatusNotFound
	case errors.Is(err, executor.ErrNotRunning):
		status = http.StatusConflict
	case errors.Is(err, filecopy.ErrRefused):
		status = http.StatusBadRequest
	case errors.Is(err, os.ErrPermission):
		status = http.StatusForbidden
	}
	writeErr(w, status, "%v", err)
}

// handleForward connects the caller's stream to a port inside the task:
// the container's address for a container task, loopback on this host for
// a native one.
func (a *Agent) handleForward(w http.ResponseWriter, r *http.Request) {
	if !api.IsStreamRequest(r) {
		writeErr(w, http.StatusBadRequest, "forward: want an Upgrade: %s request", api.StreamProtocol)
		return
	}
	port, err := strconv.Atoi(r.URL.Query().Get("port"))
	if err != nil || port < 1 || port > 65535 {
		writeErr(w, http.StatusBadRequest, "port %q: want a number from 1 to 65535", r.URL.Query().Get("port"))
		return
	}
	id, ca, na, err := a.taskExecutor(r)
	if err != nil {
		writeAccessErr(w, err)
		return
	}
	host := "127.0.0.1"
	if ca != nil {
		host, err = ca.TaskAddress(r.Context(), id)
	} else {
		_, err = na.TaskSpec(r.Context(), id)
	}
	if err != nil {
		writeAccessErr(w, err)
		return
	}
	d := net.Dialer{Timeout: portDialTimeout}
	target, err := d.DialContext(r.Context(), "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		writeErr(w, http.StatusBadGateway, "task %d: connect to port %d: %v", id, port, err)
		return
	}
	conn, err := api.AcceptStream(w)
	if err != nil {
		target.Close()
		a.log.Info("forward: the caller went away", "task_id", id, "port", port, "err", err)
		return
	}
	start := time.Now()
	in, out := api.Pipe(conn, target)
	a.log.Debug("forward ended", "task_id", id, "port", port, "bytes_in", in, "bytes_out", out, "took", time.Since(start))
}

// copyPath reads the path query parameter.
func copyPath(r *http.Request) (string, error) {
	p := r.URL.Query().Get("path")
	if p == "" || strings.ContainsRune(p, 0) {
		return "", accessError{http.StatusBadRequest, "path: required"}
	}
	return p, nil
}

// handlePutFiles writes the request's tar stream into the task.
func (a *Agent) handlePutFiles(w http.ResponseWriter, r *http.Request) {
	p, err := copyPath(r)
	if err != nil {
		writeAccessErr(w, err)
		return
	}
	id, ca, na, err := a.taskExecutor(r)
	if err != nil {
		writeAccessErr(w, err)
		return
	}
	lim := filecopy.Limits{MaxBytes: a.cfg.CopyMaxBytes}
	if ca != nil {
		var h *helperRun
		if h, err = a.containerHelper(r.Context(), id, ca, p); err == nil && h != nil {
			err = a.runHelper(r.Context(), "put", *h, r.Body, nil, lim)
		} else if err == nil {
			err = ca.CopyTo(r.Context(), id, p, r.Body, lim)
		}
	} else {
		err = a.nativeCopy(r.Context(), id, na, "put", p, r.Body, nil, lim)
	}
	if err != nil {
		writeAccessErr(w, err)
		return
	}
	a.log.Info("files copied into a task", "task_id", id, "path", p)
	api.WriteJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("copied into %s in task %d", p, id)})
}

// handleGetFiles answers a tar stream of a path in the task. An error
// found after the stream started ends it early (the client's tar reader
// then fails: truncated).
func (a *Agent) handleGetFiles(w http.ResponseWriter, r *http.Request) {
	p, err := copyPath(r)
	if err != nil {
		writeAccessErr(w, err)
		return
	}
	id, ca, na, err := a.taskExecutor(r)
	if err != nil {
		writeAccessErr(w, err)
		return
	}
	if ca != nil {
		h, err := a.containerHelper(r.Context(), id, ca, p)
		if err != nil {
			writeAccessErr(w, err)
			return
		}
		if h != nil {
			sw := &startedWriter{w: w}
			if err := a.runHelper(r.Context(), "get", *h, nil, sw, filecopy.Limits{}); err != nil {
				if !sw.started {
					writeAccessErr(w, err)
					return
				}
				a.log.Info("copy from a task ended early", "task_id", id, "path", p, "err", err)
			}
			return
		}
		rc, err := ca.CopyFrom(r.Context(), id, p)
		if err != nil {
			writeAccessErr(w, err)
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
		if _, err := io.Copy(w, rc); err != nil {
			a.log.Info("copy from a task ended early", "task_id", id, "path", p, "err", err)
		}
		return
	}
	sw := &startedWriter{w: w}
	if err := a.nativeCopy(r.Context(), id, na, "get", p, nil, sw, filecopy.Limits{}); err != nil {
		if !sw.started {
			writeAccessErr(w, err)
			return
		}
		a.log.Info("copy from a task ended early", "task_id", id, "path", p, "err", err)
	}
}

// startedWriter sends the 200 header before its first byte.
type startedWriter struct {
	w       http.ResponseWriter
	started bool
}

func (s *startedWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", "application/x-tar")
		s.w.WriteHeader(http.StatusOK)
	}
	return s.w.Write(p)
}

// helperRun is one run of the copy helper: at path, as a user
// ("UID:GID[:G1,...]", "" for the runner's own), chrooted into root when
// set; user names the task's user in errors.
type helperRun struct {
	path, as, root, user string
}

// containerRoot is what the Docker executor offers for reaching a
// container's files as its user.
type containerRoot interface {
	TaskRoot(ctx context.Context, id int64) (executor.TaskRoot, error)
}

// containerHelper returns the helper run that copies at p in container
// task id as the container's user, or nil when the container runs as root
// (or its image's user, which only a task allowed root gets): the Engine
// then copies, as root, which is what the task itself is. The Engine
// reads and writes as root everywhere, bind mounts (the shared directory)
// included, so a task running as a UID other than root never copies
// through it: the helper enters the container's root (/proc/PID/root) and
// becomes that UID, whose own permissions then decide.
func (a *Agent) containerHelper(ctx context.Context, id int64, ca containerAccess, p string) (*helperRun, error) {
	cr, ok := ca.(containerRoot)
	if !ok {
		return nil, nil
	}
	tr, err := cr.TaskRoot(ctx, id)
	if err != nil {
		return nil, err
	}
	uid, gid, ok := numericUser(tr.User)
	if !ok || uid == 0 && gid == 0 {
		return nil, nil
	}
	if tr.PID <= 0 {
		return nil, fmt.Errorf("task %d: %w: its container has no process", id, executor.ErrNotRunning)
	}
	if os.Geteuid() != 0 {
		return nil, accessError{http.StatusForbidden, fmt.Sprintf("task %d runs as %s: copying as that user needs a runner running as root", id, tr.User)}
	}
	if !path.IsAbs(p) {
		p = path.Join(tr.WorkDir, p)
	}
	groups := make([]string, 0, len(tr.Groups))
	for _, g := range tr.Groups {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			groups = append(groups, strconv.FormatUint(n, 10))
		}
	}
	return &helperRun{path: path.Clean(p), as: fmt.Sprintf("%d:%d:%s", uid, gid, strings.Join(groups, ",")),
		root: fmt.Sprintf("/proc/%d/root", tr.PID), user: tr.User}, nil
}

// numericUser parses a container's "UID[:GID]" user.
func numericUser(u string) (uid, gid int, ok bool) {
	us, gs, hasGID := strings.Cut(u, ":")
	if !hasGID {
		gs = us
	}
	uid, err1 := strconv.Atoi(us)
	gid, err2 := strconv.Atoi(gs)
	if err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return 0, 0, false
	}
	return uid, gid, true
}

// nativeCopy runs the copy helper (filecopy.HelperCommand) as the task's
// user: "put" reads the tar stream from in, "get" writes it to out. A
// relative path is taken from the task's working directory.
func (a *Agent) nativeCopy(ctx context.Context, id int64, na nativeAccess, op, p string, in io.Reader, out io.Writer, lim filecopy.Limits) error {
	spec, err := na.TaskSpec(ctx, id)
	if err != nil {
		return err
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(spec.WorkDir, p)
	}
	h := helperRun{path: p, user: spec.User}
	if spec.User != "" {
		if h.as, err = asFlag(spec.User); err != nil {
			return err
		}
	}
	return a.runHelper(ctx, op, h, in, out, lim)
}

// runHelper runs the copy helper (filecopy.HelperCommand) for h: "put"
// reads the tar stream from in, "get" writes it to out.
func (a *Agent) runHelper(ctx context.Context, op string, h helperRun, in io.Reader, out io.Writer, lim filecopy.Limits) error {
	helper := a.cfg.CopyHelper
	if len(helper) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the copy helper: %w", err)
		}
		helper = []string{exe, filecopy.HelperCommand}
	}
	args := append(append([]string{}, helper[1:]...), op, h.path)
	if lim.MaxBytes > 0 {
		args = append(args, "--max-bytes", strconv.FormatInt(lim.MaxBytes, 10))
	}
	if h.root != "" {
		args = append(args, "--root", h.root)
	}
	if h.as != "" {
		args = append(args, "--as", h.as)
	}
	cmd := exec.CommandContext(ctx, helper[0], args...)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, &limitedBuffer{b: &stderr, n: 4096}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr.String()), "Error:"))
		if msg == "" {
			msg = err.Error()
		}
		return helperError(op, h.path, h.user, msg)
	}
	return nil
}

// helperError turns the helper's message into an error of the right kind.
func helperError(op, p, user, msg string) error {
	what := fmt.Sprintf("copy %s %s as %s: %s", map[string]string{"put": "into", "get": "from"}[op], p, orDefault(user, "the runner's user"), msg)
	switch {
	case strings.Contains(msg, filecopy.ErrRefused.Error()):
		return fmt.Errorf("%w: %s", filecopy.ErrRefused, what)
	case strings.Contains(msg, "permission denied"), strings.Contains(msg, "operation not permitted"):
		return fmt.Errorf("%w: %s", os.ErrPermission, what)
	case strings.Contains(msg, "no such file or directory"):
		return fmt.Errorf("%w: %s", executor.ErrNoSuchPath, what)
	}
	return errors.New(what)
}

// asFlag is the helper's --as value for a task user: "" when the runner
// already is that user.
func asFlag(user string) (string, error) {
	id, err := executor.LookupUser(user)
	if err != nil {
		return "", err
	}
	if int(id.UID) == os.Geteuid() && int(id.GID) == os.Getegid() {
		return "", nil
	}
	gs := make([]string, 0, len(id.Groups))
	for _, g := range id.Groups {
		gs = append(gs, strconv.FormatUint(uint64(g), 10))
	}
	return fmt.Sprintf("%d:%d:%s", id.UID, id.GID, strings.Join(gs, ",")), nil
}

// limitedBuffer keeps the first n bytes written to it.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
