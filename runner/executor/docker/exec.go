package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

var _ executor.Execer = (*Executor)(nil)

// Exec runs s in task id's container (docker exec): as the container's
// user, in its working directory, with its environment (and TERM with a
// TTY). The default command is /bin/bash, else /bin/sh.
func (e *Executor) Exec(ctx context.Context, id int64, s executor.ExecSpec) (executor.Process, error) {
	ins, err := e.inspectTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ins.State.Running || ins.State.Paused {
		return nil, fmt.Errorf("task %d (container %s, status %s): %w", id, ins.Name, ins.State.Status, executor.ErrNotRunning)
	}
	cmd := s.Cmd
	if len(cmd) == 0 {
		for _, sh := range shells {
			if _, err := e.cli.ContainerStatPath(ctx, ins.ID, sh); err == nil {
				cmd = []string{sh}
				break
			}
		}
		if len(cmd) == 0 {
			return nil, fmt.Errorf("task %d: no shell in the container (tried %v)", id, shells)
		}
	}
	opts := container.ExecOptions{
		Tty: s.TTY, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		Cmd: cmd,
	}
	if s.TTY {
		opts.Env = []string{"TERM=xterm-256color"}
		if s.Rows > 0 && s.Cols > 0 {
			opts.ConsoleSize = &[2]uint{s.Rows, s.Cols}
		}
	}
	ex, err := e.cli.ContainerExecCreate(ctx, ins.ID, opts)
	if err != nil {
		return nil, fmt.Errorf("create exec in task %d: %w", id, translate(err))
	}
	hj, err := e.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{Tty: s.TTY, ConsoleSize: opts.ConsoleSize})
	if err != nil {
		return nil, fmt.Errorf("attach to exec in task %d: %w", id, translate(err))
	}
	p := &execProcess{e: e, execID: ex.ID, hj: hj, tty: s.TTY}
	if s.TTY {
		p.stdout = hj.Reader
		if s.Rows > 0 && s.Cols > 0 {
			// Engines older than API 1.42 ignore ConsoleSize.
			if err := p.Resize(ctx, s.Rows, s.Cols); err != nil {
				e.log.Debug("initial exec resize", keyTaskID, id, keyErr, err)
			}
		}
		return p, nil
	}
	// Without a TTY the engine multiplexes both streams on one connection.
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	p.stdout, p.stderr = outR, errR
	go func() {
		_, err := stdcopy.StdCopy(outW, errW, hj.Reader)
		outW.CloseWithError(err)
		errW.CloseWithError(err)
	}()
	return p, nil
}

// execProcess is one docker exec.
type execProcess struct {
	e      *Executor
	execID string
	hj     types.HijackedResponse
	tty    bool
	stdout io.Reader
	stderr io.Reader
	once   sync.Once
}

func (p *execProcess) Stdin() io.WriteCloser { return stdinOf{p} }
func (p *execProcess) Stdout() io.Reader     { return p.stdout }

// Stderr implements executor.Process.
func (p *execProcess) Stderr() io.Reader {
	if p.tty {
		return nil
	}
	return p.stderr
}

// stdinOf writes to the exec's connection; Close half-closes it.
type stdinOf struct{ p *execProcess }

func (s stdinOf) Write(b []byte) (int, error) { return s.p.hj.Conn.Write(b) }
func (s stdinOf) Close() error                { return s.p.hj.CloseWrite() }

// Resize implements executor.Process.
func (p *execProcess) Resize(ctx context.Context, rows, cols uint) error {
	if !p.tty {
		return nil
	}
	if err := p.e.cli.ContainerExecResize(ctx, p.execID, container.ResizeOptions{Height: rows, Width: cols}); err != nil {
		return fmt.Errorf("resize exec: %w", translate(err))
	}
	return nil
}

// Wait polls the engine until the exec ended (its output has, so it ends
// at once or is about to) and returns its exit code.
func (p *execProcess) Wait(ctx context.Context) (int, error) {
	for {
		ins, err := p.e.cli.ContainerExecInspect(ctx, p.execID)
		if err != nil {
			return -1, fmt.Errorf("inspect exec: %w", translate(err))
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("exec still running: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close hangs the exec up and, if it still runs (a command without a TTY
// ignores the hang-up), kills its process: the engine has no call for it,
// but its PID is a host PID the runner may signal.
func (p *execProcess) Close() error {
	p.once.Do(func() {
		p.hj.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ins, err := p.e.cli.ContainerExecInspect(ctx, p.execID)
		if err != nil || !ins.Running || ins.Pid <= 0 {
			return
		}
		if err := syscall.Kill(ins.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			p.e.log.Debug("kill exec process", "pid", ins.Pid, keyErr, err)
		}
	})
	return nil
}
