package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

var _ executor.Execer = (*Executor)(nil)

// execHangupGrace is how long a process of a closed exec session has
// between SIGHUP and SIGKILL of its process group.
const execHangupGrace = 2 * time.Second

// Exec runs s inside running task id as the task runs: as its user, with
// its environment and working directory, in its cgroup (so its limits,
// freezing and kill cover it). Native tasks have no namespaces of their
// own, so there is none to enter. The process leads a session of its own
// (with s.TTY, on a new pseudo-terminal). The default command is bash from
// the task's PATH, else sh.
func (e *Executor) Exec(ctx context.Context, id int64, s executor.ExecSpec) (executor.Process, error) {
	t, err := e.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.Exit != nil || t.Proc == nil || t.Paused || !processAlive(t.Proc.PID, t.Proc.StartTicks) {
		return nil, fmt.Errorf("task %d: %w", id, executor.ErrNotRunning)
	}
	spec := t.Launch.Spec
	spec.Stdout, spec.Stderr = "", ""
	spec.Command, spec.Args = "", nil
	if len(s.Cmd) > 0 {
		spec.Command, spec.Args = s.Cmd[0], s.Cmd[1:]
	}
	if s.TTY {
		spec.Env = withEnv(spec.Env, "TERM", "xterm-256color")
	}
	if spec.Command == "" {
		spec.Command = "sh"
		probe := spec
		probe.Command = "bash"
		if _, err := buildCommand(probe); err == nil {
			spec.Command = "bash"
		}
	}
	tc, err := buildCommand(spec)
	if err != nil {
		return nil, fmt.Errorf("exec in task %d: %w", id, err)
	}
	cmd := tc.cmd
	// The task's cgroup, as this executor lays it out (never as a file
	// says), when the task has one.
	var cg *cgroupLayout
	if t.Launch.Cgroup != nil && e.layout != nil {
		cg = e.layout
	}
	p := &nativeProcess{cmd: cmd, tty: s.TTY, done: make(chan struct{})}
	if s.TTY {
		attrs := cmd.SysProcAttr
		attrs.Setsid, attrs.Setctty, attrs.Ctty = true, true, 0
		var size *pty.Winsize
		if s.Rows > 0 && s.Cols > 0 {
			size = &pty.Winsize{Rows: uint16(s.Rows), Cols: uint16(s.Cols)}
		}
		err = startInTaskCgroup(cg, specCgroup(t.Launch.Spec), cmd, func() error {
			f, err := pty.StartWithAttrs(cmd, size, attrs)
			p.ptm = f
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("exec in task %d: %w", id, err)
		}
		p.stdin, p.stdout = p.ptm, p.ptm
		p.outputs = []*os.File{p.ptm}
	} else {
		// Pipes of our own, not exec.Cmd's: Wait must not close the read
		// ends while output is still being read.
		var fds [6]*os.File
		for i := 0; i < 6; i += 2 {
			if fds[i], fds[i+1], err = os.Pipe(); err != nil {
				closeAll(fds[:i]...)
				return nil, fmt.Errorf("exec in task %d: %w", id, err)
			}
		}
		inR, inW, outR, outW, errR, errW := fds[0], fds[1], fds[2], fds[3], fds[4], fds[5]
		cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
		err := startInTaskCgroup(cg, specCgroup(t.Launch.Spec), cmd, cmd.Start)
		closeAll(inR, outW, errW) // the child holds its own copies
		if err != nil {
			closeAll(inW, outR, errR)
			return nil, fmt.Errorf("exec in task %d: %w", id, err)
		}
		p.stdin, p.stdout, p.stderr = inW, outR, errR
		p.outputs = []*os.File{outR, errR}
	}
	go p.reap()
	return p, nil
}

// withEnv returns a copy of env with key set to value.
func withEnv(env map[string]string, key, value string) map[string]string {
	out := make(map[string]string, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out[key] = value
	return out
}

// startInTaskCgroup runs start (which starts cmd) so that the new process
// begins inside cgroup name: on v2 through clone3's CLONE_INTO_CGROUP, on
// v1 from an OS thread moved into the cgroup (a child starts in its
// forking thread's cgroups). That thread belongs to the runner, which must
// never stay in a task's cgroup (killing the task would kill the runner):
// it moves back to the cgroups it was in, and if that fails its goroutine
// ends locked to it, which ends the thread. Without cg, start just runs.
func startInTaskCgroup(cg *cgroupLayout, name string, cmd *exec.Cmd, start func() error) error {
	if cg == nil {
		return start()
	}
	if cg.Version == 2 {
		dir, err := os.Open(cg.dir("", name))
		if err != nil {
			return fmt.Errorf("open the task's cgroup: %w", err)
		}
		defer dir.Close()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(dir.Fd())
		return start()
	}
	errc := make(chan error, 1)
	go lockedOffMain(func() {
		orig, err := threadCgroups()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		if err := cg.joinThread(name); err != nil {
			errc <- err // maybe moved in part: the thread ends with us
			return
		}
		startErr := start()
		if err := cg.rejoinThread(orig); err != nil {
			errc <- errors.Join(startErr, fmt.Errorf("leave the task's cgroup (the thread ends): %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- startErr
	})
	return <-errc
}

// lockedOffMain runs f locked to an OS thread that is not the process's
// main thread, whose cgroups are the ones /proc/<pid>/cgroup shows (what
// the kill guard checks) and which Go wedges rather than ends when a
// goroutine locked to it returns. f unlocks the thread when it is fit
// for other goroutines again; returning locked ends it. Landed on the
// main thread, the goroutine holds it (so no other goroutine runs there)
// while f runs on a new one.
func lockedOffMain(f func()) {
	runtime.LockOSThread()
	if syscall.Gettid() != os.Getpid() {
		f()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		lockedOffMain(f)
	}()
	<-done
	runtime.UnlockOSThread()
}

// threadCgroups reads the calling thread's v1 cgroups: hierarchy (as
// /proc names it, "cpu,cpuacct") → path within it.
func threadCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read the thread's cgroups: %w", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] != "" {
			out[parts[1]] = parts[2]
		}
	}
	return out, nil
}

// rejoinThread moves the calling OS thread back into the cgroups orig
// (threadCgroups) of every hierarchy of the layout.
func (l cgroupLayout) rejoinThread(orig map[string]string) error {
	done := map[string]bool{}
	for _, h := range l.Controllers {
		if done[h] {
			continue
		}
		done[h] = true
		p, ok := orig[h]
		if !ok {
			p, ok = orig["name="+h] // a named hierarchy: name=systemd
		}
		if !ok {
			return fmt.Errorf("the thread's cgroup in hierarchy %s is unknown", h)
		}
		if err := writeCgroupFile(filepath.Join(l.Root, h, filepath.Clean("/"+p), "tasks"), "0"); err != nil {
			return err
		}
	}
	return nil
}

// nativeProcess is one exec'd process of a native task.
type nativeProcess struct {
	cmd    *exec.Cmd
	tty    bool
	ptm    *os.File // the pseudo-terminal's master side, with tty
	stdin  io.WriteCloser
	stdout io.Reader
	stderr io.Reader

	// outputs are closed a while after the process ended, so that a
	// background child holding them does not keep the session open.
	outputs []*os.File

	done    chan struct{} // closed once reaped
	code    int
	waitErr error
	once    sync.Once
}

// reap waits for the process and records its exit code.
func (p *nativeProcess) reap() {
	err := p.cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		p.code = 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = 128 + int(ws.Signal())
		} else {
			p.code = ee.ExitCode()
		}
	default:
		p.code, p.waitErr = -1, err
	}
	close(p.done)
	time.AfterFunc(execDrain, func() { closeAll(p.outputs...) })
}

