package runner

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/resources"
)

func (a *Agent) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(a.requireToken)
	r.Post("/run", a.handleRun)
	r.Post("/kill", a.handleTaskOp("kill"))
	r.Post("/pause", a.handleTaskOp("pause"))
	r.Post("/resume", a.handleTaskOp("resume"))
	// VPS lifecycle (vpsapi.go).
	r.Post("/vps/mark", a.handleVPSOp("mark"))
	r.Post("/vps/unmark", a.handleVPSOp("unmark"))
	r.Post("/vps/stop", a.handleVPSOp("stop"))
	r.Post("/vps/state", a.handleVPSOp("state"))
	r.Post("/vps/remove", a.handleVPSOp("remove"))
	r.Post("/vps/snapshot", a.handleVPSSnapshot)
	r.Get("/exec/{id}", a.handleExec)
	r.Get("/health", a.handleHealth)
	r.HandleFunc("/doctor", a.handleDoctor)
	a.accessRoutes(r)
	return r
}

func writeErr(w http.ResponseWriter, status int, format string, args ...any) {
	api.WriteError(w, status, fmt.Sprintf(format, args...))
}

// requireToken rejects calls without the cluster token: /run is remote
// code execution, so nobody else may call it.
func (a *Agent) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.tokenOK(r.Header.Get(api.TokenHeader)) {
			a.log.Warn("rejected call without a valid cluster token", "path", r.URL.Path, "remote", r.RemoteAddr)
			writeErr(w, http.StatusUnauthorized, "missing or wrong cluster token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenOK reports whether got is the cluster token, in constant time. An
// empty configured token matches only in insecure mode.
func (a *Agent) tokenOK(got string) bool {
	if a.cfg.Token == "" {
		return a.cfg.InsecureNoToken
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.Token)) == 1
}

// startBound bounds one /run's start, an environment image load included
// (the leader allows a first run as long).
const startBound = 10 * time.Minute

// handleRun starts a task; it is idempotent by task ID.
func (a *Agent) handleRun(w http.ResponseWriter, r *http.Request) {
	begin := time.Now()
	var req api.RunRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, api.MaxRunBodyBytes)).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "malformed run request: %v", err)
		return
	}
	if req.TaskID <= 0 || req.Command == "" {
		writeErr(w, http.StatusBadRequest, "task_id and command: required")
		return
	}
	if err := api.CheckRunRequest(req); err != nil {
		// The host checks the same contract at submit: only a task
		// committed by an older host gets here.
		writeErr(w, http.StatusBadRequest, "task %d: %v", req.TaskID, err)
		return
	}
	if req.Attempt < 0 || req.Attempt > fsm.MaxRetries+1 {
		writeErr(w, http.StatusBadRequest, "attempt: %d is out of range (0..%d)", req.Attempt, fsm.MaxRetries+1)
		return
	}
	if a.finished(req.TaskID, req.Attempt) {
		// Its end was reported and acknowledged already: a /run re-sent by a
		// new leader must never start it a second time.
		api.WriteJSON(w, http.StatusOK, map[string]any{"message": "Task already ran on this node", "task_id": req.TaskID})
		return
	}
	image := req.DockerImageName
	if environment.IsNative(req.ContainerName) {
		image = ""
	}
	ex := a.executorFor(image)
	// Only the executor that runs the task is listed afresh: an earlier
	// attempt runs on the same one (same image).
	states, _, _ := a.statesFor(r.Context(), ex)
	if _, ok := states[req.TaskID]; ok && !sameAttempt(a.attempts.get(req.TaskID), req.Attempt) {
		states = a.awaitEarlierAttempt(r.Context(), req.TaskID)
	}
	if _, ok := states[req.TaskID]; ok {
		if cur := a.attempts.get(req.TaskID); !sameAttempt(cur, req.Attempt) {
			// An earlier attempt is still tracked here (running, or its end
			// not yet acknowledged): never two attempts at once. The host
			// sends /run again later.
			writeErr(w, http.StatusServiceUnavailable, "task %d: attempt %d is still tracked on this node; attempt %d waits", req.TaskID, max(1, cur), req.Attempt)
			return
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"message": "Task already tracked on this node", "task_id": req.TaskID})
		return
	}
	if req.Attempt > 0 { // a task with retries (0: none, the attempt is its only one)
		if err := a.attempts.set(req.TaskID, req.Attempt); err != nil {
			writeErr(w, http.StatusInternalServerError, "task %d: record attempt: %v", req.TaskID, err)
			return
		}
	}
	spec, err := a.spec(req)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "task %d: %v", req.TaskID, err)
		return
	}
	if spec.TaskType == executor.TaskVPS && (image == "" || a.cfg.Docker == nil) {
		writeErr(w, http.StatusBadRequest, "task %d: VPS tasks need a Docker environment and Docker on runner %s", req.TaskID, a.cfg.Name)
		return
	}
	// The start outlives the request: a host that hangs up (its leadership
	// ended, its call timed out) must not cancel a start half done, which
	// would leave a tracked task the runner reports as failed to start.
	// startBound bounds it (the native executor's own StartTimeout is
	// shorter); the next leader's /run finds the task tracked.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), startBound)
	defer cancel()
	if err := ex.Start(sctx, spec); err != nil {
		if errors.Is(err, executor.ErrUnknownTask) && a.finished(req.TaskID, req.Attempt) {
			// It ran, ended, was reported and forgotten before the start
			// looked again: a short task on a busy runner.
			api.WriteJSON(w, http.StatusOK, map[string]any{"message": "Task already ran on this node", "task_id": req.TaskID})
			return
		}
		status := http.StatusInternalServerError
		if errors.Is(err, executor.ErrVPSGone) {
			status = http.StatusGone
		}
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusServiceUnavailable // not a verdict on the task: the host retries
		}
		a.log.Error("start task", "task_id", req.TaskID, "err", err)
		writeErr(w, status, "start task %d: %v", req.TaskID, err)
		return
	}
	// took: from the /run request to the task's process running.
	a.log.Info("task started", "task_id", req.TaskID, "command", req.Command, "took", time.Since(begin).Round(10*time.Microsecond))
	a.kickFor(ex)
	resp := map[string]any{"message": "Task accepted for launch", "task_id": req.TaskID}
	if spec.TaskType == executor.TaskVPS {
		if s, _ := a.states(r.Context()); s[req.TaskID].SSHPort != 0 {
			resp["ssh_port"] = s[req.TaskID].SSHPort // as the original's runner answered
		}
	}
	api.WriteJSON(w, http.StatusOK, resp)
}

