package fsm

import (
	"slices"
	"strconv"
)

// AssignTasks places several pending tasks in one entry: the placements of
// one scheduling pass. Each is applied as an AssignTask of its own would
// be, independently and in order: one that is rejected (the task moved on,
// the node went offline) leaves the others unchanged.
type AssignTasks struct {
	Assign []AssignTask `json:"assign"`
}

// SubmitPlaced is a SubmitTasks that also places the new tasks, so that
// submission and placement commit in one entry. The leader proposes it
// when nothing waits in the queue and a node fits. Apply creates the tasks
// exactly as SubmitTasks does, then applies each placement only if it
// still fits the state at this entry (placeAtSubmit); a task whose
// placement does not fit simply stays pending for the scheduler. A retry
// (a RequestID already seen) creates and places nothing.
type SubmitPlaced struct {
	SubmitTasks
	// Place holds placements of tasks of this submit, in queue order.
	Place []AssignTask `json:"place"`
}

// Type implements Command.
func (*AssignTasks) Type() CommandType { return CmdAssignTasks }

// Type implements Command.
func (*SubmitPlaced) Type() CommandType { return CmdSubmitPlaced }

// AssignResults is the Value of an AssignTasks: the outcome of each
// placement, in order (nil for one that was applied).
type AssignResults []error

func (m *Machine) applyAssignTasks(c *AssignTasks) Result {
	out := make(AssignResults, len(c.Assign))
	for i := range c.Assign {
		out[i] = m.applyAssign(&c.Assign[i]).Err
	}
	return Result{Value: out}
}

func (m *Machine) applySubmitPlaced(c *SubmitPlaced) Result {
	queued := m.counts[StatusPending]
	res := m.applySubmit(&c.SubmitTasks)
	sr, ok := res.Value.(SubmitResult)
	if res.Err != nil || !ok || sr.Duplicate || queued > 0 || len(c.Place) == 0 {
		// A task already waiting goes first: the new ones queue behind it.
		return res
	}
	batch := make(map[int64]bool, len(sr.TaskIDs))
	for _, id := range sr.TaskIDs {
		batch[id] = true
	}
	usage := map[string]*nodeUse{}
	throttled := map[int64]int{} // batch → tasks placed by this entry
	for i := range c.Place {
		p := &c.Place[i]
		t, ok := m.tasks[p.TaskID]
		if !ok || !batch[p.TaskID] {
			continue
		}
		delete(batch, p.TaskID) // a task is placed at most once
		u := usage[p.Node]
		if u == nil {
			u = m.nodeUse(p.Node)
			usage[p.Node] = u
		}
		if !m.placeAtSubmit(t, p, u, throttled) {
			continue
		}
		if m.applyAssign(p).Err != nil {
			continue
		}
		u.add(t, p.GPUs, p.NUMA)
		throttled[t.BatchID]++
		sr.Placed = append(sr.Placed, p.TaskID)
	}
	return Result{Value: sr}
}

// nodeUse is what the placed, unfinished tasks on one node hold: the
// scheduler's accounting (scheduler.Account) for one node.
type nodeUse struct {
	cores     int
	memory    int64
	gpus      map[int]bool
	numaCores map[int]int
}

func (u *nodeUse) add(t *Task, gpus []int, numa *int) {
	u.cores += t.RequiredCores
	u.memory += t.RequiredMemoryBytes
	for _, g := range gpus {
		u.gpus[g] = true
	}
	if numa != nil {
		u.numaCores[*numa] += t.RequiredCores
	}
}

// nodeUse sums what the tasks placed on host and holding it (assigning,
// running or paused) hold.
func (m *Machine) nodeUse(host string) *nodeUse {
	u := &nodeUse{gpus: map[int]bool{}, numaCores: map[int]int{}}
	for _, id := range m.active {
		t := m.tasks[id]
		if t.AssignedNode != host {
			continue
		}
		switch t.Status {
		case StatusAssigning, StatusRunning, StatusPaused:
			u.add(t, t.RequiredGPUs, t.TargetNUMANodeID)
		}
	}
	return u
}

// placeAtSubmit reports whether placement p of the new task t fits the
// state: t has no dependencies, its array is under its throttle, its owner
// has no quota (a limited account is left to the scheduler, which counts
// quotas), and the node is online, undrained, t's target if it names one,
// and has the cores, memory, NUMA cores and GPUs free that p takes. The
// rules are the scheduler's (scheduler.fit) and must never change for
// this command type: every replica applies the same entries the same way.
func (m *Machine) placeAtSubmit(t *Task, p *AssignTask, u *nodeUse, placed map[int64]int) bool {
	if len(t.After) > 0 || m.quotaLimited(t.Owner) {
		return false
	}
	if t.ArrayThrottle > 0 && placed[t.BatchID] >= t.ArrayThrottle {
		return false
	}
	n, ok := m.nodes[p.Node]
	if !ok || n.Status != NodeOnline || n.Drained || t.TargetNode != "" && t.TargetNode != p.Node {
		return false
	}
	if t.RequiredCores > n.TotalCores-u.cores ||
		t.RequiredMemoryBytes > 0 && t.RequiredMemoryBytes > n.MemoryTotalBytes-u.memory {
		return false
	}
	if !samePtr(t.TargetNUMANodeID, p.NUMA) {
		return false
	}
	if p.NUMA != nil {
		numa, ok := n.NUMATopology[strconv.Itoa(*p.NUMA)]
		if !ok || t.RequiredCores > len(numa.Cores)-u.numaCores[*p.NUMA] {
			return false
		}
	}
	switch {
	case t.GPUCount > 0:
		if len(p.GPUs) != t.GPUCount {
			return false
		}
	case len(t.RequiredGPUs) > 0:
		if !slices.Equal(p.GPUs, t.RequiredGPUs) {
			return false
		}
	default:
		if len(p.GPUs) > 0 {
			return false
		}
	}
	seen := map[int]bool{}
	for _, g := range p.GPUs {
		if seen[g] || u.gpus[g] || !n.hasGPU(g) {
			return false
		}
		seen[g] = true
	}
	return true
}

// quotaLimited reports whether user, or a group of theirs, has a quota.
func (m *Machine) quotaLimited(user string) bool {
	u, ok := m.acct.users[user]
	if !ok {
		return false
	}
	if u.Quota != (Quota{}) {
		return true
	}
	for _, g := range u.Groups {
		if gr, ok := m.acct.groups[g]; ok && gr.Quota != (Quota{}) {
			return true
		}
	}
	return false
}

func (n *Node) hasGPU(id int) bool {
	for _, g := range n.GPUInfo {
		if g.GPUID == id {
			return true
		}
	}
	return false
}

func samePtr(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
