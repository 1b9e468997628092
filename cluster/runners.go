package cluster

import (
	"sort"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// tokenOK reports whether got is the cluster token (auth.Authenticator).
func (h *Host) tokenOK(got string) bool { return h.auth.ClusterTokenOK(got) }

// nodeViews joins committed nodes with accounting and, on the leader, live
// figures.
func (h *Host) nodeViews() []api.NodeView {
	nodes := h.machine.Nodes()
	usage := scheduler.Account(h.machine.Active())
	live := h.liveState()
	out := make([]api.NodeView, 0, len(nodes))
	for _, n := range nodes {
		v := api.NodeView{Node: *n}
		if u := usage[n.Hostname]; u != nil {
			v.CoresInUse, v.MemoryInUseBytes, v.TasksInUse = u.Cores, u.MemoryBytes, u.Tasks
			for g := range u.GPUs {
				v.GPUsInUse = append(v.GPUsInUse, g)
			}
			sort.Ints(v.GPUsInUse)
		}
		if n.Status == fsm.NodeOnline {
			v.AvailableCores = max(0, n.TotalCores-v.CoresInUse)
		}
		if hb, at, ok := live.get(n.Hostname); ok {
			s := at.Format(time.RFC3339Nano)
			v.LastHeartbeat = &s
			v.CPUPercent, v.MemoryPercent, v.MemoryUsedBytes = hb.CPUPercent, hb.MemoryPercent, hb.MemoryUsedBytes
			v.CurrentAvgTemp, v.CurrentMaxTemp = hb.CurrentAvgTemp, hb.CurrentMaxTemp
			if len(hb.GPUInfo) > 0 {
				v.GPUInfo = hb.GPUInfo
			}
		}
		v.State = api.NodeState(&v)
		out = append(out, v)
	}
	return out
}
