package cluster

import (
	"context"
	"io"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// Environments is what a replica needs of its Docker Engine to serve the
// environment API (/api/docker): the environment containers of one
// cluster at a time. cluster declares it and never imports an
// implementation; the composition root (cmd/hakuriver) wires the runner's
// Docker package (runner/executor/docker.Manager) in through a small
// adapter. Errors wrap the sentinels of ops/environment, which the handlers
// map to HTTP statuses with errors.Is.
type Environments interface {
	// Scoped returns the environments of cluster clusterID: those labelled
	// with it, plus unlabelled ones (made before clusters had IDs) for
	// which adopt says yes. What the scope creates carries the label.
	Scoped(clusterID string, adopt func(name string) bool) EnvironmentScope
}

// EnvironmentScope is one cluster's environment containers on this
// replica's engine. Operations on one environment are serialised; all are
// safe for concurrent use.
type EnvironmentScope interface {
	// Environments lists the environment containers by name.
	Environments(ctx context.Context) ([]environment.Container, error)
	// CreateEnvironment creates and starts container name from image;
	// created is false when it already existed.
	CreateEnvironment(ctx context.Context, image, name string) (created bool, err error)
	// StartEnvironment, StopEnvironment and DeleteEnvironment change one
	// environment container (start and stop are no-ops when already so).
	StartEnvironment(ctx context.Context, name string) error
	StopEnvironment(ctx context.Context, name string) error
	DeleteEnvironment(ctx context.Context, name string) error
	// CreateTarball commits environment name and saves it as a tarball in
	// shared storage with a version newer than after; progress (may be nil)
	// is called from the calling goroutine.
	CreateTarball(ctx context.Context, name string, after int64, progress func(environment.Progress)) (environment.Tarball, error)
	// Shell opens a TTY shell in the running environment container name
	// (rows×cols, 0 for the default size). environment.ErrNoShell when it
	// has no shell, ErrConflict when it is not running.
	Shell(ctx context.Context, name string, rows, cols uint) (EnvShell, error)
}

// EnvShell is an interactive shell in an environment container: Read its
// output, Write keystrokes; Close hangs it up.
type EnvShell interface {
	io.ReadWriteCloser
	// ShellPath is the shell that runs.
	ShellPath() string
	// Resize sets the TTY size.
	Resize(ctx context.Context, rows, cols uint) error
	// ExitCode waits (bounded by ctx) for the ended shell's exit code.
	ExitCode(ctx context.Context) (int, error)
}