// spec maps a run request onto an executor spec. Output goes to this
// runner's own shared_dir, so shared storage may be mounted at different
// paths on different machines.
func (a *Agent) spec(req api.RunRequest) (executor.Spec, error) {
	var user string
	if req.TaskType != executor.TaskVPS { // a VPS runs as root inside its container
		native := environment.IsNative(req.ContainerName) || req.DockerImageName == ""
		var err error
		if user, err = executor.TaskUser(req.RunAs, a.cfg.RunnerUser, native, req.AllowRoot); err != nil {
			return executor.Spec{}, err
		}
	}
	s := executor.Spec{
		TaskID: req.TaskID, Attempt: req.Attempt, Command: req.Command, Args: req.Arguments, Env: req.EnvVars, WorkDir: req.WorkDir,
		Cores: req.RequiredCores, MemoryBytes: req.RequiredMemoryBytes, GPUs: req.RequiredGPUs,
		Stdout:     filepath.Join(a.cfg.SharedDir, "task_outputs", filepath.Base(orDefault(req.StdoutPath, strconv.FormatInt(req.TaskID, 10)+".out"))),
		Stderr:     filepath.Join(a.cfg.SharedDir, "task_errors", filepath.Base(orDefault(req.StderrPath, strconv.FormatInt(req.TaskID, 10)+".err"))),
		User:       user,
		Image:      req.DockerImageName,
		Privileged: req.DockerPrivileged,
		Mounts:     req.DockerMounts,
		ClusterID:  req.ClusterID,
	}
	if tb := req.EnvTarball; tb != nil {
		s.ImageVersion, s.ImageSHA256, s.ImageSize = tb.Version, tb.SHA256, tb.Size
	}
	if s.WorkDir == "" {
		s.WorkDir = filepath.Join(a.cfg.SharedDir, "shared_data")
	}
	if req.TaskType == executor.TaskVPS {
		// A VPS's command is its owner's public key; it has no output files.
		s.TaskType, s.PublicKey, s.Command, s.Args = executor.TaskVPS, req.Command, "", nil
		s.Restart = req.Restart
		s.Stdout, s.Stderr = "", ""
	}
	if len(req.RequiredGPUs) > 0 {
		if s.Env == nil {
			s.Env = map[string]string{}
		}
		s.Env["CUDA_VISIBLE_DEVICES"] = resources.FormatCPUList(req.RequiredGPUs)
	}
	if req.TargetNUMANodeID != nil {
		id := strconv.Itoa(*req.TargetNUMANodeID)
		n, ok := a.static.NUMATopology[id]
		if !ok {
			return s, fmt.Errorf("NUMA node %s does not exist on %s", id, a.cfg.Name)
		}
		s.CPUs = n.Cores
		s.Mems = []int{*req.TargetNUMANodeID}
	}
	return s, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (a *Agent) handleTaskOp(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var ref api.TaskRef
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&ref); err != nil || ref.TaskID <= 0 {
			writeErr(w, http.StatusBadRequest, "Missing 'task_id' in request body.")
			return
		}
		_, owner := a.states(r.Context())
		ex := owner[ref.TaskID]
		if ex == nil {
			writeErr(w, http.StatusNotFound, "Task %d not found or not tracked.", ref.TaskID)
			return
		}
		var err error
		switch op {
		case "kill":
			err = ex.Kill(r.Context(), ref.TaskID)
		case "pause":
			err = ex.Pause(r.Context(), ref.TaskID)
		case "resume":
			err = ex.Resume(r.Context(), ref.TaskID)
		}
		if errors.Is(err, executor.ErrUnknownTask) {
			writeErr(w, http.StatusNotFound, "Task %d not found or not tracked.", ref.TaskID)
			return
		}
		if err != nil {
			writeErr(w, http.StatusInternalServerError, "%s task %d: %v", op, ref.TaskID, err)
			return
		}
		a.log.Info("task "+op, "task_id", ref.TaskID)
		a.kickFor(ex)
		api.WriteJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("%s processed for task %d", op, ref.TaskID)})
	}
}

func (a *Agent) handleHealth(w http.ResponseWriter, r *http.Request) {
	states, _ := a.states(r.Context())
	api.WriteJSON(w, http.StatusOK, map[string]any{
		"hostname": a.cfg.Name, "registered": a.registered.Load(), "tasks": len(states),
		"total_cores": a.static.TotalCores, "memory_total_bytes": a.static.MemoryTotalBytes,
		"cgroups_limited": a.cfg.NativeLimited,
	})
}
