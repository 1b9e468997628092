package fsm

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned inside a Result when a command names a task or node
// that does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned inside a Result when a command asks for a transition
// the current state does not allow (for example killing a finished task).
var ErrConflict = errors.New("conflict")

// ErrInvalid is returned inside a Result when a command is well formed but its
// content is unacceptable (an empty batch, a duplicate task ID).
var ErrInvalid = errors.New("invalid")

// ErrHalted is matched by the error of every Apply on a Machine that met an
// entry it cannot read: a corrupt entry, or a command type this build does
// not know and that does not carry IgnoreUnknownFlag. Applying later entries
// on a state that missed one would make this replica diverge from the
// others, so the Machine stops: it changes nothing any more, its applied
// index stays at the last entry it applied, and the replica must be stopped
// and upgraded (or its data repaired).
var ErrHalted = errors.New("replica halted")

// EntryError is the error of the entry that halted a Machine.
type EntryError struct {
	// Index is the log index of the entry.
	Index uint64
	// Type is the entry's command type byte (0 for an empty entry).
	Type CommandType
	// Err says why it cannot be read.
	Err error
}

// Error names the entry and what to do.
func (e *EntryError) Error() string {
	return fmt.Sprintf("log entry %d (%s) cannot be applied: %v; the replica stops here rather than skip it "+
		"(a newer replica wrote it? upgrade this binary and start it again)", e.Index, e.Type, e.Err)
}

// Is makes an EntryError match ErrHalted.
func (e *EntryError) Is(target error) bool { return target == ErrHalted }

// Unwrap returns the decode error.
func (e *EntryError) Unwrap() error { return e.Err }
