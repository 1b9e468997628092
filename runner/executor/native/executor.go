// Package native runs tasks as plain processes on the runner host, limited
// with cgroups (cpu quota, memory max, cpuset for NUMA binding, freezer for
// pause) and killed with everything they started.
//
// Every task runs under its own supervisor, the same binary executed as
// "hakuriver runner-shim <task-dir>" (RunShim) in a session of its own, so
// that runner restarts never kill work. All state lives in files under
// Config.StateDir, one directory per task, so a new Executor (a restarted
// runner) finds the tasks of the previous one, running or ended.
//
// A few supervisors are started ahead of their tasks ("warm") and do
// ahead what needs no task: load, check process-start support and, on
// cgroup v1, make a cgroup with a thread of their own inside
// (warmCgroup), which the task's start renames to the task's cgroup and
// forks the task from.
package native

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// pollStep is how often Start, Kill and Wait look at a task's files.
const pollStep = 10 * time.Millisecond

// Executor runs tasks as supervised native processes. It implements
// executor.Executor; all methods are safe for concurrent use, also with
// other Executors (processes) over the same StateDir.
type Executor struct {
	cfg    Config
	log    *slog.Logger
	layout *cgroupLayout // nil: no cgroups, no limits
	// slim, when set, is the supervisor binary ShimCommand names, held
	// open: supervisors start from it (slimShim).
	slim  *slimShimBinary
	exits chan int64
	ran   atomic.Bool
	// wake tells Run that a supervisor this process started has exited:
	// its task's end is read at once instead of at the next poll.
	wake chan struct{}

	mu       sync.Mutex
	notified map[int64]bool // ended tasks already sent on exits
	ended    []int64        // tasks whose supervisor exited, for Run to read
	bad      map[int64]bool // unreadable task records already warned about
	// warm holds the idle supervisors that have booted and wait for a
	// task, oldest first.
	warm     []*warmShim
	spawning int           // warm supervisors started but not booted yet
	warmed   chan struct{} // closed (and replaced) when warm or spawning changes
	closed   bool          // Close was called: start no more warm ones
	// spare is a task directory made ahead (with an empty launch record
	// file), for the next Start to fill and rename: "" when none.
	// spares tracks the goroutines making one (Close waits for them).
	spare  string
	spares sync.WaitGroup
	// starting holds the task IDs a Start is at, each with a channel
	// closed when it returns: Starts of one ID run one at a time.
	starting map[int64]chan struct{}
}

// warmShims is how many idle supervisors an Executor keeps ready once it
// started a task: a start then waits for no process to boot.
const warmShims = 2

// warmBootTimeout bounds how long a warm supervisor may take to boot
// (say it is ready); one that takes longer is ended and not used.
const warmBootTimeout = 30 * time.Second

// warmWait bounds how long a Start waits for a booting warm supervisor
// when none is ready, before it starts one of its own (cold).
const warmWait = 2 * time.Second

// supervisor is a started supervisor process, as Start sees it.
type supervisor struct {
	// started is the read end of its started pipe (waitStarted).
	started *os.File
	// exited is closed once it exited and was reaped; err is then how.
	exited chan struct{}
	// ended is closed once it recorded the task's end (its ended pipe
	// closed) or exited.
	ended chan struct{}
	err   error
	pid   int
}

// warmShim is a supervisor started ahead of time (RunShim with WarmArg),
// waiting for the directory of the task it is to run.
type warmShim struct {
	*supervisor
	// dir is the write end of the pipe the task directory is sent on;
	// closing it unsent makes the supervisor exit.
	dir *os.File
}

