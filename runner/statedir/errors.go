package statedir

import "errors"

// ErrLocked means another runner holds the state directory.
var ErrLocked = errors.New("runner state dir is in use by another runner")
