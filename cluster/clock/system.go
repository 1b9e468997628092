//go:build !hakuriver_clockskew

package clock

import "log/slog"

// ForDataDir returns the clock of the replica whose data dir is dataDir.
// In a production build that is always the system clock: there is no way
// to shift it.
func ForDataDir(dataDir string, log *slog.Logger) Clock { return System }

// Skewable reports whether this build reads a clock offset (tests only).
const Skewable = false
