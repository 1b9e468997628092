package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// shimStartedFDEnv names the descriptor of the pipe a supervisor closes
// once the task's process is recorded (or its failure to start is): the
// Executor's Start waits on it instead of polling the task's files.
const shimStartedFDEnv = "HAKURIVER_SHIM_STARTED_FD"

// shimEndedFDEnv names the descriptor of the pipe a supervisor closes once
// the task's end is recorded (exit.json, not yet synced to disk): the
// Executor reads the end then, while the supervisor syncs the record and
// exits.
const shimEndedFDEnv = "HAKURIVER_SHIM_ENDED_FD"

// shimDirFDEnv names the descriptor of the pipe a warm supervisor reads its
// task directory from.
const shimDirFDEnv = "HAKURIVER_SHIM_DIR_FD"

// WarmArg, given to RunShim (and so to "hakuriver runner-shim") instead of
// a task directory, starts a warm supervisor: it boots, then waits for the
// Executor to send it the directory of the task to run (or to close the
// pipe, which makes it exit).
const WarmArg = "-"

// legacyStageEnv marks the second stage of the supervisor as runners
// before warm supervisors started it (see legacyDetach).
const legacyStageEnv = "HAKURIVER_SHIM_STAGE"

// cleanupTimeout bounds the shim's killing of leftovers and removal of the
// task cgroup after the task ended.
const cleanupTimeout = 10 * time.Second

// RunShim is the body of "hakuriver runner-shim <task-dir>", the per-task
// supervisor that the Executor starts through Config.ShimCommand, in a
// session of its own, its output going to the task directory's shim.log.
// It returns the process exit status. Neither the runner's exit nor a
// SIGKILL of the runner touches it: it is then re-parented to init (or the
// nearest subreaper) and goes on.
//
// The supervisor records its pid, creates the task's cgroup with its
// limits, starts the task in its own process group inside that cgroup,
// tells the Executor (the pipe named by HAKURIVER_SHIM_STARTED_FD), moves
// itself out of the runner's cgroup into the "shims" cgroup, waits for the
// task, kills whatever the task left behind, records the exit atomically
// (exit.json), tells the Executor (HAKURIVER_SHIM_ENDED_FD) and then
// removes the emptied cgroup. It is a child subreaper, so orphans of
// the task are reaped. Cancelling ctx (SIGINT/SIGTERM to the shim) sends
// SIGTERM to the task's process group once; the supervisor keeps waiting
// for the task to end.
//
// RunShim is meant to be the whole of a process: it uses the process's
// cgroup membership and its inherited descriptors.
func RunShim(ctx context.Context, dir string) int {
	if dir != WarmArg && os.Getenv(shimStartedFDEnv) == "" && os.Getenv(legacyStageEnv) == "" {
		return legacyDetach(dir)
	}
	// Nothing the runner inherited reaches the task (its own pipes are
	// marked by inheritedPipe as well).
	executor.CloseInheritedOnExec()
	started := inheritedPipe(shimStartedFDEnv)
	defer started.done()
	ended := inheritedPipe(shimEndedFDEnv)
	defer ended.done()
	// What needs no task is done first, while a warm supervisor waits.
	self, selfErr := readProcStat(os.Getpid())
	reaperErr := setChildSubreaper()
	var warm *warmCgroup
	if dir == WarmArg {
		// The first user lookup loads the C library's user database
		// modules (about a millisecond); the task's own lookup is then
		// quick. Which user it finds does not matter.
		_, _ = executor.LookupUser("0")
		// The first process start checks once whether pidfds work (a
		// clone of its own, about 0.2 ms); finding a process does the
		// same check, so the task's start skips it.
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Release()
		}
		// The first encode or decode of a type builds its codec by
		// reflection; done here, the task's records go out without it.
		warmRecordCodecs()
		warm = newWarmCgroup(os.Getenv(shimCgroupEnv), slog.New(slog.NewTextHandler(os.Stderr, nil)).With(keyPID, os.Getpid()))
		defer warm.discard() // unless the task took it
		started.booted()
		d, ok := awaitTaskDir(ctx)
		if !ok {
			return 0 // closed unused: nothing to do
		}
		dir = d
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With(keyDir, dir, keyPID, os.Getpid())
	if !fileExists(filepath.Join(dir, fileSpec)) {
		log.Error("supervise task: not a task directory")
		return 1
	}
	if selfErr != nil {
		log.Error("supervise task", keyErr, selfErr)
		return 1
	}
	if reaperErr != nil {
		log.Warn("orphans of the task will not be reaped here", keyErr, reaperErr)
	}
	if err := supervise(ctx, dir, self, started, ended, warm, log); err != nil {
		log.Error("supervise task", keyErr, err)
		return 1
	}
	return 0
}

