package docker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// shells are tried in order; the first that exists in the container runs.
var shells = []string{"/bin/bash", "/bin/sh"}

// Session is an interactive shell in an environment container: a TTY exec
// whose input and output are Read and Write. Close ends it. Read and Write
// may be used from two goroutines; Resize from any.
type Session struct {
	cli    *client.Client
	execID string
	shell  string
	hj     types.HijackedResponse
}

// Shell starts /bin/bash (else /bin/sh) with a TTY in the running
// environment container name, with TERM set and rows×cols as its size (0
// keeps the engine's default). environment.ErrNotFound when the container is
// missing, environment.ErrNoShell (which wraps it) when it has no shell,
// environment.ErrConflict when it is not running.
func (m *Manager) Shell(ctx context.Context, name string, rows, cols uint) (*Session, error) {
	c, err := m.inspectEnv(ctx, name)
	if err != nil {
		return nil, err
	}
	if c.State == nil || !c.State.Running || c.State.Paused {
		status := "unknown"
		if c.State != nil {
			status = c.State.Status
		}
		return nil, fmt.Errorf("%w: Container '%s' is not running (status: %s).", environment.ErrConflict, name, status)
	}
	shell := ""
	for _, s := range shells {
		if _, err := m.cli.ContainerStatPath(ctx, c.ID, s); err == nil {
			shell = s
			break
		}
	}
	if shell == "" {
		return nil, fmt.Errorf("%w (tried %v)", environment.ErrNoShell, shells)
	}
	opts := container.ExecOptions{
		Tty: true, AttachStdin: true, AttachStdout: true, AttachStderr: true,
		Env: []string{"TERM=xterm-256color"},
		Cmd: []string{shell},
	}
	if rows > 0 && cols > 0 {
		opts.ConsoleSize = &[2]uint{rows, cols}
	}
	ex, err := m.cli.ContainerExecCreate(ctx, c.ID, opts)
	if err != nil {
		return nil, fmt.Errorf("create shell exec in %s: %w", name, translate(err))
	}
	hj, err := m.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{Tty: true, ConsoleSize: opts.ConsoleSize})
	if err != nil {
		return nil, fmt.Errorf("attach to shell in %s: %w", name, translate(err))
	}
	s := &Session{
		cli: m.cli, execID: ex.ID, shell: shell, hj: hj,
	}
	if rows > 0 && cols > 0 {
		// Engines older than API 1.42 ignore ConsoleSize.
		if err := s.Resize(ctx, rows, cols); err != nil {
			m.log.Debug("initial shell resize", keyErr, err)
		}
	}
	return s, nil
}

// ShellPath is the shell the session runs.
func (s *Session) ShellPath() string { return s.shell }

// Read reads the shell's output.
func (s *Session) Read(p []byte) (int, error) { return s.hj.Reader.Read(p) }

// Write sends keystrokes to the shell.
func (s *Session) Write(p []byte) (int, error) { return s.hj.Conn.Write(p) }

// CloseWrite signals the end of input.
func (s *Session) CloseWrite() error { return s.hj.CloseWrite() }

// Close ends the session; a shell still running gets a hang-up.
func (s *Session) Close() error {
	s.hj.Close()
	return nil
}

// Resize sets the TTY size.
func (s *Session) Resize(ctx context.Context, rows, cols uint) error {
	if err := s.cli.ContainerExecResize(ctx, s.execID, container.ResizeOptions{Height: rows, Width: cols}); err != nil {
		return fmt.Errorf("resize shell: %w", translate(err))
	}
	return nil
}

// ExitCode waits (bounded by ctx) for the shell to end and returns its exit
// code. Call it once Read returned an error.
func (s *Session) ExitCode(ctx context.Context) (int, error) {
	for {
		ins, err := s.cli.ContainerExecInspect(ctx, s.execID)
		if err != nil {
			return -1, fmt.Errorf("inspect shell exec: %w", translate(err))
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, errors.Join(errors.New("shell still running"), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
