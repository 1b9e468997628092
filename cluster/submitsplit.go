package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// splitSubmit returns, for a submit to commit in parts (fsm.SubmitPart),
// the task IDs of each part already committed (nil for each part not),
// or nil to commit it in one entry as before. A request some of whose parts
// committed (a retry after the leader that split it failed) is split as it
// was; a new one when it exceeds fsm.MaxPartTasks tasks or
// fsm.MaxPartBytes of encoded tasks and every replica knows
// fsm.CmdSubmitPart.
func (l *leader) splitSubmit(c *fsm.SubmitTasks) [][]int64 {
	if c.RequestID == "" || len(c.Tasks) < 2 {
		return nil
	}
	if done, ok := l.state.RequestParts(c.RequestID); ok {
		return done
	}
	if l.known(fsm.CmdSubmitPart) != nil {
		return nil
	}
	b, err := json.Marshal(c.Tasks)
	if err != nil {
		return nil // Encode reports it
	}
	if parts := fsm.PartsFor(len(c.Tasks), len(b)); parts > 1 {
		return make([][]int64, parts)
	}
	return nil
}

// submitParts commits the parts of a split submit not yet committed, in
// order, and returns the IDs of all its tasks in order, as one entry would.
// Each part is visible, and the scheduler places its tasks, as soon as it
// commits; the tasks are not placed at submit (fsm.SubmitPlaced).
func (l *leader) submitParts(ctx context.Context, c *fsm.SubmitTasks, done [][]int64) (fsm.SubmitResult, error) {
	parts, n := len(done), len(c.Tasks)
	ids := make([]int64, 0, n)
	for i := range parts {
		if done[i] == nil {
			lo, hi := fsm.PartBounds(n, parts, i)
			v, err := l.apply(ctx, &fsm.SubmitPart{RequestID: c.RequestID, Part: i, Parts: parts, Total: n, Tasks: c.Tasks[lo:hi]})
			if err != nil {
				return fsm.SubmitResult{}, fmt.Errorf("submit part %d of %d: %w", i+1, parts, err)
			}
			sr, _ := v.(fsm.SubmitResult)
			done[i] = sr.TaskIDs
			l.kickScheduler()
		}
		ids = append(ids, done[i]...)
	}
	return fsm.SubmitResult{TaskIDs: ids}, nil
}