// New creates the state directory and probes cgroups: where they cannot be
// created under CgroupRoot/CgroupParent, tasks run without limits (Limited
// reports false) and a warning is logged. It starts no goroutine and no
// process; the first Start begins keeping warmShims idle supervisors
// ready (Close ends them).
func New(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("native executor config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.ShimCommand = slices.Clone(cfg.ShimCommand)
	var shimBinary *slimShimBinary
	if len(cfg.ShimCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the shim binary: %w", err)
		}
		cfg.ShimCommand = []string{exe, "runner-shim"}
		if slim, why := slimShim(exe); slim != nil {
			cfg.ShimCommand, shimBinary = []string{slim.path}, slim
		} else {
			log.Debug("supervisors run from the hakuriver binary", "slim_shim", why)
		}
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	e := &Executor{
		cfg:      cfg,
		log:      log.With("component", "native-executor"),
		exits:    make(chan int64, 64),
		wake:     make(chan struct{}, 1),
		notified: map[int64]bool{},
		starting: map[int64]chan struct{}{},
		bad:      map[int64]bool{},
		warmed:   make(chan struct{}),
		slim:     shimBinary,
	}
	removeStaleNewDirs(cfg.StateDir, time.Now(), e.log)
	if cfg.DisableCgroups {
		e.log.Warn("cgroups disabled: native tasks run WITHOUT cpu/memory limits")
		return e, nil
	}
	l, err := detectLayout(cfg.CgroupRoot, cfg.CgroupParent)
	if err == nil {
		err = l.probe()
	}
	if err != nil {
		e.log.Warn("cgroups are not writable: native tasks run WITHOUT cpu/memory limits", keyErr, err)
		return e, nil
	}
	e.layout = &l
	l.removeStaleWarm(time.Now())
	e.log.Debug("cgroups usable", "version", l.Version, "parent", l.Parent)
	return e, nil
}

// Limited reports whether new tasks get cgroup limits. Safe for concurrent
// use.
func (e *Executor) Limited() bool { return e.layout != nil }

// taskDir is the state directory of task id.
func (e *Executor) taskDir(id int64) string {
	return filepath.Join(e.cfg.StateDir, strconv.FormatInt(id, 10))
}

// Start launches the task under its own supervisor (a warm one when one
// waits) and returns once the task's process runs (or failed to start:
// that is recorded as the task's exit, code -1 with a message, and
// reported by List, Wait and Exits like any other end). Starting an ID
// that is already tracked returns nil and starts nothing. It returns an
// error for an empty command, when no supervisor could be started or the
// supervisor exited without starting the task or saying why (nothing is
// then tracked), and when the supervisor did not report within
// StartTimeout or before ctx ended (the task stays tracked; List reports it
// lost if its supervisor never shows up).
func (e *Executor) Start(ctx context.Context, s executor.Spec) error {
	if s.Command == "" {
		return fmt.Errorf("start task %d: empty command", s.TaskID)
	}
	done, err := e.startOne(ctx, s.TaskID)
	if err != nil {
		return fmt.Errorf("start task %d: %w", s.TaskID, err)
	}
	defer done()
	dir := e.taskDir(s.TaskID)
	var l launchRecord
	var syntax *json.SyntaxError
	if ok, err := readJSON(filepath.Join(dir, fileSpec), &l); ok {
		return nil // tracked already
	} else if err != nil && !errors.As(err, &syntax) {
		return fmt.Errorf("start task %d: %w", s.TaskID, err)
	} else if fileExists(dir) {
		// A directory without a readable launch record (one a crash of
		// the machine left with an empty record, or only part of its
		// files) tracks nothing: no List shows it, no supervisor runs in
		// it (one reads the record first). Out of the way, or the ID
		// could never start here again.
		e.log.Info("removing a task directory without a launch record", keyTaskID, s.TaskID, keyErr, err)
		if err := claimAndRemove(e.cfg.StateDir, filepath.Base(dir)); err != nil {
			return fmt.Errorf("start task %d: remove the stale task directory: %w", s.TaskID, err)
		}
	}
	created, err := e.createTaskDir(s, dir)
	if err != nil || !created {
		return err
	}
	// Refill once this task runs: a supervisor booting meanwhile would
	// take the CPU this start needs.
	defer e.refillWarm()
	defer e.refillSpare()
	sup, warm, err := e.startSupervisor(ctx, dir)
	recorded := false
	if err == nil {
		// A supervisor of this version says when it recorded the
		// process; else the records tell.
		if recorded = waitStarted(ctx, sup.started); !recorded {
			recorded, err = failedStart(ctx, dir, s.TaskID, sup)
		}
	}
	if err != nil {
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove task dir: %w", rerr))
		}
		return fmt.Errorf("start task %d: %w", s.TaskID, err)
	}
	go e.watchSupervisor(s.TaskID, sup)
	if !recorded {
		if err := e.awaitStarted(ctx, s.TaskID); err != nil {
			return fmt.Errorf("start task %d: %w", s.TaskID, err)
		}
	}
	e.log.Info("task started", keyTaskID, s.TaskID, "limited", e.layout != nil, "warm", warm)
	return nil
}

