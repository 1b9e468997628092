package fsm

import "errors"

// ErrNotFound is returned inside a Result when a command names a task or node
// that does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned inside a Result when a command asks for a transition
// the current state does not allow (for example killing a finished task).
var ErrConflict = errors.New("conflict")

// ErrInvalid is returned inside a Result when a command is well formed but its
// content is unacceptable (an empty batch, a duplicate task ID).
var ErrInvalid = errors.New("invalid")
