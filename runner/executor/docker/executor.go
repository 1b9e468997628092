package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// Paths inside task containers.
const (
	sharedMount    = "/shared"
	localTempMount = "/local_temp"
)

// ContainerName is the name of task id's container.
func ContainerName(id int64) string { return "hakuriver-task-" + strconv.FormatInt(id, 10) }

// Executor runs command tasks in containers named hakuriver-task-<id>, and
// VPS tasks in containers named hakuriver-vps-<id> (vps.go), labelled with
// the task ID and the runner's name. Before a task starts,
// its environment image is synced from shared storage (Syncer). A
// container stays after it exits until Forget, so that its exit code and
// OOM flag can be read; a restarted runner finds its containers by label
// (List) and goes on copying their output (logs.go). It is safe for
// concurrent use.
type Executor struct {
	cfg  Config
	cli  *client.Client
	log  *slog.Logger
	sync *Syncer

	// life is the executor's lifetime (not a request's), the parent of
	// its log copiers; Close cancels it.
	life   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	tasks    map[int64]*task
	starting map[int64]*startCall

	// vpsMu serializes choosing a VPS's CPUs and creating its container.
	vpsMu sync.Mutex
	// sshdWait bounds how long a VPS's Start waits for its sshd (tests
	// shorten it).
	sshdWait time.Duration

	// driverOnce reads the engine's cgroup driver once; cgroupfs is
	// whether it is "cgroupfs", under which task containers get a cgroup
	// parent of their own to be measured (usage.go).
	driverOnce sync.Once
	cgroupfs   bool
	// lastSweep is when List last looked for cgroup parents left behind
	// (under mu).
	lastSweep time.Time
}

type startCall struct {
	done chan struct{}
	err  error
}

var _ executor.Executor = (*Executor)(nil)

// NewExecutor returns an Executor for cfg (SharedDir, ContainerDir,
// RunnerName, LocalTempDir, StateDir, AllowPrivileged, NetworkMode,
// Logger). It creates the directories it mounts and StateDir, but does not
// contact the engine.
func NewExecutor(cfg Config) (*Executor, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if cfg.RunnerName == "" {
		return nil, errors.New("docker executor: runner name: must not be empty")
	}
	if cfg.LocalTempDir == "" {
		return nil, errors.New("docker executor: local_temp_dir: must not be empty")
	}
	if cfg.StateDir == "" || !filepath.IsAbs(cfg.StateDir) {
		// Never a default under LocalTempDir: tasks see that directory.
		return nil, errors.New("docker executor: state dir: must be an absolute path in the runner's private state directory")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("docker executor: create %s: %w", cfg.StateDir, err)
	}
	for _, d := range []string{cfg.LocalTempDir, filepath.Join(cfg.SharedDir, "shared_data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("docker executor: create %s: %w", d, err)
		}
	}
	cli, err := newClient()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "docker-executor")
	if !cfg.AllowPrivileged {
		shared := resolved(cfg.SharedDir)
		for _, src := range cfg.AllowedMountSources {
			if r := resolved(src); within(shared, r) || within(r, shared) && !within(r, filepath.Join(shared, "shared_data")) {
				log.Warn("an additional_mounts source covers the shared dir; tasks mounting it will be refused", "source", src, "shared_dir", shared)
			}
		}
	}
	life, cancel := context.WithCancel(context.Background())
	return &Executor{
		cfg: cfg, cli: cli, log: log,
		sync: newSyncer(cfg, cli), life: life, cancel: cancel,
		tasks: map[int64]*task{}, starting: map[int64]*startCall{}, sshdWait: defaultSSHDWait,
	}, nil
}

// Ping checks that the engine answers.
func (e *Executor) Ping(ctx context.Context) error { return ping(ctx, e.cli) }

// Syncer returns the executor's image syncer.
func (e *Executor) Syncer() *Syncer { return e.sync }