// startOne waits until no other Start of task id runs (or ctx ends), and
// marks one running: done ends it. Concurrent Starts of one ID (a /run
// sent again while the first is at it) then see each other's directory,
// never one half made.
func (e *Executor) startOne(ctx context.Context, id int64) (done func(), err error) {
	for {
		e.mu.Lock()
		busy, ok := e.starting[id]
		if !ok {
			ch := make(chan struct{})
			e.starting[id] = ch
			e.mu.Unlock()
			return func() {
				e.mu.Lock()
				delete(e.starting, id)
				e.mu.Unlock()
				close(ch)
			}, nil
		}
		e.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// spareDirPrefix starts the name of a spare task directory (makeSpare).
const spareDirPrefix = newDirPrefix + "spare-"

// refillSpare makes a spare task directory in the background (makeSpare),
// unless the Executor is closed.
func (e *Executor) refillSpare() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.spare != "" {
		return
	}
	e.spares.Add(1)
	go func() {
		defer e.spares.Done()
		e.makeSpare()
	}()
}

// makeSpare makes a task directory ahead, with its empty files
// (spareFiles), unless one is ready: the inode allocations (costly on a
// filesystem without a journal, which scans recently freed inodes) leave
// the path of the task's start and end.
func (e *Executor) makeSpare() {
	e.mu.Lock()
	ready := e.spare != "" || e.closed
	e.mu.Unlock()
	if ready {
		return
	}
	tmp, err := os.MkdirTemp(e.cfg.StateDir, spareDirPrefix)
	if err != nil {
		e.log.Debug("make a spare task directory", keyErr, err)
		return
	}
	err = makeEmptyFiles(tmp, spareFiles())
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil || e.spare != "" || e.closed {
		os.RemoveAll(tmp) //nolint:errcheck // an empty directory of ours
		return
	}
	e.spare = tmp
}

// spareFiles are the empty files makeSpare makes in a spare task
// directory: the launch record Start fills, and what the supervisor would
// otherwise create on the task's path (its log, the start lock, the files
// made ahead for its records).
func spareFiles() []string {
	return []string{fileSpec, fileShimLog, fileLock, aheadName(fileShim), aheadName(fileProc), aheadName(fileExit)}
}

// makeEmptyFiles creates each of names in dir, empty, mode 0600; none may
// exist.
func makeEmptyFiles(dir string, names []string) error {
	for _, n := range names {
		f, err := os.OpenFile(filepath.Join(dir, n), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// takeSpare returns the spare task directory, if one is ready.
func (e *Executor) takeSpare() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.spare
	e.spare = ""
	return d
}

// newDirPrefix starts the name of a task directory being made
// (createTaskDir), before its rename to the task's ID.
const newDirPrefix = ".new-"

// staleNewDirAge is how old a directory being made must be for
// removeStaleNewDirs to remove it: far longer than a Start takes to rename
// it.
const staleNewDirAge = time.Minute

// removingPrefix starts the name a directory is renamed to before its
// removal (claimAndRemove), so that only what the rename won is removed.
const removingPrefix = ".removing-"

// forgottenPrefix starts the name Forget renames a task directory to
// before removing it.
const forgottenPrefix = ".forgotten-"

// claimAndRemove renames stateDir/name to a name of its own, then removes
// that: a directory another executor on the same state directory renamed
// meanwhile (a spare it took into a task) is left alone (fs.ErrNotExist).
func claimAndRemove(stateDir, name string) error {
	claimed, err := os.MkdirTemp(stateDir, removingPrefix)
	if err != nil {
		return err
	}
	// The directory goes inside the claimed one, which a crash before the
	// removal leaves for the next executor (removeStaleNewDirs).
	if err := os.Rename(filepath.Join(stateDir, name), filepath.Join(claimed, name)); err != nil {
		os.Remove(claimed) //nolint:errcheck // empty, ours
		return err
	}
	return os.RemoveAll(claimed)
}

// removeStaleNewDirs removes what an earlier Start, Forget or removal left
// in the state directory when the runner stopped in between: task
// directories a Start began and never renamed, older than staleNewDirAge
// (a Start of another executor on the same directory may be making one),
// spare ones (whatever their age: an earlier executor's; one of another
// executor on the same directory that it took meanwhile is not removed,
// see claimAndRemove), and directories a Forget or a removal had claimed,
// older than staleNewDirAge.
func removeStaleNewDirs(stateDir string, now time.Time, log *slog.Logger) {
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		return
	}
	for _, ent := range entries {
		name := ent.Name()
		claimed := strings.HasPrefix(name, forgottenPrefix) || strings.HasPrefix(name, removingPrefix)
		if !ent.IsDir() || !claimed && !strings.HasPrefix(name, newDirPrefix) {
			continue
		}
		info, err := ent.Info()
		if err != nil || !strings.HasPrefix(name, spareDirPrefix) && now.Sub(info.ModTime()) < staleNewDirAge {
			continue // gone meanwhile (ENOENT), or recent
		}
		if claimed {
			err = os.RemoveAll(filepath.Join(stateDir, name))
		} else {
			err = claimAndRemove(stateDir, name)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("remove a task directory left in the state directory", "dir", name, keyErr, err)
		}
	}
}

// createTaskDir makes the task's directory with its launch record in one
// rename; created is false when another Start made it first.
func (e *Executor) createTaskDir(s executor.Spec, dir string) (created bool, err error) {
	l := launchRecord{Spec: s, Cgroup: e.layout, CreatedAt: time.Now()}
	if tmp := e.takeSpare(); tmp != "" {
		// Its file made ahead: only the record to write. When that fails,
		// or the spare was taken away meanwhile (by another executor on
		// the state directory), the directory is made anew.
		if err := fillRecord(filepath.Join(tmp, fileSpec), l); err != nil {
			os.RemoveAll(tmp) //nolint:errcheck // best effort: made anew below
		} else if created, err := placeTaskDir(tmp, dir); !errors.Is(err, fs.ErrNotExist) {
			return created, wrapStart(s.TaskID, err)
		}
	}
	tmp, err := os.MkdirTemp(e.cfg.StateDir, newDirPrefix+strconv.FormatInt(s.TaskID, 10)+"-")
	if err != nil {
		return false, wrapStart(s.TaskID, err)
	}
	// Written in place: no one sees the directory before its rename.
	if err = writeNewRecord(filepath.Join(tmp, fileSpec), l); err == nil {
		created, err = placeTaskDir(tmp, dir)
	} else if rerr := os.RemoveAll(tmp); rerr != nil {
		err = errors.Join(err, fmt.Errorf("remove %s: %w", tmp, rerr))
	}
	return created, wrapStart(s.TaskID, err)
}

// placeTaskDir renames the task directory made at tmp to dir; created is
// false, and tmp removed, when dir exists already (another Start made it
// first: idempotent). On another error tmp is removed unless it is gone
// (fs.ErrNotExist, which the error then matches).
func placeTaskDir(tmp, dir string) (created bool, err error) {
	err = os.Rename(tmp, dir)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
		err = nil // tracked already
	}
	if !errors.Is(err, fs.ErrNotExist) {
		if rerr := os.RemoveAll(tmp); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", tmp, rerr))
		}
	}
	return false, err
}

// wrapStart says which task's start err is about; nil stays nil.
func wrapStart(id int64, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("start task %d: %w", id, err)
}

