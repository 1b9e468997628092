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

// tombstoneName names the tombstone of attempt attempt of task id: the
// task ID for its first attempt (as before retries existed), "ID.N" for
// attempt N > 1.
func tombstoneName(id int64, attempt int) string {
	if attempt <= 1 {
		return strconv.FormatInt(id, 10)
	}
	return strconv.FormatInt(id, 10) + "." + strconv.Itoa(attempt)
}

// markFinished records, on disk so that it survives restarts, that attempt
// attempt of task id ran here and its end was acknowledged.
func (a *Agent) markFinished(id int64, attempt int) {
	if err := os.MkdirAll(a.finishedDir(), 0o700); err != nil {
		a.log.Warn("record finished task", "task_id", id, "err", err)
		return
	}
	if err := os.WriteFile(filepath.Join(a.finishedDir(), tombstoneName(id, attempt)), nil, 0o600); err != nil {
		a.log.Warn("record finished task", "task_id", id, "err", err)
	}
}

// finished reports whether attempt attempt of task id already ran here (a
// regular file tombstone; anything else is ignored).
func (a *Agent) finished(id int64, attempt int) bool {
	info, err := os.Lstat(filepath.Join(a.finishedDir(), tombstoneName(id, attempt)))
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