// legacyDetach serves a runner of an earlier version whose binary was
// replaced under it (an upgrade before its restart): such a runner runs
// "runner-shim <dir>" and waits for it to exit, so the supervisor is
// re-executed detached, in its own session, and this process exits at once.
func legacyDetach(dir string) int {
	if !fileExists(filepath.Join(dir, fileSpec)) {
		fmt.Fprintf(os.Stderr, "runner-shim: %s is not a task directory\n", dir)
		return 1
	}
	logf, err := os.OpenFile(filepath.Join(dir, fileShimLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "runner-shim:", err)
		return 1
	}
	defer logf.Close()
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), legacyStageEnv+"=supervise")
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "runner-shim:", err)
		return 1
	}
	if err := cmd.Process.Release(); err != nil {
		fmt.Fprintln(os.Stderr, "runner-shim:", err)
		return 1
	}
	return 0
}

// init keeps a supervisor's main goroutine on the process's main thread
// for good (a LockOSThread in an init does): a goroutine that moves its
// thread between cgroups to fork a task (startFromThread, warmCgroup) then
// never runs on the main thread, whose cgroups are the ones
// /proc/<pid>/cgroup shows (what the kill guard checks) and the ones cgroup
// v1 charges the process's memory to, and which would be wedged rather
// than ended if a goroutine locked to it returned.
func init() {
	if os.Getenv(shimStartedFDEnv) != "" || os.Getenv(legacyStageEnv) != "" {
		runtime.LockOSThread()
	}
}