// startSupervisor hands the task directory to an idle warm supervisor
// (waiting up to warmWait for one that is booting when none is ready), or
// starts a supervisor for it when there is none (warm says which). ctx
// only bounds that wait: killing a supervisor after it started would leave
// a task that Start then disowns.
func (e *Executor) startSupervisor(ctx context.Context, dir string) (sup *supervisor, warm bool, err error) {
	for w := e.takeWarm(ctx); w != nil; w = e.takeWarm(ctx) {
		_, err := w.dir.WriteString(dir + "\n")
		if cerr := w.dir.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			return w.supervisor, true, nil
		}
		// It died while idle (EPIPE): try the next one. Its warm cgroup
		// (cgroup v1), empty once its thread died with it, goes.
		w.started.Close()
		e.log.Debug("warm supervisor gone", keyErr, err)
		if e.layout != nil {
			for _, d := range e.layout.dirs(warmCgroupPrefix + strconv.Itoa(w.pid)) {
				_ = syscall.Rmdir(d) // best effort; ENOENT: none made, EBUSY: not empty
			}
		}
	}
	logf, err := os.OpenFile(filepath.Join(dir, fileShimLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("start supervisor: %w", err)
	}
	defer logf.Close()
	sup, _, err = e.launchSupervisor(dir, logf, false)
	return sup, false, err
}

// launchSupervisor starts "ShimCommand arg" in a new session (so no signal
// to the runner's process group or terminal reaches it) with its output on
// logf (nil: /dev/null) and returns it and, with dirPipe, the write end of
// the pipe its task directory is to be sent on. The supervisor is this
// process's child: a goroutine reaps it when it ends; when this process
// ends first, it is re-parented to init (or the nearest subreaper) and
// goes on.
func (e *Executor) launchSupervisor(arg string, logf *os.File, dirPipe bool) (sup *supervisor, dir *os.File, err error) {
	started, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("start supervisor: %w", err)
	}
	defer w.Close()
	// The pipes are the supervisor's fds 3 and up (ExtraFiles): started,
	// the task directory (warm ones), ended.
	files := []*os.File{w}
	// The supervisor's own variables come from here alone, never from
	// the runner's environment.
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "HAKURIVER_SHIM_") })
	env = append(env, shimStartedFDEnv+"=3")
	if dirPipe {
		r, dw, err := os.Pipe()
		if err != nil {
			started.Close()
			return nil, nil, fmt.Errorf("start supervisor: %w", err)
		}
		defer r.Close()
		dir = dw
		files = append(files, r)
		env = append(env, shimDirFDEnv+"=4")
		if e.layout != nil && e.layout.Version == 1 {
			if b, err := json.Marshal(e.layout); err == nil {
				env = append(env, shimCgroupEnv+"="+string(b))
			}
		}
	}
	ended, ew, err := os.Pipe()
	if err != nil {
		started.Close()
		if dir != nil {
			dir.Close()
		}
		return nil, nil, fmt.Errorf("start supervisor: %w", err)
	}
	defer ew.Close()
	files = append(files, ew)
	env = append(env, shimEndedFDEnv+"="+strconv.Itoa(2+len(files)))
	argv := append(slices.Clone(e.cfg.ShimCommand), arg)
	cmd := exec.Command(argv[0], argv[1:]...)
	if e.slim != nil {
		cmd.Path = e.slim.exec() // the file checked in New; argv[0] its path
	}
	cmd.Dir = "/"
	cmd.Env = env
	if logf != nil {
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := cmd.Start
	if l := e.layout; l != nil && l.Version == 1 && l.isSetUp() {
		// Born in the shims cgroup (forked from a thread moved there
		// alone, which takes no system-wide lock): the supervisor need
		// not move itself out of the runner's cgroup, a move of a whole
		// process that stalls every fork and exit on the host for
		// milliseconds, and did so between its task's start and end.
		start = func() error {
			called := false
			err := startInTaskCgroup(l, shimsCgroup, cmd, func() error { called = true; return cmd.Start() })
			if !called {
				// The thread could not join the shims cgroup: start it
				// here; it moves itself there once its task runs.
				err = cmd.Start()
			}
			return err
		}
	}
	if err := start(); err != nil && cmd.Process != nil {
		// It runs; the runner's thread that forked it could not move
		// back and ended with its goroutine.
		e.log.Warn("start supervisor", keyErr, err)
	} else if err != nil {
		started.Close()
		ended.Close()
		if dir != nil {
			dir.Close()
		}
		return nil, nil, fmt.Errorf("start supervisor %q: %w", argv, err)
	}
	sup = &supervisor{started: started, exited: make(chan struct{}), ended: make(chan struct{}), pid: cmd.Process.Pid}
	go func() {
		sup.err = cmd.Wait()
		close(sup.exited)
	}()
	go func() {
		_, _ = io.Copy(io.Discard, ended) // nothing is written: EOF once closed
		ended.Close()
		close(sup.ended)
	}()
	return sup, dir, nil
}