// Close stops copying logs and loading images and releases the engine
// connection. Containers keep running; a new Executor picks them up.
func (e *Executor) Close() error {
	e.cancel()
	e.sync.Close()
	e.wg.Wait()
	return e.cli.Close()
}

// Start syncs s.Image and starts task s in a fresh container. Starting an
// ID that is tracked, or whose container exists, is a no-op; concurrent
// Starts of one ID share one attempt. A failure (missing or corrupt
// environment tarball, bad mount, privileged not allowed, a command the
// image lacks; for a VPS a bad public key, no sshd in the image, sshd not
// answering) is returned and leaves no container behind. A VPS's Start
// returns once its sshd answers on the published port.
func (e *Executor) Start(ctx context.Context, s executor.Spec) error {
	switch {
	case isVPS(s) && (s.TaskID <= 0 || s.Image == ""):
		return fmt.Errorf("%w: VPS task: task ID and image are required", environment.ErrInvalid)
	case !isVPS(s) && (s.TaskID <= 0 || s.Command == "" || s.Image == ""):
		return fmt.Errorf("%w: docker task: task ID, command and image are required", environment.ErrInvalid)
	}
	if s.Restart && isVPS(s) && e.isStopped(s.TaskID) {
		e.untrack(s.TaskID) // a List that raced StopVPS may have tracked it again
	}
	e.mu.Lock()
	if _, ok := e.tasks[s.TaskID]; ok {
		e.mu.Unlock()
		return nil
	}
	if c := e.starting[s.TaskID]; c != nil {
		e.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return fmt.Errorf("wait for task %d to start: %w", s.TaskID, ctx.Err())
		}
	}
	c := &startCall{done: make(chan struct{})}
	e.starting[s.TaskID] = c
	e.mu.Unlock()

	c.err = e.start(ctx, s)
	e.mu.Lock()
	delete(e.starting, s.TaskID)
	e.mu.Unlock()
	close(c.done)
	return c.err
}

func (e *Executor) start(ctx context.Context, s executor.Spec) error {
	if s.Restart && isVPS(s) {
		return e.restartVPS(ctx, s)
	}
	name := ContainerName(s.TaskID)
	if isVPS(s) {
		name = VPSContainerName(s.TaskID)
	}
	// A container left by an earlier attempt or runner process: adopt it.
	if ins, err := e.cli.ContainerInspect(ctx, name); err == nil {
		if r := ins.Config.Labels[LabelRunner]; r != e.cfg.RunnerName {
			return fmt.Errorf("%w: container %s belongs to runner %q", environment.ErrConflict, name, r)
		}
		created := ins.State != nil && ins.State.Status == container.StateCreated
		switch {
		case created && isVPS(s):
			// Left by an attempt that did not finish, maybe without its
			// key: make it again.
			if err := e.removeFailed(ins.ID, nil); err != nil {
				return err
			}
			return e.startVPS(ctx, s)
		case created:
			if err := e.cli.ContainerStart(ctx, ins.ID, container.StartOptions{}); err != nil {
				return e.failStart(ins.ID, name, err)
			}
		}
		e.track(s.TaskID, ins.Config.Labels, time.Now())
		return nil
	} else if err = translate(err); !errors.Is(err, environment.ErrNotFound) {
		return fmt.Errorf("inspect container %s: %w", name, err)
	}
	if isVPS(s) {
		return e.startVPS(ctx, s)
	}
	cfg, hc, err := e.containerConfig(s)
	if err != nil {
		return err
	}
	hc.CgroupParent = e.cgroupParentOf(ctx, s.TaskID)
	id, err := taskUser(s, cfg, hc)
	if err != nil {
		return err
	}
	run, err := e.sync.Sync(ctx, s.Image, recordedOf(s))
	if err != nil {
		return fmt.Errorf("prepare environment image %s: %w", s.Image, err)
	}
	cfg.Image = run
	for _, p := range []string{s.Stdout, s.Stderr} {
		if err := prepareOutput(p, id); err != nil {
			return err
		}
	}
	resp, err := e.cli.ContainerCreate(ctx, cfg, hc, nil, nil, name)
	if err != nil {
		return fmt.Errorf("create container %s: %w", name, translate(err))
	}
	if err := e.cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return e.failStart(resp.ID, name, err)
	}
	e.track(s.TaskID, cfg.Labels, time.Now())
	e.log.Info("task container started", keyTaskID, s.TaskID, keyContainer, name, keyImage, cfg.Image)
	return nil
}