// awaitTaskDir reads a warm supervisor's task directory from the pipe named
// by shimDirFDEnv and sends the supervisor's output to its shim.log. It
// reports false when the pipe was closed without a directory, or ctx ended.
func awaitTaskDir(ctx context.Context) (string, bool) {
	fd, err := strconv.Atoi(os.Getenv(shimDirFDEnv))
	if err != nil || fd < 3 {
		fmt.Fprintln(os.Stderr, "runner-shim: warm supervisor without a directory pipe")
		return "", false
	}
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "task-dir")
	defer f.Close()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(f, 4096)) // the runner writes it whole and closes
		got <- b
	}()
	var b []byte
	select {
	case <-ctx.Done():
		return "", false
	case b = <-got:
	}
	dir := strings.TrimSuffix(string(b), "\n")
	if dir == "" || !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return "", false
	}
	logf, err := os.OpenFile(filepath.Join(dir, fileShimLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err == nil {
		// Best effort: without it the supervisor's few lines are lost.
		_ = syscall.Dup3(int(logf.Fd()), 1, 0)
		_ = syscall.Dup3(int(logf.Fd()), 2, 0)
		logf.Close()
	}
	return dir, true
}

// startedPipe is the supervisor's end of a pipe the Executor waits on
// (shimStartedFDEnv, shimEndedFDEnv); nil (no pipe inherited) is valid and
// does nothing.
type startedPipe struct{ f *os.File }

// inheritedPipe takes the descriptor named by the environment variable env
// and marks it close-on-exec at once, so that the task never inherits it.
func inheritedPipe(env string) *startedPipe {
	fd, err := strconv.Atoi(os.Getenv(env))
	if err != nil || fd < 3 {
		return nil
	}
	syscall.CloseOnExec(fd)
	return &startedPipe{f: os.NewFile(uintptr(fd), env)}
}

// startedBooted and startedRecorded are what a supervisor writes on its
// started pipe: it has booted (a warm one, waiting for its task), and it
// has recorded its task's process (proc.json), which Start then need not
// read back.
const (
	startedBooted   = 'b'
	startedRecorded = 'r'
)

// booted tells the Executor that this warm supervisor has booted and
// waits for its task (one byte, which Start's wait for the recorded byte
// ignores).
func (p *startedPipe) booted() {
	if p == nil || p.f == nil {
		return
	}
	_, _ = p.f.Write([]byte{startedBooted}) // a runner gone meanwhile closes the dir pipe too
}

// recorded tells the Executor that the task's process is recorded; done
// follows.
func (p *startedPipe) recorded() {
	if p == nil || p.f == nil {
		return
	}
	_, _ = p.f.Write([]byte{startedRecorded}) // a runner gone meanwhile: nobody waits
}

// done closes the pipe, which wakes the Executor's Start; later calls do
// nothing.
func (p *startedPipe) done() {
	if p == nil || p.f == nil {
		return
	}
	_ = p.f.Close() // a runner gone meanwhile is no error: nobody waits
	p.f = nil
}

// supervise runs the task and records its end.
func supervise(ctx context.Context, dir string, self procStat, started, endedPipe *startedPipe, warm *warmCgroup, log *slog.Logger) error {
	rec := shimRecord{PID: os.Getpid(), StartTicks: self.StartTicks}
	// Under the lock: either an executor already recorded the task lost
	// (then do not start it), or it will see this record and leave it be.
	var ended bool
	if err := withDirLock(dir, func() error {
		ended = fileExists(filepath.Join(dir, fileExit))
		if ended {
			return nil
		}
		return writeRecordAhead(filepath.Join(dir, fileShim), rec)
	}); err != nil {
		return err
	}
	if ended {
		return errors.New("task already recorded as ended; not starting it")
	}
	var l launchRecord
	ok, err := readJSON(filepath.Join(dir, fileSpec), &l)
	if err != nil {
		return fmt.Errorf("read launch record: %w", err)
	}
	if !ok {
		return errors.New("read launch record: missing")
	}
	end, emptied := runTask(ctx, dir, l, started, warm, log)
	log.Info("task ended", keyTaskID, l.Spec.TaskID, keyCode, end.Code, "oom", end.OOM, "killed", end.Killed)
	err = recordExit(filepath.Join(dir, fileExit), end, endedPipe, func() {
		if emptied != "" {
			removeCgroup(l.Cgroup, emptied, log)
		}
	})
	started.done() // a task that could not start ends here
	return err
}

// recordExit writes the exit record and runs tidy (the removal of the
// task's empty cgroup), which nothing that reads the record waits for.
// With an ended pipe (a runner of this version) the record is written
// unsynced, the pipe closed (the runner reads and reports the end at
// once), tidy run and the record synced: it survives a crash of the
// machine once the supervisor exits, as before, but the report waits for
// neither a disk flush nor the cgroup's removal. Without, it is written
// synced, after tidy.
func recordExit(path string, end exitRecord, ended *startedPipe, tidy func()) error {
	if ended == nil {
		tidy()
		return writeJSONAtomic(path, end)
	}
	if err := writeRecordAhead(path, end); err != nil {
		tidy()
		return err
	}
	ended.done()
	tidy()
	return syncFile(path)
}

// runTask starts the task (from the warm cgroup, when there is one that
// fits), waits for it and kills and reaps what it left; a task that cannot
// start ends with code -1 and a message saying why. The task's cgroup, if
// it ran in one, is left in place, empty, for the caller to remove once
// the end is out (emptied names it; "" when none).
func runTask(ctx context.Context, dir string, l launchRecord, started *startedPipe, warm *warmCgroup, log *slog.Logger) (end exitRecord, emptied string) {
	startFailed := func(err error) (exitRecord, string) {
		now := time.Now()
		log.Warn("task did not start", keyTaskID, l.Spec.TaskID, keyErr, err)
		return exitRecord{Code: -1, Message: "start: " + err.Error(), StartedAt: now, EndedAt: now}, ""
	}
	tc, err := buildCommand(l.Spec)
	if err != nil {
		return startFailed(err)
	}
	defer tc.close()
	cg, name := l.Cgroup, specCgroup(l.Spec)
	left, fromWarm, err := startTask(tc, cg, l.Spec, warm, log)
	if err != nil {
		return startFailed(err)
	}
	tc.close()
	pid := tc.cmd.Process.Pid
	proc := procRecord{PID: pid, PGID: pid, StartedAt: time.Now(), WarmCgroup: fromWarm}
	if st, err := readProcStat(pid); err == nil {
		proc.StartTicks = st.StartTicks
	}
	// The forking thread leaves the task's cgroup meanwhile (on another
	// core), while the record is written aside; it goes in place once the
	// thread is out: once the process is recorded (Pause and Kill act on
	// a recorded process), the cgroup holds the task alone.
	rec, err := stageRecordAhead(filepath.Join(dir, fileProc), proc)
	<-left
	if err == nil {
		err = rec.place()
	}
	if err != nil {
		log.Warn("record task process", keyErr, err)
	} else {
		started.recorded()
	}
	started.done()
	if cg != nil && !cg.holdsSelf(shimsCgroup) {
		// Off the start's critical path: leave the runner's cgroup (whose
		// service stop would take the supervisor down) for the shims one
		// (an Executor on cgroup v1 starts its supervisors there).
		if err := cg.join(shimsCgroup, os.Getpid()); err != nil {
			log.Error("move the supervisor to the shims cgroup", keyErr, err)
		}
	}
	if fileExists(filepath.Join(dir, fileKill)) {
		// Kill was asked while the task was starting.
		killLeftovers(cg, name, pid, log)
	}
	var ru reaped
	ws, werr := waitTask(ctx, pid, &ru, log)
	end = exitRecord{Code: -1, StartedAt: proc.StartedAt, EndedAt: time.Now()}
	end.Killed = fileExists(filepath.Join(dir, fileKill))
	if cg != nil {
		end.OOM = cg.oomKilled(name, ws.Signaled() && ws.Signal() == syscall.SIGKILL)
	}
	killLeftovers(cg, name, pid, log)
	reapOrphans(2*time.Second, &ru)
	end.Usage = ru.record()
	if cg != nil {
		// Every process is gone: the counters are final.
		if f, err := cg.usage(name); err != nil {
			// Not a fault of the task or the runner (a kernel without
			// cpuacct, say): the end is reported without cgroup figures.
			log.Info("measure the task's usage from its cgroup", keyErr, err)
		} else {
			end.Usage = &usageRecord{UserNs: f.UserNs, SystemNs: f.SystemNs, PeakBytes: f.PeakBytes, Source: "cgroup"}
		}
		emptied = name
	}
	switch {
	case werr != nil:
		end.Message = werr.Error()
	case ws.Exited():
		end.Code = ws.ExitStatus()
	case ws.Signaled():
		end.Signal = int(ws.Signal())
		if !end.Killed && !end.OOM {
			end.Message = fmt.Sprintf("terminated by signal %d (%v)", end.Signal, ws.Signal())
		}
	}
	return end, emptied
}

// startTask starts tc in the cgroup of s under cg (none when cg is nil):
// from the warm cgroup when it fits (fromWarm), else in one made now. It
// returns like startInCgroup; on an error the task's cgroup is gone.
func startTask(tc *taskCommand, cg *cgroupLayout, s executor.Spec, warm *warmCgroup, log *slog.Logger) (left <-chan struct{}, fromWarm bool, err error) {
	name := specCgroup(s)
	if warm.fits(cg) {
		left, fallback, err := warm.start(tc, name, specLimits(s))
		if !fallback {
			if err != nil {
				removeCgroup(cg, name, log)
			}
			return left, true, err
		}
	}
	warm.discard()
	if cg != nil {
		if err := prepareCgroup(cg, name, s, log); err != nil {
			return nil, false, err
		}
	}
	left, err = startInCgroup(tc, cg, name, log)
	if err != nil && cg != nil {
		removeCgroup(cg, name, log)
	}
	return left, false, err
}

// specLimits returns the cgroup limits of s.
func specLimits(s executor.Spec) limits {
	return limits{Cores: s.Cores, MemoryBytes: s.MemoryBytes, CPUs: s.CPUs, Mems: s.Mems}
}

// prepareCgroup creates the task's cgroup with its limits (removing it
// again when that fails), and the parent and shims cgroups first when they
// are missing (the Executor made them when it started).
func prepareCgroup(cg *cgroupLayout, name string, s executor.Spec, log *slog.Logger) error {
	if !cg.isSetUp() {
		if err := cg.setup(); err != nil {
			return err
		}
	}
	// Never share a cgroup with another task (say, of another runner on the
	// same host using the same parent and task ID): Kill would hit both.
	pids, err := cg.procs(name)
	if err != nil {
		return err
	}
	if len(pids) > 0 {
		return fmt.Errorf("create cgroup %s: in use by processes %v", name, pids)
	}
	if err := cg.create(name, specLimits(s)); err != nil {
		removeCgroup(cg, name, log)
		return err
	}
	return nil
}

// startInCgroup starts the task inside cgroup name: the shim joins the
// cgroup, forks the task (which inherits it, so nothing it forks can slip
// out) and moves back to the shims cgroup. On cgroup v1 only the forking
// thread moves (startFromThread), and moves back while the caller records
// the task's process; left is closed once it has (at once on the other
// paths), and the start may be reported only then.
func startInCgroup(tc *taskCommand, cg *cgroupLayout, name string, log *slog.Logger) (left <-chan struct{}, err error) {
	if cg != nil && cg.Version == 1 {
		return startFromThread(tc, cg, name, log)
	}
	done := make(chan struct{})
	close(done)
	if cg == nil {
		if err := tc.cmd.Start(); err != nil {
			return done, fmt.Errorf("start task: %w", err)
		}
		return done, nil
	}
	self := os.Getpid()
	if err := cg.join(name, self); err != nil {
		return done, err
	}
	startErr := tc.cmd.Start()
	if err := cg.join(shimsCgroup, self); err != nil {
		// Still supervise: the task runs, but a Kill may end the shim too,
		// which an executor then records as a lost task.
		log.Error("leave the task's cgroup", keyErr, err)
	}
	if startErr != nil {
		return done, fmt.Errorf("start task: %w", startErr)
	}
	return done, nil
}

// startFromThread (cgroup v1) moves only the calling OS thread into cgroup
// name ("0" written to each hierarchy's tasks file: the kernel then moves
// the writing thread alone, without the system-wide lock that moving a
// whole process takes, which costs milliseconds per hierarchy), forks the
// task from that thread (a child starts in the cgroups of the thread that
// forked it, so the task is inside before it execs) and returns; the
// thread then moves to the shims cgroup, while the caller records the
// task's process, and closes left. A thread that could not be moved back
// is not reused: its goroutine ends locked to it, which ends the thread.
func startFromThread(tc *taskCommand, cg *cgroupLayout, name string, log *slog.Logger) (left <-chan struct{}, err error) {
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := cg.joinThread(name); err != nil {
			errc <- err // maybe moved in part: the thread ends with us
			return
		}
		var startErr error
		if err := tc.cmd.Start(); err != nil {
			startErr = fmt.Errorf("start task: %w", err)
		}
		errc <- startErr
		// The thread moves back rather than ending: it is the task's
		// parent in the kernel's eyes, and a task that asked for a
		// parent-death signal (PR_SET_PDEATHSIG: setpriv --pdeathsig,
		// tini -p) would get it at once.
		if err := cg.joinThread(shimsCgroup); err != nil {
			// The task runs; the supervisor goes on without this thread.
			log.Error("leave the task's cgroup", keyErr, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	err = <-errc
	if err != nil {
		<-done // the cgroup is removed next: the thread must be out
	}
	return done, err
}

// waitTask reaps children until the task's main process ends; the shim is a
// subreaper, so orphans of the task are reaped along the way. When ctx ends
// first, the task's process group gets SIGTERM once and the wait goes on.
func waitTask(ctx context.Context, pid int, ru *reaped, log *slog.Logger) (syscall.WaitStatus, error) {
	type result struct {
		ws  syscall.WaitStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		for {
			var ws syscall.WaitStatus
			var r syscall.Rusage
			got, err := syscall.Wait4(-1, &ws, 0, &r)
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case err != nil:
				done <- result{err: fmt.Errorf("wait for task process %d: %w", pid, err)}
				return
			}
			ru.add(&r)
			if got == pid {
				done <- result{ws: ws}
				return
			}
		}
	}()
	select {
	case r := <-done:
		return r.ws, r.err
	case <-ctx.Done():
		log.Info("shim asked to stop: sending SIGTERM to the task")
		if err := signalGroup(pid, syscall.SIGTERM); err != nil {
			log.Warn("forward SIGTERM", keyErr, err)
		}
	}
	r := <-done
	return r.ws, r.err
}

// killLeftovers kills what the task left running: every process of its
// cgroup, or its process group without cgroups.
func killLeftovers(cg *cgroupLayout, name string, pgid int, log *slog.Logger) {
	if cg == nil {
		if err := signalGroup(pgid, syscall.SIGKILL); err != nil {
			log.Warn("kill the task's process group", keyErr, err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := cg.kill(ctx, name); err != nil {
		log.Warn("kill the task's cgroup", keyErr, err)
	}
}

// reaped sums the resource usage of the task's processes as the shim
// reaps them: the measure of a task without a cgroup. Each reaped child's
// figures include those of the descendants it waited for.
type reaped struct {
	userNs, systemNs int64
	maxRSSKiB        int64
	n                int
}

// add counts one reaped child's usage.
func (r *reaped) add(u *syscall.Rusage) {
	r.n++
	r.userNs += u.Utime.Nano()
	r.systemNs += u.Stime.Nano()
	r.maxRSSKiB = max(r.maxRSSKiB, u.Maxrss)
}

// record is the usage of the reaped processes, nil when none was reaped.
func (r *reaped) record() *usageRecord {
	if r.n == 0 {
		return nil
	}
	return &usageRecord{UserNs: r.userNs, SystemNs: r.systemNs, PeakBytes: r.maxRSSKiB << 10, Source: "rusage"}
}

// reapOrphans reaps exited children until none is left or timeout passes,
// counting their usage in ru.
func reapOrphans(timeout time.Duration, ru *reaped) {
	deadline := time.Now().Add(timeout)
	for {
		var ws syscall.WaitStatus
		var r syscall.Rusage
		got, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, &r)
		if got > 0 {
			ru.add(&r)
		}
		switch {
		case errors.Is(err, syscall.EINTR) || got > 0:
			continue
		case err != nil || time.Now().After(deadline):
			return // ECHILD: no children left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// removeCgroup removes the task's cgroup, logging a failure.
func removeCgroup(cg *cgroupLayout, name string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := cg.remove(ctx, name); err != nil {
		log.Warn("remove the task's cgroup", keyErr, err)
	}
}