// takeWarm removes the oldest idle warm supervisor from the pool. When
// none is ready but one is booting, it waits for it (up to warmWait, or
// until ctx ends); it returns nil when there is none to have.
func (e *Executor) takeWarm(ctx context.Context) *warmShim {
	var deadline <-chan time.Time
	for {
		e.mu.Lock()
		if len(e.warm) > 0 {
			w := e.warm[0]
			e.warm = e.warm[1:]
			e.mu.Unlock()
			return w
		}
		booting, changed := e.spawning > 0 && !e.closed, e.warmed
		e.mu.Unlock()
		if !booting {
			return nil
		}
		if deadline == nil {
			t := time.NewTimer(warmWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-changed:
		case <-deadline:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// warmChangedLocked wakes the takeWarm calls waiting; e.mu is held.
func (e *Executor) warmChangedLocked() {
	close(e.warmed)
	e.warmed = make(chan struct{})
}

// refillWarm starts warm supervisors in the background until warmShims are
// idle or booting. One joins the pool once it has booted (said so on its
// started pipe), so that a start never hands its task to a process that
// is still loading.
func (e *Executor) refillWarm() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ; !e.closed && len(e.warm)+e.spawning < warmShims; e.spawning++ {
		go func() {
			sup, dir, err := e.launchSupervisor(WarmArg, nil, true)
			if err == nil {
				if err = awaitBooted(sup.started, warmBootTimeout); err != nil {
					sup.started.Close()
					dir.Close() // it exits, if it still runs
				}
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			e.spawning--
			defer e.warmChangedLocked()
			switch {
			case err != nil:
				e.log.Debug("start a warm supervisor", keyErr, err)
			case e.closed:
				sup.started.Close()
				dir.Close() // it exits
			default:
				e.warm = append(e.warm, &warmShim{supervisor: sup, dir: dir})
			}
		}()
	}
}

// awaitBooted waits until a warm supervisor writes its "booted" byte on
// its started pipe (startedPipe.booted), up to timeout.
func awaitBooted(started *os.File, timeout time.Duration) error {
	if err := started.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("wait for a warm supervisor to boot: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(started, b[:]); err != nil {
		return fmt.Errorf("wait for a warm supervisor to boot: %w", err)
	}
	if err := started.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("wait for a warm supervisor to boot: %w", err)
	}
	return nil
}

// Close ends the idle warm supervisors and starts no more. Tasks and their
// supervisors are not touched; Start still works (without warm ones).
func (e *Executor) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.spares.Wait() // none starts once closed
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.spare != "" {
		os.RemoveAll(e.spare) //nolint:errcheck // an empty directory of ours
		e.spare = ""
	}
	for _, w := range e.warm {
		w.started.Close()
		w.dir.Close() // it exits
	}
	e.warm = nil
	e.warmChangedLocked()
	return nil
}

// waitStarted blocks until the supervisor said (startedRecorded) it had
// recorded the task's process, closed the pipe started, or ctx ends, and
// closes the pipe. Either way the task's records say what happened;
// recorded reports that the supervisor said so. The supervisor writes
// nothing on the pipe after that byte, so Start need not wait for the
// close that follows it.
func waitStarted(ctx context.Context, started *os.File) (recorded bool) {
	defer started.Close()
	stop := context.AfterFunc(ctx, func() {
		started.SetReadDeadline(time.Now()) //nolint:errcheck // a pipe supports deadlines
	})
	defer stop()
	var b [16]byte
	for {
		n, err := started.Read(b[:])
		if bytes.IndexByte(b[:n], startedRecorded) >= 0 {
			return true
		}
		if err != nil {
			// EOF: closed without saying so; or the deadline set above.
			return false
		}
	}
}

// exitGrace is how long failedStart waits for a supervisor that closed its
// started pipe without recording anything to exit.
const exitGrace = time.Second

// failedStart returns an error when the supervisor exited without starting
// the task or recording why (a broken shim binary, a task directory it
// could not use): its started pipe is closed, the task has neither a
// process nor an exit record, and the process is gone. The error carries
// the end of its shim.log. In every other case it returns nil and the
// task's records tell the rest: recorded says they already hold its
// process or its end (the usual case: Start need not wait for them), else
// awaitStarted waits.
func failedStart(ctx context.Context, dir string, id int64, sup *supervisor) (recorded bool, err error) {
	t, err := readTask(dir, id)
	if err != nil {
		return false, nil
	}
	if t.Proc != nil || t.Exit != nil {
		return true, nil
	}
	select {
	case <-sup.exited:
	case <-time.After(exitGrace):
		return false, nil
	case <-ctx.Done():
		return false, nil
	}
	if t, err = readTask(dir, id); err != nil || t.Proc != nil || t.Exit != nil {
		return false, nil
	}
	out, _ := readNoFollow(filepath.Join(dir, fileShimLog))
	if len(out) > 1024 {
		out = out[len(out)-1024:]
	}
	return false, fmt.Errorf("supervisor %d exited without starting the task (%v): %s", sup.pid, sup.err, bytes.TrimSpace(out))
}

// awaitStarted waits until the supervisor recorded the task's process or
// its end, or found lost.
func (e *Executor) awaitStarted(ctx context.Context, id int64) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.StartTimeout)
	defer cancel()
	for {
		t, err := e.load(ctx, id)
		if err != nil {
			return err
		}
		if t.Proc != nil || t.Exit != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the supervisor to start the task: %w", ctx.Err())
		case <-time.After(pollStep):
		}
	}
}