// execDrain is how long the output of an exec'd process that ended is
// still read.
const execDrain = time.Second

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		f.Close() //nolint:errcheck // releasing
	}
}

func (p *nativeProcess) Stdin() io.WriteCloser { return p.stdin }
func (p *nativeProcess) Stdout() io.Reader     { return ptyReader{p.stdout} }

// Stderr implements executor.Process.
func (p *nativeProcess) Stderr() io.Reader {
	if p.tty {
		return nil
	}
	return p.stderr
}

// ptyReader turns the EIO a pseudo-terminal's master reads once its last
// slave closed into EOF.
type ptyReader struct{ r io.Reader }

func (r ptyReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if err != nil && errors.Is(err, syscall.EIO) {
		err = io.EOF
	}
	return n, err
}

// Resize implements executor.Process.
func (p *nativeProcess) Resize(_ context.Context, rows, cols uint) error {
	if p.ptm == nil {
		return nil
	}
	if err := pty.Setsize(p.ptm, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)}); err != nil {
		return fmt.Errorf("resize exec terminal: %w", err)
	}
	return nil
}

// Wait implements executor.Process.
func (p *nativeProcess) Wait(ctx context.Context) (int, error) {
	select {
	case <-p.done:
		return p.code, p.waitErr
	case <-ctx.Done():
		return -1, fmt.Errorf("exec still running: %w", ctx.Err())
	}
}

// Close hangs the process's session up and kills its process group if it
// is still there after execHangupGrace.
func (p *nativeProcess) Close() error {
	p.once.Do(func() {
		pid := p.cmd.Process.Pid
		select {
		case <-p.done:
		default:
			signalGroup(pid, syscall.SIGHUP) //nolint:errcheck // best effort: SIGKILL follows
			go func() {
				select {
				case <-p.done:
				case <-time.After(execHangupGrace):
					signalGroup(pid, syscall.SIGKILL) //nolint:errcheck // best effort
				}
			}()
		}
		p.stdin.Close() //nolint:errcheck // the master with a TTY: hangs it up
	})
	return nil
}
