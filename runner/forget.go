package runner

import (
	"context"
	"sync"

	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// forgets is the work that follows the cluster's acknowledgement of a
// task's end: the tombstone that keeps a re-sent /run from starting it
// again, the executor's Forget (a directory removal for a native task, a
// container removal for Docker, which takes tens of milliseconds) and the
// attempt record. One worker does it off the watch loop, in order, so
// that the report of the next task's end never waits for it; the watch
// loop skips a task while it is queued here.
type forgets struct {
	mu    sync.Mutex
	queue []forgetJob
	// pending holds the tasks queued, being forgotten, or forgotten
	// (settled) since the watch loop last pruned: a listing it took
	// before a Forget ended may still show the task.
	pending map[int64]bool
	settled []int64
	wake    chan struct{} // capacity 1: work was queued
}

// forgetJob is one acknowledged end to tidy away.
type forgetJob struct {
	ex      executor.Executor
	id      int64
	attempt int
}

func newForgets() *forgets {
	return &forgets{pending: map[int64]bool{}, wake: make(chan struct{}, 1)}
}

// add queues j, unless its task is queued already.
func (f *forgets) add(j forgetJob) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending[j.id] {
		return
	}
	f.pending[j.id] = true
	f.queue = append(f.queue, j)
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// has reports whether task id is queued, being forgotten, or forgotten
// since the watch loop last pruned.
func (f *forgets) has(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending[id]
}

// next takes the oldest job, if any.
func (f *forgets) next() (forgetJob, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return forgetJob{}, false
	}
	j := f.queue[0]
	f.queue[0] = forgetJob{}
	f.queue = f.queue[1:]
	return j, true
}

// done ends the job of task id; the watch loop's next prune lets it see
// the task again, should it still be listed (a Forget that failed: its
// end is reported and forgotten again) or come back (its next attempt).
func (f *forgets) done(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.settled = append(f.settled, id)
}

// prune forgets the settled jobs. The watch loop calls it before it lists
// the executors, so that a listing taken before a Forget ended never
// shows that task as new.
func (f *forgets) prune() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range f.settled {
		delete(f.pending, id)
	}
	f.settled = f.settled[:0]
}

// forgetLoop does the queued forgets until ctx ends. What is left queued
// then is found again by the next runner process: the task is still
// listed, its end is reported again (the cluster acknowledges it as
// already recorded) and forgotten.
func (a *Agent) forgetLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.forgets.wake:
		}
		for ctx.Err() == nil {
			j, ok := a.forgets.next()
			if !ok {
				break
			}
			a.forget(ctx, j)
		}
	}
}

// forget tidies away one acknowledged end: the tombstone first, so that
// the task is never both unlisted and startable again; the executor's
// listing is marked stale before the job is settled.
func (a *Agent) forget(ctx context.Context, j forgetJob) {
	defer a.forgets.done(j.id)
	a.markFinished(j.id, j.attempt)
	if err := j.ex.Forget(ctx, j.id); err != nil && ctx.Err() == nil {
		a.log.Warn("forget task", "task_id", j.id, "err", err)
	}
	// After the Forget: until then a /run of the next attempt finds this
	// one tracked under its own number and waits for it to go.
	a.attempts.forget(j.id, j.attempt)
	a.markChanged(j.ex)
}
