// Package scheduler decides where pending tasks run. It is pure: Plan reads
// committed state (nodes and active tasks) and returns placements that the
// leader then commits through Raft. Because accounting uses committed
// placements only, a new leader computes exactly what the old one had.
package scheduler

import (
	"sort"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Placement puts one pending task on a node.
type Placement struct {
	TaskID int64
	Node   string
	GPUs   []int
	NUMA   *int
}

// Usage is what the active tasks placed on a node hold.
type Usage struct {
	Cores       int
	MemoryBytes int64
	GPUs        map[int]int64 // GPU ID → task holding it
	Tasks       int
}

// holds reports whether a task in this status holds its node's resources.
func holds(s fsm.Status) bool {
	return s == fsm.StatusAssigning || s == fsm.StatusRunning || s == fsm.StatusPaused
}

// Account sums, per node, the resources held by placed, unfinished tasks.
func Account(active []*fsm.Task) map[string]*Usage {
	out := map[string]*Usage{}
	for _, t := range active {
		if t.AssignedNode == "" || !holds(t.Status) {
			continue
		}
		u := out[t.AssignedNode]
		if u == nil {
			u = &Usage{GPUs: map[int]int64{}}
			out[t.AssignedNode] = u
		}
		u.Cores += t.RequiredCores
		u.MemoryBytes += t.RequiredMemoryBytes
		u.Tasks++
		for _, g := range t.RequiredGPUs {
			u.GPUs[g] = t.TaskID
		}
	}
	return out
}

// Plan returns placements for the pending tasks in active, in submission
// order (task ID). A task goes to its target node when it names one, else
// to the online, undrained node that fits it most tightly (fewest cores
// left over, then least memory left over), so that large jobs still find
// room. A task that fits nowhere now stays pending and does not block
// smaller tasks behind it.
func Plan(nodes []*fsm.Node, active []*fsm.Task) []Placement {
	usage := Account(active)
	var pending []*fsm.Task
	for _, t := range active {
		if t.Status == fsm.StatusPending {
			pending = append(pending, t)
		}
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].TaskID < pending[j].TaskID })
	byName := map[string]*fsm.Node{}
	for _, n := range nodes {
		byName[n.Hostname] = n
	}
	var out []Placement
	for _, t := range pending {
		var best *fsm.Node
		var bestCores int
		var bestMem int64
		consider := func(n *fsm.Node) {
			if n == nil || n.Status != fsm.NodeOnline || n.Drained {
				return
			}
			u := usage[n.Hostname]
			if u == nil {
				u = &Usage{GPUs: map[int]int64{}}
				usage[n.Hostname] = u
			}
			freeCores := n.TotalCores - u.Cores
			freeMem := n.MemoryTotalBytes - u.MemoryBytes
			if t.RequiredCores > freeCores || (t.RequiredMemoryBytes > 0 && t.RequiredMemoryBytes > freeMem) {
				return
			}
			for _, g := range t.RequiredGPUs {
				if _, busy := u.GPUs[g]; busy {
					return
				}
			}
			leftCores, leftMem := freeCores-t.RequiredCores, freeMem-t.RequiredMemoryBytes
			if best == nil || leftCores < bestCores || leftCores == bestCores && leftMem < bestMem {
				best, bestCores, bestMem = n, leftCores, leftMem
			}
		}
		if t.TargetNode != "" {
			consider(byName[t.TargetNode])
		} else {
			for _, n := range nodes {
				consider(n)
			}
		}
		if best == nil {
			continue
		}
		u := usage[best.Hostname]
		u.Cores += t.RequiredCores
		u.MemoryBytes += t.RequiredMemoryBytes
		u.Tasks++
		for _, g := range t.RequiredGPUs {
			u.GPUs[g] = t.TaskID
		}
		out = append(out, Placement{TaskID: t.TaskID, Node: best.Hostname, GPUs: t.RequiredGPUs, NUMA: t.TargetNUMANodeID})
	}
	return out
}