// load reads task id's files and reconciles a lost supervisor.
func (e *Executor) load(ctx context.Context, id int64) (*taskFiles, error) {
	t, err := readTask(e.taskDir(id), id)
	if err != nil {
		return nil, err
	}
	t = e.reconcile(ctx, t)
	if !fileExists(filepath.Join(t.Dir, fileSpec)) {
		// Forgotten while being read: its other files may have read as
		// missing, so what was read means nothing.
		return nil, fmt.Errorf("task %d: %w", id, executor.ErrUnknownTask)
	}
	return t, nil
}

// reconcile records the end of a task whose supervisor is gone without
// having recorded it (crashed, killed, or never started within
// StartTimeout): what is left of the task is killed and the end is
// recorded with code -1.
func (e *Executor) reconcile(ctx context.Context, t *taskFiles) *taskFiles {
	if t.Exit != nil {
		return t
	}
	if t.Shim != nil && processAlive(t.Shim.PID, t.Shim.StartTicks) {
		return t
	}
	if t.Shim == nil && time.Since(t.Launch.CreatedAt) < e.cfg.StartTimeout {
		return t // still starting
	}
	var result *taskFiles
	err := withDirLock(t.Dir, func() error {
		result = e.recordLost(ctx, t)
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return t // forgotten meanwhile: load reports it unknown
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) { // not merely forgotten meanwhile
			e.log.Warn("lock task dir", keyTaskID, t.ID, keyErr, err)
		}
		return t
	}
	return result
}

// recordLost is reconcile's decision, taken under the task dir's lock so
// that a supervisor starting late either sees the record (and does not
// start the task) or has written its own record first (and is left alone).
func (e *Executor) recordLost(ctx context.Context, t *taskFiles) *taskFiles {
	var shim shimRecord
	if ok, err := readJSON(filepath.Join(t.Dir, fileShim), &shim); err == nil && ok && t.Shim == nil {
		if processAlive(shim.PID, shim.StartTicks) {
			t.Shim = &shim
			return t // it came up after all
		}
	}
	// The shim writes exit.json just before it exits: look again.
	if ex, err := readExit(t.Dir); err != nil || ex != nil {
		t.Exit = ex
		return t
	}
	end := exitRecord{Code: -1, Lost: true, Killed: t.KillAsked, EndedAt: time.Now()}
	if t.Proc != nil {
		end.StartedAt = t.Proc.StartedAt
	}
	end.OOM = e.killLost(ctx, t)
	if !end.Killed && !end.OOM {
		end.Message = "task supervisor disappeared; the task was stopped, its exit status is unknown"
	}
	if err := writeJSONAtomic(filepath.Join(t.Dir, fileExit), end); err != nil {
		e.log.Warn("record the end of a lost task", keyTaskID, t.ID, keyErr, err)
	}
	e.log.Warn("task supervisor disappeared", keyTaskID, t.ID)
	t.Exit = &end
	return t
}

// lostCleanupTimeout bounds the killing of what a lost task left: it runs
// on the listing path (heartbeats, the watch loop), so it must be short.
const lostCleanupTimeout = 3 * time.Second

// cgroupOf returns the layout to act on task t's cgroup with: always the
// executor's own, derived from its Config, never the one recorded in the
// task's files. It is nil when the task runs without a cgroup or this
// executor has none (the process group is used then).
func (e *Executor) cgroupOf(t *taskFiles) *cgroupLayout {
	if e.layout == nil || t.Launch.Cgroup == nil {
		return nil
	}
	return e.layout
}

// killLost kills and removes what a lost task left; it reports whether the
// OOM killer had struck.
func (e *Executor) killLost(ctx context.Context, t *taskFiles) (oom bool) {
	cg := e.cgroupOf(t)
	if cg == nil {
		if t.Proc != nil {
			if err := signalPGID(t.Proc.PID, t.Proc.PGID, t.Proc.StartTicks, syscall.SIGKILL); err != nil {
				e.log.Warn("kill a lost task", keyTaskID, t.ID, keyErr, err)
			}
		}
		return false
	}
	name := specCgroup(t.Launch.Spec)
	oom = cg.oomKilled(name, false)
	ctx, cancel := context.WithTimeout(ctx, lostCleanupTimeout)
	defer cancel()
	err := cg.kill(ctx, name)
	if err == nil {
		err = cg.remove(ctx, name)
	}
	if err != nil {
		e.log.Warn("clean up a lost task's cgroup", keyTaskID, t.ID, keyErr, err)
	}
	return oom
}

