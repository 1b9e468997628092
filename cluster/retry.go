package cluster

import (
	"context"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// retryEnded proposes the next attempt of every task whose attempt ended
// in a status its retry policy covers (fsm.Task.RetryPending), to be placed
// after its retry delay from now. The decision is committed: RetryTask
// names the attempt it ends, so the same proposal from this leader's next
// pass, or from the next leader after a failover, changes nothing. It
// reports whether every proposal committed.
func (l *leader) retryEnded(ctx context.Context, now time.Time) bool {
	tasks := l.state.RetryPending()
	if len(tasks) == 0 {
		return true
	}
	if err := l.known(fsm.CmdRetryTask); err != nil {
		l.log.Info("retries wait for every replica to be upgraded", "tasks", len(tasks), "err", err)
		return true
	}
	ok := true
	for _, t := range tasks {
		if ctx.Err() != nil {
			return false
		}
		c := &fsm.RetryTask{TaskID: t.TaskID, Attempt: t.CurrentAttempt(),
			NotBefore: now.Add(time.Duration(t.RetryDelayMS) * time.Millisecond)}
		if l.applyLogged(ctx, c) {
			l.log.Info("task retried", "task_id", t.TaskID, "attempt", c.Attempt+1, "of", t.Retries+1,
				"ended", string(t.Status), "not_before", c.NotBefore)
		} else {
			ok = false
		}
	}
	return ok
}

// attemptOf is the current attempt of task id as the FSM holds it (0 when
// unknown), stamped into the leader's own reports about it.
func attemptOf(state *fsm.Machine, id int64) int {
	if t, ok := state.Task(id); ok {
		return t.Attempt
	}
	return 0
}
