package runner

import (
	"context"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// listingMaxAge is how old an executor's last listing may be for a path
// that concerns another executor to use it instead of listing afresh. The
// watch loop lists every executor every 100 ms, so it is rarely reached.
const listingMaxAge = 500 * time.Millisecond

// listings keeps each executor's last successful List answer, so that what
// concerns one executor (a native task's start or end) does not wait for
// the others' listing (the Docker one is an Engine API call) when they
// have not changed since.
type listings struct {
	mu   sync.Mutex
	last map[executor.Executor]listing
	// dirty marks the executors whose tasks changed since their last
	// listing (a start, an end, a kill, a forget): they are listed afresh.
	dirty map[executor.Executor]bool
	// maxAge overrides listingMaxAge (tests).
	maxAge time.Duration
}

// listing is one List answer and when it was asked for.
type listing struct {
	states []executor.State
	at     time.Time
}

// markChanged makes the next listing of ex (nil: of every executor) fresh.
func (a *Agent) markChanged(ex executor.Executor) {
	a.lists.mu.Lock()
	defer a.lists.mu.Unlock()
	if ex == nil {
		for _, e := range a.executors() {
			a.lists.dirty[e] = true
		}
		return
	}
	a.lists.dirty[ex] = true
}

// kickFor marks ex changed (nil: every executor) and wakes the watch loop.
func (a *Agent) kickFor(ex executor.Executor) {
	a.markChanged(ex)
	select {
	case a.kick <- struct{}{}:
	default: // woken already
	}
}

// cachedList returns ex's last listing when it is clean and younger than
// listingMaxAge.
func (a *Agent) cachedList(ex executor.Executor) ([]executor.State, bool) {
	a.lists.mu.Lock()
	defer a.lists.mu.Unlock()
	maxAge := listingMaxAge
	if a.lists.maxAge > 0 {
		maxAge = a.lists.maxAge
	}
	l, ok := a.lists.last[ex]
	if !ok || a.lists.dirty[ex] || time.Since(l.at) > maxAge {
		return nil, false
	}
	return l.states, true
}

// listFresh lists ex and keeps the answer unless a listing asked for later
// is kept already. A change marked while the listing runs stays marked.
func (a *Agent) listFresh(ctx context.Context, ex executor.Executor) ([]executor.State, error) {
	a.lists.mu.Lock()
	delete(a.lists.dirty, ex)
	a.lists.mu.Unlock()
	at := time.Now()
	list, err := ex.List(ctx)
	if err != nil {
		a.markChanged(ex)
		return nil, err
	}
	a.lists.mu.Lock()
	// Two listings of one executor may overlap (the watch loop, a
	// heartbeat, a /run): keep the one asked for last, never an older
	// answer that still shows a task forgotten since.
	if cur, ok := a.lists.last[ex]; !ok || at.After(cur.at) {
		a.lists.last[ex] = listing{states: list, at: at}
	}
	a.lists.mu.Unlock()
	return list, nil
}

// statesFor is allStates listing afresh only fresh and the executors
// marked changed; the others' recent listings are used as they are.
func (a *Agent) statesFor(ctx context.Context, fresh executor.Executor) (map[int64]executor.State, map[int64]executor.Executor, bool) {
	return a.collectStates(ctx, func(ex executor.Executor) ([]executor.State, error) {
		if ex != fresh {
			if list, ok := a.cachedList(ex); ok {
				return list, nil
			}
		}
		return a.listFresh(ctx, ex)
	})
}