// recordedOf is what the cluster recorded for s's environment.
func recordedOf(s executor.Spec) Recorded {
	return Recorded{Cluster: s.ClusterID, Version: s.ImageVersion, SHA256: s.ImageSHA256, Size: s.ImageSize}
}

// failStart removes a container that did not start and returns why.
func (e *Executor) failStart(id, name string, err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rmErr := e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if rmErr != nil && !errors.Is(translate(rmErr), environment.ErrNotFound) {
		return errors.Join(fmt.Errorf("start container %s: %w", name, translate(err)), fmt.Errorf("remove it: %w", translate(rmErr)))
	}
	return fmt.Errorf("start container %s: %w", name, translate(err))
}

// containerConfig maps a spec onto the container's configuration.
func (e *Executor) containerConfig(s executor.Spec) (*container.Config, *container.HostConfig, error) {
	if s.Privileged && !e.cfg.AllowPrivileged {
		return nil, nil, fmt.Errorf("%w: privileged containers are not allowed on runner %s (docker tasks_privileged is off)", environment.ErrInvalid, e.cfg.RunnerName)
	}
	mounts, err := e.mounts(s.Mounts)
	if err != nil {
		return nil, nil, err
	}
	env := map[string]string{}
	for k, v := range s.Env {
		env[k] = v
	}
	if len(s.GPUs) > 0 {
		// The runtime renumbers the selected GPUs from 0 in the container;
		// the host IDs would select the wrong (or no) devices.
		delete(env, "CUDA_VISIBLE_DEVICES")
	}
	for k, v := range map[string]string{"HAKURIVER_SHARED_DIR": sharedMount, "HAKURIVER_LOCAL_TEMP_DIR": localTempMount} {
		if _, ok := env[k]; !ok {
			env[k] = v
		}
	}
	envList := make([]string, 0, len(env))
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	sort.Strings(envList)
	cfg := &container.Config{
		Image:      s.Image,
		Cmd:        append([]string{s.Command}, s.Args...),
		Env:        envList,
		WorkingDir: e.workDir(s.WorkDir),
		Labels: map[string]string{
			LabelRole: roleTask, LabelTaskID: strconv.FormatInt(s.TaskID, 10), LabelRunner: e.cfg.RunnerName,
			LabelStdout: s.Stdout, LabelStderr: s.Stderr,
		},
	}
	if s.ClusterID != "" {
		cfg.Labels[LabelCluster] = s.ClusterID
	}
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(e.cfg.NetworkMode),
		Privileged:  s.Privileged,
		Mounts:      mounts,
		LogConfig:   container.LogConfig{Type: "json-file"},
		Resources: container.Resources{
			NanoCPUs:   int64(s.Cores) * 1e9,
			Memory:     s.MemoryBytes,
			CpusetCpus: joinInts(s.CPUs),
			CpusetMems: joinInts(s.Mems),
		},
	}
	if s.MemoryBytes > 0 {
		hc.Resources.MemorySwap = s.MemoryBytes // no swap beyond the limit
	}
	if !s.Privileged {
		hc.CapAdd = []string{"SYS_NICE"}
	}
	if len(s.GPUs) > 0 {
		ids := make([]string, len(s.GPUs))
		for i, g := range s.GPUs {
			ids[i] = strconv.Itoa(g)
		}
		hc.Resources.DeviceRequests = []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: ids, Capabilities: [][]string{{"gpu"}}}}
	}
	return cfg, hc, nil
}

