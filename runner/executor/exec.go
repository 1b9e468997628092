package executor

import (
	"context"
	"io"
)

// ExecSpec is a command to run inside a running task.
type ExecSpec struct {
	// Cmd is the command and its arguments; empty runs the default shell
	// (bash, else sh).
	Cmd []string
	// TTY gives the command a terminal of Rows×Cols (0: the default);
	// its stderr is then merged into stdout.
	TTY        bool
	Rows, Cols uint
}

// Process is a command running inside a task, started by Exec. Stdout and
// Stderr are read until EOF, then Wait gives the exit code. Close ends the
// process if it still runs and releases everything; it is safe to call
// more than once and with the other methods.
type Process interface {
	// Stdin is the command's standard input; closing it sends EOF.
	Stdin() io.WriteCloser
	Stdout() io.Reader
	// Stderr is nil with a TTY.
	Stderr() io.Reader
	// Resize changes the TTY's size (no-op without one).
	Resize(ctx context.Context, rows, cols uint) error
	// Wait returns the exit code once the process ended (128+n for death
	// by signal n).
	Wait(ctx context.Context) (int, error)
	Close() error
}

// Execer is an Executor that can run a further command inside a running
// task: in its container (docker exec) or, for a native task, as its user,
// in its cgroup, with its environment and working directory.
type Execer interface {
	// Exec starts s in task id. ErrUnknownTask when id is not tracked,
	// ErrNotRunning when it does not run.
	Exec(ctx context.Context, id int64, s ExecSpec) (Process, error)
}
