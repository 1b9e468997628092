package cluster

import (
	"context"
	"net/http"
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

// leaderView serves a read from the leader when one is known, because only
// the leader holds live runner figures; it falls back to the local replica.
func (h *Host) leaderView(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.IsLeader() && r.Header.Get(api.ForwardedHeader) == "" {
			if id, url := h.leaderInfo(); id != "" && id != h.cfg.NodeID && url != "" {
				if h.forward(w, r, url, nil) {
					return
				}
			}
		}
		next(w, r)
	}
}