// workDir maps the runner's <SharedDir>/shared_data (the default working
// directory of every task) onto /shared; any other directory is taken as a
// path inside the container.
func (e *Executor) workDir(dir string) string {
	data := filepath.Join(e.cfg.SharedDir, "shared_data")
	if dir == "" {
		return sharedMount
	}
	if rel, err := filepath.Rel(data, dir); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return filepath.Join(sharedMount, rel)
	}
	return dir
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// track records a task container and starts copying its logs, once.
func (e *Executor) track(id int64, labels map[string]string, started time.Time) *task {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.tasks[id]; ok {
		return t
	}
	t := &task{
		id: id, name: nameOf(id, labels), stdout: labels[LabelStdout], stderr: labels[LabelStderr],
		started: started, logsDone: make(chan struct{}), st: e.loadState(id),
	}
	e.tasks[id] = t
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.copyLogs(e.life, t)
	}()
	return t
}

// List returns the tasks of this runner's containers, found by label, so
// that a restarted runner sees what its predecessor started. A container
// that has exited is reported ended once its output was copied.
func (e *Executor) List(ctx context.Context) ([]executor.State, error) {
	list, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelTaskID), filters.Arg("label", LabelRunner+"="+e.cfg.RunnerName))})
	if err != nil {
		return nil, fmt.Errorf("list task containers: %w", translate(err))
	}
	out := make([]executor.State, 0, len(list))
	live := make(map[int64]bool, len(list))
	defer e.maybeSweepParents(ctx, live)
	for _, c := range list {
		id, err := strconv.ParseInt(c.Labels[LabelTaskID], 10, 64)
		if err != nil || id <= 0 {
			continue
		}
		live[id] = true
		if c.Labels[LabelTaskType] == executor.TaskVPS && e.isStarting(id) {
			continue // not running until its sshd answers (or removed)
		}
		if c.Labels[LabelTaskType] == executor.TaskVPS && c.State != container.StateRunning && c.State != container.StatePaused && e.isStopped(id) {
			continue // stopped and kept (vpslife.go)
		}
		switch c.State {
		case container.StateRunning, container.StatePaused, container.StateRestarting:
			t := e.track(id, c.Labels, time.Unix(c.Created, 0))
			st := executor.State{TaskID: id, Running: true, Paused: c.State == container.StatePaused, Started: t.started}
			if c.Labels[LabelTaskType] == executor.TaskVPS {
				st.SSHPort = listedPort(c)
			}
			out = append(out, st)
		case container.StateExited, container.StateDead:
			t := e.track(id, c.Labels, time.Unix(c.Created, 0))
			st := executor.State{TaskID: id, Running: true, Started: t.started}
			if ex, err := e.exitOf(ctx, t); err != nil {
				e.log.Warn("read task exit", keyTaskID, id, keyErr, err)
			} else if ex != nil {
				st.Running, st.Exit = false, ex
			}
			out = append(out, st)
		}
		// "created": not started yet (a Start in progress, or one that
		// failed and is retried by the next /run); "removing": forgotten.
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID < out[j].TaskID })
	return out, nil
}

// isStarting reports whether a Start of task id is in progress.
func (e *Executor) isStarting(id int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.starting[id] != nil
}

