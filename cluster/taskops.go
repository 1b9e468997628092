package cluster

import (
	"context"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// notifyKill tells the task's runner to kill it, in the background. If the
// runner cannot be reached, the next heartbeat that still lists the task gets
// it in its kill list (invariant 5).
func (h *Host) notifyKill(t *fsm.Task) {
	node, ok := h.machine.Node(t.AssignedNode)
	if !ok || node.Status != fsm.NodeOnline {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ref := api.TaskRef{TaskID: t.TaskID, UnitName: t.SystemdUnitName}
		if err := h.runners.Kill(ctx, node.URL, ref); err != nil {
			h.log.Warn("kill on runner; the next heartbeat will retry", "task_id", t.TaskID, "runner", node.Hostname, "err", err)
		}
	}()
}
