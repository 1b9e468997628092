// Package docker is HakuRiver's Docker side, and the only package that
// imports the Docker Engine SDK. It has three parts:
//
//   - Manager (env.go, tarball.go, shell.go): a host replica's environment
//     containers, their versioned tarballs in shared storage, and TTY shells
//     into them.
//   - Syncer (sync.go): a runner's `docker load` of the tarball of an
//     environment the cluster recorded (version and SHA-256, verified)
//     before a task uses it, one load per environment at a time.
//   - Executor (executor.go, logs.go, vps.go): runs command tasks and VPS
//     tasks (persistent containers with sshd) and implements
//     executor.Executor.
//
// Every type talks to the engine named by the DOCKER_HOST family of
// environment variables (the local socket by default), negotiating the API
// version. Errors wrap the sentinels of ops/environment (ErrUnavailable when
// the engine cannot be reached), whose rules (names, image names, tarball
// files) this package follows.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// Container labels. Every container HakuRiver creates carries LabelRole.
const (
	// LabelRole is "environment" or "task".
	LabelRole = "hakuriver.role"
	// LabelEnvironment names the environment of an environment container,
	// and of the images committed from it.
	LabelEnvironment = "hakuriver.environment"
	// LabelVersion is an image's version: the Unix timestamp of its tarball.
	LabelVersion = "hakuriver.version"
	// LabelTaskID is the task ID of a task container.
	LabelTaskID = "hakuriver.task_id"
	// LabelRunner is the name of the runner that started a task container.
	LabelRunner = "hakuriver.runner"
	// LabelStdout is the host path a task's stdout is appended to, so that
	// a restarted runner can go on copying it.
	LabelStdout = "hakuriver.stdout"
	// LabelStderr is the same for stderr.
	LabelStderr = "hakuriver.stderr"
	// LabelTaskType is "vps" on a VPS task's container (named
	// hakuriver-vps-<id>) and absent on command task containers.
	LabelTaskType = "hakuriver.task_type"
	// LabelCluster is the ID of the cluster an environment container, an
	// environment image or a task container belongs to. A cluster lists,
	// uses and deletes only objects carrying its own ID, so clusters that
	// share one Docker Engine stay apart.
	LabelCluster = "hakuriver.cluster"

	roleEnvironment = "environment"
	roleTask        = "task"
)

// Config configures a Manager, a Syncer or an Executor. Each constructor
// copies it and reads only the fields its doc lists.
type Config struct {
	// SharedDir is the shared storage root; ContainerDir is the tarball
	// directory inside it.
	SharedDir    string
	ContainerDir string
	// KeepTarballs is how many tarball versions of each environment the
	// Manager keeps (at least 1).
	KeepTarballs int
	// RunnerName labels an Executor's task containers; List only sees the
	// containers of its own runner.
	RunnerName string
	// LocalTempDir is mounted into task containers as /local_temp.
	LocalTempDir string
	// StateDir keeps an Executor's per-task log positions and kill marks.
	// Required by NewExecutor; it must be private to the runner (the
	// runner passes <runner_state_dir>/docker-tasks), never under
	// LocalTempDir, which tasks see.
	StateDir string
	// AllowPrivileged lets task specs ask for privileged containers; when
	// false such a task fails to start. It also lifts the bind-mount
	// allowlist below. Without it a task may bind-mount only under
	// <SharedDir>/shared_data, LocalTempDir and AllowedMountSources, and
	// never the shared-dir root, an ancestor of it, or anything else in it
	// (tarballs, logs), even when an allowed source contains them.
	AllowPrivileged bool
	// AllowedMountSources are host directories (besides SharedDir and
	// LocalTempDir) that task specs may bind-mount when AllowPrivileged is
	// off: the sources of the admin's configured additional_mounts. A mount
	// of anything else (/, the Docker socket) would be root on the runner.
	AllowedMountSources []string
	// NetworkMode of task containers ("host" by default, as the original).
	// VPS containers publish their sshd port, so they use the default
	// bridge network instead when it is "host" or "none".
	NetworkMode string
	// VPSHostIP is the runner-host address VPS sshd ports are published on
	// ("" = 0.0.0.0, every IPv4 interface). The SSH proxy dials the host of
	// the runner's advertised URL, so that address must be covered.
	VPSHostIP string
	// Logger receives progress and state changes; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults of the original's configuration.
func DefaultConfig() Config {
	return Config{
		SharedDir:    "/var/lib/hakuriver/shared",
		ContainerDir: "hakuriver-containers",
		KeepTarballs: 1,
		NetworkMode:  "host",
	}
}

// Validate checks the fields every constructor needs.
func (c Config) Validate() error {
	var errs []error
	if c.SharedDir == "" {
		errs = append(errs, errors.New("shared_dir: must not be empty"))
	}
	if c.ContainerDir == "" || filepath.IsAbs(c.ContainerDir) || strings.Contains(c.ContainerDir, "..") {
		errs = append(errs, fmt.Errorf("container_dir %q: must be a relative directory inside shared_dir", c.ContainerDir))
	}
	if c.KeepTarballs < 1 {
		errs = append(errs, errors.New("keep_tarballs: must be at least 1"))
	}
	return errors.Join(errs...)
}

// normalize validates c, makes its paths absolute and fills defaults.
func (c Config) normalize() (Config, error) {
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("docker config: %w", err)
	}
	var err error
	if c.SharedDir, err = filepath.Abs(c.SharedDir); err != nil {
		return c, fmt.Errorf("shared_dir: %w", err)
	}
	if c.LocalTempDir != "" {
		if c.LocalTempDir, err = filepath.Abs(c.LocalTempDir); err != nil {
			return c, fmt.Errorf("local_temp_dir: %w", err)
		}
	}
	if c.NetworkMode == "" {
		c.NetworkMode = "host"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c, nil
}

// tarballDir is <SharedDir>/<ContainerDir>.
func (c Config) tarballDir() string { return filepath.Join(c.SharedDir, c.ContainerDir) }

// newClient connects lazily to the engine of the environment.
func newClient() (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return cli, nil
}

// ping checks that the engine answers.
func ping(ctx context.Context, cli *client.Client) error {
	if _, err := cli.Ping(ctx); err != nil {
		return translate(fmt.Errorf("ping docker engine at %s: %w", cli.DaemonHost(), err))
	}
	return nil
}

// translate wraps an engine error with the matching sentinel, keeping the
// original message.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, environment.ErrUnavailable), errors.Is(err, environment.ErrNotFound), errors.Is(err, environment.ErrInvalid), errors.Is(err, environment.ErrConflict):
		return err
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("%w: %w", environment.ErrUnavailable, err)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%w: %w", environment.ErrNotFound, err)
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("%w: %w", environment.ErrConflict, err)
	case cerrdefs.IsInvalidArgument(err):
		return fmt.Errorf("%w: %w", environment.ErrInvalid, err)
	}
	return err
}