// exitOf returns how t's container ended, or nil while its output is still
// being copied.
func (e *Executor) exitOf(ctx context.Context, t *task) (*executor.Exit, error) {
	select {
	case <-t.logsDone:
	default:
		return nil, nil
	}
	t.mu.Lock()
	rec, killed := t.exit, t.st.Killed
	t.mu.Unlock()
	if rec == nil {
		ins, err := e.cli.ContainerInspect(ctx, t.name)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", t.name, translate(err))
		}
		if ins.State == nil {
			return nil, fmt.Errorf("inspect %s: no state", t.name)
		}
		// Docker records an OOM kill from a separate containerd event that
		// may arrive after the exit: a SIGKILL nobody here asked for is
		// looked at again for a moment before it counts as a plain failure.
		for i := 0; i < 10 && ins.State.ExitCode == 137 && !ins.State.OOMKilled && !killed; i++ {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			again, err := e.cli.ContainerInspect(ctx, t.name)
			if err != nil || again.State == nil {
				break
			}
			ins = again
		}
		rec = &exitRecord{code: ins.State.ExitCode, oom: ins.State.OOMKilled, message: ins.State.Error}
		if ins.HostConfig != nil {
			// The container ended: its parent's counters are final.
			if rec.usage, err = parentUsage(ins.HostConfig.CgroupParent); err != nil {
				// A runner that cannot see the engine's cgroups (say, in
				// a container itself): the end goes without figures.
				e.log.Debug("measure the task container's usage", keyTaskID, t.id, keyErr, err)
			}
			if !rec.oom && oomByPeak(rec.code, killed, ins.HostConfig.Memory, rec.usage) {
				rec.oom = true
			}
		}
		rec.startedAt, _ = time.Parse(time.RFC3339Nano, ins.State.StartedAt) //nolint:errcheck // zero when unset
		rec.endedAt, _ = time.Parse(time.RFC3339Nano, ins.State.FinishedAt)  //nolint:errcheck // zero when unset
		if !rec.endedAt.IsZero() && rec.endedAt.Before(rec.startedAt) {
			// A container that exits at once can end (containerd's
			// stamp) before the Engine stamped its start: it ran for
			// no measurable time.
			rec.startedAt = rec.endedAt
		}
		t.mu.Lock()
		t.exit = rec
		t.mu.Unlock()
	}
	ex := &executor.Exit{Code: rec.code, OOM: rec.oom, Killed: killed && !rec.oom, Message: rec.message,
		StartedAt: rec.startedAt, EndedAt: rec.endedAt, Usage: rec.usage}
	if ex.Message == "" && rec.code == 127 {
		ex.Message = "Command not found in the container (exit code 127)."
	}
	return ex, nil
}

// oomByPeak tells an OOM kill whose flag Docker lost (its OOM event can
// race the exit and be overwritten by it, under load past the second the
// exit is looked at again): a SIGKILL (137) nobody here asked for, by a
// container whose cgroup parent's memory peak (hierarchical, final once
// the container ended) reached its memory limit.
func oomByPeak(code int, killed bool, limit int64, u *executor.Usage) bool {
	return code == 137 && !killed && limit > 0 && u != nil && u.PeakBytes >= limit
}

// inspectTask returns id's container (a command task's or a VPS's);
// executor.ErrUnknownTask when there is none.
func (e *Executor) inspectTask(ctx context.Context, id int64) (container.InspectResponse, error) {
	e.mu.Lock()
	name := ContainerName(id)
	if t := e.tasks[id]; t != nil {
		name = t.name
	}
	e.mu.Unlock()
	ins, err := e.cli.ContainerInspect(ctx, name)
	if err != nil && name == ContainerName(id) && errors.Is(translate(err), environment.ErrNotFound) {
		ins, err = e.cli.ContainerInspect(ctx, VPSContainerName(id))
	}
	if err != nil {
		if err = translate(err); errors.Is(err, environment.ErrNotFound) {
			return ins, fmt.Errorf("task %d: %w", id, executor.ErrUnknownTask)
		}
		return ins, fmt.Errorf("inspect task %d: %w", id, err)
	}
	if ins.Config == nil || ins.Config.Labels[LabelRunner] != e.cfg.RunnerName || ins.State == nil {
		return ins, fmt.Errorf("task %d: container of another runner: %w", id, executor.ErrUnknownTask)
	}
	return ins, nil
}

