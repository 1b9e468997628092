package runner

import (
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// finishedKeep is how long the runner remembers a task whose end it
// reported, to refuse a late duplicate /run for it.
const finishedKeep = 7 * 24 * time.Hour

func (a *Agent) finishedDir() string { return filepath.Join(a.cfg.LocalTempDir, "finished") }

// markFinished records, on disk so that it survives restarts, that task id
// ran here and its end was acknowledged.
func (a *Agent) markFinished(id int64) {
	if err := os.MkdirAll(a.finishedDir(), 0o755); err != nil {
		a.log.Warn("record finished task", "task_id", id, "err", err)
		return
	}
	if err := os.WriteFile(filepath.Join(a.finishedDir(), strconv.FormatInt(id, 10)), nil, 0o644); err != nil {
		a.log.Warn("record finished task", "task_id", id, "err", err)
	}
}

// finished reports whether task id already ran here.
func (a *Agent) finished(id int64) bool {
	_, err := os.Stat(filepath.Join(a.finishedDir(), strconv.FormatInt(id, 10)))
	return err == nil
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