// Kill stops the task and everything it started (its whole cgroup, or its
// process group without cgroups), paused or not, and waits until the end is
// recorded: it counts as killed. Killing an ended task returns nil; an
// unknown ID returns executor.ErrUnknownTask. If ctx ends first, Kill
// returns its error; the task may then still end later.
func (e *Executor) Kill(ctx context.Context, id int64) error {
	t, err := e.load(ctx, id)
	if err != nil {
		return fmt.Errorf("kill task %d: %w", id, err)
	}
	if t.Exit != nil {
		return nil
	}
	if err := writeMarker(filepath.Join(t.Dir, fileKill)); err != nil {
		return fmt.Errorf("kill task %d: %w", id, err)
	}
	e.log.Info("killing task", keyTaskID, id)
	var persisting []int // refused in every round since refusedRounds began
	refusedRounds := 0
	for {
		t, err = e.load(ctx, id)
		if errors.Is(err, executor.ErrUnknownTask) {
			// It ended, and its end was reported and forgotten
			// meanwhile: a short wait on a busy runner.
			return nil
		}
		if err != nil {
			return fmt.Errorf("kill task %d: %w", id, err)
		}
		if t.Exit != nil {
			return nil
		}
		refused := e.killRound(t)
		if refusedRounds == 0 {
			persisting = refused
		} else {
			persisting = slices.DeleteFunc(persisting, func(pid int) bool { return !slices.Contains(refused, pid) })
		}
		refusedRounds++
		if len(persisting) == 0 {
			persisting, refusedRounds = nil, 0
		}
		// A process on its way out stays listed in cgroup.procs for a
		// moment after /proc no longer shows it in the cgroup: only the
		// same processes listed round after round are worth a warning
		// (once per killRefusedRounds/2 rounds).
		if refusedRounds > 0 && refusedRounds%(killRefusedRounds/2) == 0 {
			e.log.Warn("refused to kill processes listed in the task's cgroup but not in it", keyTaskID, t.ID, "pids", persisting, "rounds", refusedRounds)
		} else if len(refused) > 0 {
			e.log.Debug("refused to kill processes listed in the task's cgroup but not in it", keyTaskID, t.ID, "pids", refused)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kill task %d: %w", id, ctx.Err())
		case <-time.After(pollStep):
		}
	}
}

// killRound sends one round of SIGKILL to a running task and returns the
// listed processes it refused to signal (killTarget).
func (e *Executor) killRound(t *taskFiles) (refused []int) {
	if cg := e.cgroupOf(t); cg != nil {
		name := specCgroup(t.Launch.Spec)
		pids, err := cg.procs(name)
		if err != nil {
			e.log.Warn("list the task's processes", keyTaskID, t.ID, keyErr, err)
		}
		return cg.killRound(name, pids)
	}
	if t.Proc != nil {
		if err := signalPGID(t.Proc.PID, t.Proc.PGID, t.Proc.StartTicks, syscall.SIGKILL); err != nil {
			e.log.Warn("kill the task's process group", keyTaskID, t.ID, keyErr, err)
		}
	}
	return nil
}

// Pause freezes the task (cgroup freezer; SIGSTOP to its process group
// without cgroups) and returns once it is frozen or ctx ends. Pausing a
// paused task is a no-op; a task that ended or has not started yet returns
// ErrNotRunning; an unknown ID executor.ErrUnknownTask.
func (e *Executor) Pause(ctx context.Context, id int64) error {
	return e.setPaused(ctx, id, true)
}

// Resume thaws a paused task (SIGCONT without cgroups). Resuming a task
// that is not paused is a no-op; errors are as for Pause.
func (e *Executor) Resume(ctx context.Context, id int64) error {
	return e.setPaused(ctx, id, false)
}

func (e *Executor) setPaused(ctx context.Context, id int64, paused bool) error {
	verb := map[bool]string{true: "pause", false: "resume"}[paused]
	t, err := e.load(ctx, id)
	if err != nil {
		return fmt.Errorf("%s task %d: %w", verb, id, err)
	}
	if t.Exit != nil || t.Proc == nil {
		return fmt.Errorf("%s task %d: %w", verb, id, ErrNotRunning)
	}
	if cg := e.cgroupOf(t); cg != nil {
		err = cg.setFrozen(ctx, specCgroup(t.Launch.Spec), paused)
		if errors.Is(err, fs.ErrNotExist) {
			// The cgroup is gone: the task ended meanwhile (a thawed task
			// may end at once) and its shim removed it.
			err = nil
			if paused {
				err = ErrNotRunning
			}
		}
	} else {
		sig := syscall.SIGCONT
		if paused {
			sig = syscall.SIGSTOP
		}
		err = signalPGID(t.Proc.PID, t.Proc.PGID, t.Proc.StartTicks, sig)
	}
	if err == nil {
		marker := filepath.Join(t.Dir, filePaused)
		if paused {
			err = writeMarker(marker)
		} else if rerr := os.Remove(marker); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("%s task %d: %w", verb, id, err)
	}
	e.log.Info("task "+verb+"d", keyTaskID, id)
	return nil
}