// Kill sends SIGKILL to the task's container (a no-op once it ended); its
// exit is then reported as Killed. The mark survives a runner restart.
func (e *Executor) Kill(ctx context.Context, id int64) error {
	ins, err := e.inspectTask(ctx, id)
	if err != nil {
		return err
	}
	if ins.Config.Labels[LabelTaskType] == executor.TaskVPS && e.isStopped(id) {
		// Marked stopped: stopped and kept, never killed (vpslife.go).
		return e.StopVPS(ctx, id)
	}
	if !ins.State.Running {
		return nil
	}
	t := e.track(id, ins.Config.Labels, time.Now())
	t.mu.Lock()
	t.st.Killed = true
	serr := e.saveStateLocked(t)
	t.mu.Unlock()
	if serr != nil {
		e.log.Warn("save kill mark", keyTaskID, id, keyErr, serr)
	}
	if err := e.cli.ContainerKill(ctx, ins.ID, "KILL"); err != nil {
		err = translate(err)
		if ins, ierr := e.inspectTask(ctx, id); ierr == nil && !ins.State.Running {
			return nil // it ended meanwhile
		}
		return fmt.Errorf("kill task %d: %w", id, err)
	}
	if ins.State.Paused {
		// SIGKILL waits in a frozen cgroup; thaw it so the task dies now.
		if err := e.cli.ContainerUnpause(ctx, ins.ID); err != nil {
			e.log.Debug("unpause killed task", keyTaskID, id, keyErr, err)
		}
	}
	e.log.Info("task killed", keyTaskID, id)
	return nil
}

// Pause freezes the task's container (a no-op when paused).
func (e *Executor) Pause(ctx context.Context, id int64) error {
	ins, err := e.inspectTask(ctx, id)
	if err != nil {
		return err
	}
	if !ins.State.Running {
		return fmt.Errorf("%w: pause task %d: it has ended", environment.ErrConflict, id)
	}
	if ins.State.Paused {
		return nil
	}
	if err := e.cli.ContainerPause(ctx, ins.ID); err != nil {
		return fmt.Errorf("pause task %d: %w", id, translate(err))
	}
	return nil
}

// Resume thaws the task's container (a no-op when not paused).
func (e *Executor) Resume(ctx context.Context, id int64) error {
	ins, err := e.inspectTask(ctx, id)
	if err != nil {
		return err
	}
	if !ins.State.Paused {
		if !ins.State.Running {
			return fmt.Errorf("%w: resume task %d: it has ended", environment.ErrConflict, id)
		}
		return nil
	}
	if err := e.cli.ContainerUnpause(ctx, ins.ID); err != nil {
		return fmt.Errorf("resume task %d: %w", id, translate(err))
	}
	return nil
}

// Forget removes an ended task's container and state once its end was
// reported. A running task is an error; an unknown one ErrUnknownTask.
func (e *Executor) Forget(ctx context.Context, id int64) error {
	ins, err := e.inspectTask(ctx, id)
	gone := errors.Is(err, executor.ErrUnknownTask)
	if err != nil && !gone {
		return err
	}
	e.mu.Lock()
	t := e.tasks[id]
	e.mu.Unlock()
	if gone && t == nil {
		return fmt.Errorf("forget task %d: %w", id, executor.ErrUnknownTask)
	}
	if !gone && (ins.State.Running || ins.State.Status == container.StateCreated) {
		return fmt.Errorf("%w: forget task %d: it is still running", environment.ErrConflict, id)
	}
	if !gone && e.isStopped(id) {
		return fmt.Errorf("%w: forget task %d: a stopped VPS is kept", environment.ErrConflict, id)
	}
	if t != nil {
		if err := waitLogs(ctx, t); err != nil {
			return err
		}
	}
	if !gone {
		if err := e.cli.ContainerRemove(ctx, ins.ID, container.RemoveOptions{Force: true}); err != nil && !errors.Is(translate(err), environment.ErrNotFound) {
			return fmt.Errorf("remove container of task %d: %w", id, translate(err))
		}
		if ins.HostConfig != nil {
			if err := removeParent(ins.HostConfig.CgroupParent); err != nil {
				e.log.Warn("remove the task container's cgroup parent", keyTaskID, id, keyErr, err)
			}
		}
	}
	if err := os.Remove(e.statePath(id)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("forget task %d: %w", id, err)
	}
	e.mu.Lock()
	delete(e.tasks, id)
	e.mu.Unlock()
	return nil
}
