//go:build hakuriver_clockskew

package clock

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// OffsetFile is the file in a replica's data dir whose content, a Go
// duration ("-3m", "90s"), a hakuriver_clockskew build adds to its wall
// clock; absent or empty means no offset. The build tag exists only for
// the chaos tests (integration/chaos): Linux time namespaces do not shift
// CLOCK_REALTIME, and a Go binary reads the clock through the vDSO, out of
// reach of LD_PRELOAD/faketime. A production build compiles system.go
// instead and has no such file, flag or variable.
const OffsetFile = "clock-offset"

// reread bounds how often the offset file is read.
const reread = 200 * time.Millisecond

// Skewable reports whether this build reads a clock offset (tests only).
const Skewable = true

// ForDataDir returns a clock that adds the offset in dataDir's OffsetFile,
// read again at most every 200 ms so that a test can step the clock of a
// running replica (as an NTP step would). The result carries no monotonic
// reading, like the wall clock it emulates.
func ForDataDir(dataDir string, log *slog.Logger) Clock {
	s := &skewed{path: filepath.Join(dataDir, OffsetFile), log: log}
	return s.now
}

type skewed struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	offset time.Duration
	read   time.Time // monotonic: when the file was last read
}

func (s *skewed) now() time.Time {
	real := time.Now()
	s.mu.Lock()
	if s.read.IsZero() || real.Sub(s.read) >= reread {
		s.read = real
		off := time.Duration(0)
		if b, err := os.ReadFile(s.path); err == nil {
			if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil {
				off = d
			}
		}
		if off != s.offset {
			s.log.Info("test clock offset changed (hakuriver_clockskew build)", "offset", off, "was", s.offset)
			s.offset = off
		}
	}
	off := s.offset
	s.mu.Unlock()
	return real.Add(off).Round(0)
}