// List returns every tracked task, running or ended but not forgotten,
// sorted by ID, including tasks started by an earlier Executor over the
// same StateDir. A task whose supervisor disappeared is recorded as ended
// (lost) on the way. A task directory whose records cannot be read is
// skipped (and logged once): it is not reported, so the cluster declares
// that task lost, and it never fails or stalls the listing of the others.
func (e *Executor) List(ctx context.Context) ([]executor.State, error) {
	entries, err := os.ReadDir(e.cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	var out []executor.State
	for _, ent := range entries {
		id, ok := parseTaskDirName(ent.Name())
		if !ok || !ent.IsDir() {
			continue
		}
		t, err := e.load(ctx, id)
		if errors.Is(err, executor.ErrUnknownTask) {
			continue // forgotten meanwhile
		}
		if err != nil {
			// One unreadable record must not hide the others (nor stall
			// the heartbeat that lists them): skip it, say so once.
			e.warnBadRecord(id, err)
			continue
		}
		out = append(out, t.state())
	}
	slices.SortFunc(out, func(a, b executor.State) int { return cmp.Compare(a.TaskID, b.TaskID) })
	return out, nil
}

// Wait blocks until task id has ended and returns how, or until ctx ends.
// An unknown ID returns executor.ErrUnknownTask.
func (e *Executor) Wait(ctx context.Context, id int64) (executor.Exit, error) {
	for {
		t, err := e.load(ctx, id)
		if err != nil {
			return executor.Exit{}, fmt.Errorf("wait for task %d: %w", id, err)
		}
		if t.Exit != nil {
			return t.Exit.exit(), nil
		}
		select {
		case <-ctx.Done():
			return executor.Exit{}, fmt.Errorf("wait for task %d: %w", id, ctx.Err())
		case <-time.After(pollStep):
		}
	}
}

// Forget drops an ended task's directory, and its cgroup if a supervisor
// that died after recording the end left it. A running task returns
// ErrNotRunning; an unknown ID executor.ErrUnknownTask.
func (e *Executor) Forget(ctx context.Context, id int64) error {
	t, err := e.load(ctx, id)
	if err != nil {
		return fmt.Errorf("forget task %d: %w", id, err)
	}
	if t.Exit == nil {
		return fmt.Errorf("forget task %d: still running: %w", id, ErrNotRunning)
	}
	// Move it out of the way first, so no reader sees a half-removed task.
	gone := filepath.Join(e.cfg.StateDir, forgottenPrefix+strconv.FormatInt(id, 10)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Rename(t.Dir, gone); err != nil {
		return fmt.Errorf("forget task %d: %w", id, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("forget task %d: %w", id, err)
	}
	if cg := e.cgroupOf(t); cg != nil {
		// Its supervisor removes the task's cgroup once the end is out;
		// one that died before it had left it in place, empty. One try
		// per hierarchy, no wait: a cgroup still busy or being removed
		// by its supervisor is left to it.
		for _, d := range cg.dirs(specCgroup(t.Launch.Spec)) {
			_ = syscall.Rmdir(d) // best effort; ENOENT: gone already
		}
	}
	e.mu.Lock()
	delete(e.notified, id)
	e.mu.Unlock()
	return nil
}

// Exits delivers the ID of each task once it has ended (including tasks
// that ended while no runner was watching), while Run runs; it is closed
// when Run returns. A task ID is delivered again only after Forget. Run
// blocks while the channel (buffered) is full, so whoever calls Run must
// drain it.
func (e *Executor) Exits() <-chan int64 { return e.exits }

// watchSupervisor waits for the supervisor of task id, a child of this
// process, to record the task's end (or exit) and wakes Run.
// Supervisors of an earlier runner process are not children: Run's poll
// finds their ends.
func (e *Executor) watchSupervisor(id int64, sup *supervisor) {
	select {
	case <-sup.ended:
	case <-sup.exited: // a shim that does not know the ended pipe may leave it to the task
	}
	if !e.ran.Load() {
		return // nobody reads them: List finds the end
	}
	e.mu.Lock()
	e.ended = append(e.ended, id)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default: // Run is woken already
	}
}

// endedStates reads the tasks whose supervisor exited since the last call.
func (e *Executor) endedStates(ctx context.Context) []executor.State {
	e.mu.Lock()
	ids := e.ended
	e.ended = nil
	e.mu.Unlock()
	var out []executor.State
	for _, id := range ids {
		if t, err := e.load(ctx, id); err == nil {
			out = append(out, t.state())
		}
	}
	return out
}

// Run watches StateDir every PollInterval until ctx ends, recording lost
// tasks and feeding Exits; the end of a task whose supervisor this Executor
// started is fed as soon as that supervisor exits. It is optional: polling
// List finds the same ends. Call it at most once; it returns nil when ctx
// ends.
func (e *Executor) Run(ctx context.Context) error {
	if !e.ran.CompareAndSwap(false, true) {
		return errors.New("native executor: Run called twice")
	}
	defer close(e.exits)
	tick := time.NewTicker(e.cfg.PollInterval)
	defer tick.Stop()
	full := true
	for {
		var states []executor.State
		if full {
			var err error
			if states, err = e.List(ctx); err != nil {
				e.log.Warn("watch tasks", keyErr, err)
			}
		} else {
			states = e.endedStates(ctx)
		}
		for _, s := range states {
			if s.Exit == nil || e.wasNotified(s.TaskID) {
				continue
			}
			select {
			case e.exits <- s.TaskID:
				e.markNotified(s.TaskID)
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			full = true
		case <-e.wake:
			full = false
		}
	}
}

// wasNotified reports whether id was already sent on Exits.
func (e *Executor) wasNotified(id int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.notified[id]
}

// warnBadRecord logs, once per task, that its record cannot be read.
func (e *Executor) warnBadRecord(id int64, err error) {
	e.mu.Lock()
	seen := e.bad[id]
	e.bad[id] = true
	e.mu.Unlock()
	if !seen {
		e.log.Warn("skipping an unreadable task record", keyTaskID, id, keyErr, err)
	}
}

// markNotified records that id was sent on Exits.
func (e *Executor) markNotified(id int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notified[id] = true
}

// TaskSpec returns the launch spec of task id, which must be running:
// its user and working directory say as whom and where `hakuriver cp`
// acts on it.
func (e *Executor) TaskSpec(ctx context.Context, id int64) (executor.Spec, error) {
	t, err := e.load(ctx, id)
	if err != nil {
		return executor.Spec{}, err
	}
	if t.Exit != nil || t.Proc == nil {
		return executor.Spec{}, fmt.Errorf("task %d: %w", id, executor.ErrNotRunning)
	}
	return t.Launch.Spec, nil
}
