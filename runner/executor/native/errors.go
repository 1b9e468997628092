package native

import "errors"

// ErrNotRunning is returned by Pause and Resume for a task that has exited
// or has not started yet, and by Forget for a task that is still running.
var ErrNotRunning = errors.New("task not running")
