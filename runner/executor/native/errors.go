package native

import "errors"

// ErrNotRunning is returned by Pause and Resume for a task that has exited
// or has not started yet, and by Forget for a task that is still running.
var ErrNotRunning = errors.New("task not running")

// errNotInCgroup means a cgroup's process list named processes that are
// not in that cgroup (a forged or foreign listing): nothing was killed and
// killing again cannot help.
var errNotInCgroup = errors.New("listed processes are not in the cgroup")
