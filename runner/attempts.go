package runner

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/statedir"
)

// attemptBook remembers, in the runner's private state directory (so that
// it survives a restart and no task can change it), which attempt of each
// tracked task runs here. Reports carry it, so that the cluster can tell a
// late report of an earlier attempt from one of the current attempt.
type attemptBook struct {
	dir string
	mu  sync.Mutex
}

func (b *attemptBook) path(id int64) string {
	return filepath.Join(b.dir, strconv.FormatInt(id, 10))
}

// get returns the attempt recorded for task id (0: none recorded, a task
// started by a runner older than retries or run without one).
func (b *attemptBook) get(id int64) int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.readLocked(id)
}

func (b *attemptBook) readLocked(id int64) int {
	p := b.path(id)
	info, err := os.Lstat(p)
	if err != nil || !info.Mode().IsRegular() || info.Size() > 16 {
		return 0
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// set records attempt for task id.
func (b *attemptBook) set(id int64, attempt int) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(b.path(id), []byte(strconv.Itoa(attempt)), 0o600)
}

// forget drops the record of task id if it still names attempt (a record a
// newer attempt wrote in the meantime stays).
func (b *attemptBook) forget(id int64, attempt int) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.readLocked(id) != attempt {
		return
	}
	if err := os.Remove(b.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return
	}
}

// sameAttempt reports whether two attempt numbers name the same attempt
// (0 and 1 both mean the first).
func sameAttempt(x, y int) bool { return max(1, x) == max(1, y) }

func newAttemptBook(stateDir string) *attemptBook {
	return &attemptBook{dir: filepath.Join(stateDir, statedir.Attempts)}
}

// earlierAttemptWait bounds how long a /run of a task's next attempt waits
// for the report of its earlier attempt's end to be acknowledged.
const earlierAttemptWait = 2 * time.Second

// awaitEarlierAttempt is called when /run asks for another attempt of a
// task whose earlier attempt is still tracked here. The cluster retries a
// task only once that attempt's end is committed, so an ended attempt is
// normally just waiting for the watch loop to report it and forget it:
// kick the loop and wait (bounded) for that. It returns the executor
// states at the end; an attempt still running stays tracked.
func (a *Agent) awaitEarlierAttempt(ctx context.Context, id int64) map[int64]executor.State {
	deadline := time.Now().Add(earlierAttemptWait)
	for {
		states, _ := a.states(ctx)
		s, ok := states[id]
		if !ok || s.Exit == nil || time.Now().After(deadline) {
			return states
		}
		a.kickFor(nil)
		select {
		case <-ctx.Done():
			return states
		case <-time.After(50 * time.Millisecond):
		}
	}
}
