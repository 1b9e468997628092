package native

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
)

// Config configures an Executor. New copies it; it is never mutated after.
type Config struct {
	// StateDir holds one directory per task (the runner passes
	// <local_temp_dir>/tasks). Everything the executor knows lives there, so
	// a new Executor over the same StateDir finds the tasks of an earlier
	// one. Required, absolute.
	StateDir string
	// ShimCommand is the argv prefix that runs the per-task supervisor; the
	// task directory is appended as the last argument, and the command must
	// end up calling RunShim with it. Empty means the slim supervisor
	// binary beside os.Executable() when it is there and speaks this
	// ShimProtocol ([dir/hakuriver-shim]: slimShim), else
	// [os.Executable(), "runner-shim"].
	ShimCommand []string
	// CgroupRoot is where the cgroup hierarchies are mounted
	// (/sys/fs/cgroup). Version 2 is used when CgroupRoot/cgroup.controllers
	// exists, version 1 (CgroupRoot/<controller>) otherwise.
	CgroupRoot string
	// CgroupParent is the cgroup, relative to each hierarchy's root, under
	// which task-<id> cgroups are created ("hakuriver"; nested paths such as
	// "hakuriver/<runner>" work). Runners sharing a host that may see the
	// same task ID (runners of different clusters) need different parents:
	// a task whose cgroup is already in use fails to start.
	CgroupParent string
	// DisableCgroups runs tasks without cgroups even where they are
	// writable (no limits; pause with SIGSTOP, kill by process group).
	DisableCgroups bool
	// PollInterval is how often Run looks for ended tasks.
	PollInterval time.Duration
	// StartTimeout bounds how long Start waits for the supervisor to start
	// the task; a task directory that has no supervisor after this long is
	// considered lost.
	StartTimeout time.Duration
	// Logger receives the executor's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults; StateDir must still be set.
func DefaultConfig() Config {
	return Config{
		CgroupRoot:   "/sys/fs/cgroup",
		CgroupParent: "hakuriver",
		PollInterval: 100 * time.Millisecond,
		StartTimeout: 10 * time.Second,
	}
}

// Validate checks the configuration and returns every problem found.
func (c Config) Validate() error {
	var errs []error
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		errs = append(errs, fmt.Errorf("state dir %q: must be an absolute path", c.StateDir))
	}
	if c.CgroupRoot == "" || !filepath.IsAbs(c.CgroupRoot) {
		errs = append(errs, fmt.Errorf("cgroup root %q: must be an absolute path", c.CgroupRoot))
	}
	p := c.CgroupParent
	if p == "" || filepath.IsAbs(p) || filepath.Clean(p) != p || p == "." ||
		strings.HasPrefix(p, "..") {
		errs = append(errs, fmt.Errorf("cgroup parent %q: must be a clean relative path", p))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, errors.New("poll interval: must be positive"))
	}
	if c.StartTimeout <= 0 {
		errs = append(errs, errors.New("start timeout: must be positive"))
	}
	return errors.Join(errs...)
}
