package runner

import (
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/statedir"
)

// finishedKeep is how long the runner remembers a task whose end it
// reported, to refuse a late duplicate /run for it.
const finishedKeep = 7 * 24 * time.Hour

// finishedDir holds the tombstones, in the runner's private state
// directory: a task cannot plant one (it would keep a later task from
// ever starting here).
func (a *Agent) finishedDir() string { return filepath.Join(a.cfg.StateDir, statedir.Finished) }

// markFinished records, on disk so that it survives restarts, that task id
// ran here and its end was acknowledged.
func (a *Agent) markFinished(id int64) {
	if err := os.MkdirAll(a.finishedDir(), 0o700); err != nil {
		a.log.Warn("record finished task", "task_id", id, "err", err)
		return
	}
	if err := os.WriteFile(filepath.Join(a.finishedDir(), strconv.FormatInt(id, 10)), nil, 0o600); err != nil {
		a.log.Warn("record finished task", "task_id", id, "err", err)
	}
}

// finished reports whether task id already ran here (a regular file
// tombstone; anything else is ignored).
func (a *Agent) finished(id int64) bool {
	info, err := os.Lstat(filepath.Join(a.finishedDir(), strconv.FormatInt(id, 10)))
	return err == nil && info.Mode().IsRegular()
}

// pruneFinished forgets records older than finishedKeep.
func (a *Agent) pruneFinished(now time.Time) {
	entries, err := os.ReadDir(a.finishedDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > finishedKeep {
			os.Remove(filepath.Join(a.finishedDir(), e.Name())) //nolint:errcheck // best effort
		}
	}
}
