// Package clock is a replica's wall clock: where the host stamps times
// (the times leaders put into commands, token expiry, task IDs, audit
// records), it asks a Clock rather than time.Now, so that a test build can
// run one replica with a clock off by minutes (see clock_skew.go) while a
// production build always reads the system clock.
//
// Durations the host measures in memory (runner silence, waits, timeouts)
// must not come from the wall clock at all: they use time.Now's monotonic
// reading, which no clock step moves.
package clock

import "time"

// Clock returns the current wall-clock time.
type Clock func() time.Time

// System is the system clock.
func System() time.Time { return time.Now() }
