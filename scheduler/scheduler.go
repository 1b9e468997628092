// Package scheduler decides where pending tasks run. It is pure: Plan reads
// committed state (nodes and tasks) and returns decisions that the leader
// then commits through Raft. Because accounting uses committed placements
// only, a new leader computes exactly what the old one had.
//
// Policy. Pending tasks are considered by priority (higher first), then in
// submission order. A task whose dependencies are unfinished, whose array
// already runs its throttle's worth of tasks, or whose owner (or one of the
// owner's groups) would go over a quota (View.Quotas), waits. Otherwise it
// goes to its target node when it names one, or else to the online,
// undrained node that fits it most tightly (fewest cores left over, then
// least memory, then fewest GPUs), so that large jobs still find room. A task
// that fits nowhere now, or not under its quota, stays pending without
// blocking other tasks behind it.
package scheduler

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Placement puts one pending task on a node.
type Placement struct {
	TaskID int64
	Node   string
	GPUs   []int
	NUMA   *int
}

// Decision explains why a task was not placed (Waiting) or why it can never
// run (Failed).
type Decision struct {
	TaskID int64
	// Kind is the reason's category, one of the Wait* constants: a small
	// fixed set, fit for a metric label (Reason names IDs and figures).
	Kind   string
	Reason string
}

// The kinds of Decision.
const (
	// WaitDependency: a dependency has not finished yet.
	WaitDependency = "dependency"
	// WaitDependencyFailed: a dependency is missing or ended other than
	// completed (a Failed decision).
	WaitDependencyFailed = "dependency_failed"
	// WaitArrayThrottle: the task's array runs its throttle's worth.
	WaitArrayThrottle = "array_throttle"
	// WaitQuota: the owner or one of their groups is at a quota.
	WaitQuota = "quota"
	// WaitNoOnlineNode: no runner is online.
	WaitNoOnlineNode = "no_online_node"
	// WaitDrained: every online node is drained.
	WaitDrained = "drained"
	// WaitTargetNode: the task's target node is unregistered, offline,
	// drained or too small now.
	WaitTargetNode = "target_node"
	// WaitCapacity: no node has the resources free now.
	WaitCapacity = "capacity"
	// WaitRetryDelay: a retried task waits for its retry delay.
	WaitRetryDelay = "retry_delay"
)

// WaitKinds lists every Decision kind.
func WaitKinds() []string {
	return []string{WaitDependency, WaitDependencyFailed, WaitArrayThrottle, WaitQuota,
		WaitNoOnlineNode, WaitDrained, WaitTargetNode, WaitCapacity, WaitRetryDelay}
}

// Result is the outcome of one scheduling pass.
type Result struct {
	Placements []Placement
	Waiting    []Decision
	Failed     []Decision
	// WakeAt is the earliest time a task waiting for its retry delay may
	// be placed (zero: none waits): plan again then.
	WakeAt time.Time
}

// View is the committed state Plan works on.
type View struct {
	Nodes []*fsm.Node
	// Active holds every task not in a final status.
	Active []*fsm.Task
	// Lookup finds any task (for dependencies that already finished).
	Lookup func(id int64) (*fsm.Task, bool)
	// Quotas are the account limits to enforce (nil: none), built from
	// the committed accounts by NewQuotas.
	Quotas *Quotas
	// Now is the leader's clock: a retried task is not placed before its
	// NotBefore. Zero places it regardless.
	Now time.Time
}

// Usage is what the placed, unfinished tasks on a node hold.
type Usage struct {
	Cores       int
	MemoryBytes int64
	GPUs        map[int]int64 // GPU ID → task holding it
	NUMACores   map[int]int   // NUMA node → cores pinned there
	Tasks       int
}

func newUsage() *Usage { return &Usage{GPUs: map[int]int64{}, NUMACores: map[int]int{}} }

func (u *Usage) add(t *fsm.Task, gpus []int, numa *int) {
	u.Cores += t.RequiredCores
	u.MemoryBytes += t.RequiredMemoryBytes
	u.Tasks++
	for _, g := range gpus {
		u.GPUs[g] = t.TaskID
	}
	if numa != nil {
		u.NUMACores[*numa] += t.RequiredCores
	}
}

// Holds reports whether a task in this status holds its node's resources.
func Holds(s fsm.Status) bool {
	return s == fsm.StatusAssigning || s == fsm.StatusRunning || s == fsm.StatusPaused
}

// Account sums, per node, the resources held by placed, unfinished tasks.
func Account(active []*fsm.Task) map[string]*Usage {
	out := map[string]*Usage{}
	for _, t := range active {
		if t.AssignedNode == "" || !Holds(t.Status) {
			continue
		}
		u := out[t.AssignedNode]
		if u == nil {
			u = newUsage()
			out[t.AssignedNode] = u
		}
		u.add(t, t.RequiredGPUs, t.TargetNUMANodeID)
	}
	return out
}

// Order sorts pending tasks into queue order: priority, then ID.
func Order(tasks []*fsm.Task) {
	sort.SliceStable(tasks, func(i, j int) bool {
		if tasks[i].Priority != tasks[j].Priority {
			return tasks[i].Priority > tasks[j].Priority
		}
		return tasks[i].TaskID < tasks[j].TaskID
	})
}

// Plan runs one scheduling pass.
func Plan(v View) Result { return plan(v, true) }

// plan runs one scheduling pass; with skipMisses, a task that asks at
// least what an earlier one of the pass found on no node is not tried on
// every node again (see misses).
func plan(v View, skipMisses bool) Result {
	usage := Account(v.Active)
	quota := v.Quotas.Usage(v.Active)
	running := map[int64]int{} // batch → tasks holding resources
	pending := make([]*fsm.Task, 0, len(v.Active))
	for _, t := range v.Active {
		switch {
		case t.Status == fsm.StatusPending:
			pending = append(pending, t)
		case Holds(t.Status) && t.BatchID != 0:
			running[t.BatchID]++
		}
	}
	Order(pending)
	res := Result{Waiting: make([]Decision, 0, len(pending))}
	online, undrained := 0, 0
	for _, n := range v.Nodes {
		if n.Status == fsm.NodeOnline {
			online++
			if !n.Drained {
				undrained++
			}
		}
	}
	var miss misses
	said := map[shape]string{} // the reason given to a shape missed
	for _, t := range pending {
		if t.NotBefore != nil && !v.Now.IsZero() && v.Now.Before(*t.NotBefore) {
			res.Waiting = append(res.Waiting, Decision{t.TaskID, WaitRetryDelay, t.RetryLabel()})
			if res.WakeAt.IsZero() || t.NotBefore.Before(res.WakeAt) {
				res.WakeAt = *t.NotBefore
			}
			continue
		}
		if reason, failed := dependencies(t, v.Lookup); reason != "" {
			if failed {
				res.Failed = append(res.Failed, Decision{t.TaskID, WaitDependencyFailed, reason})
			} else {
				res.Waiting = append(res.Waiting, Decision{t.TaskID, WaitDependency, reason})
			}
			continue
		}
		if t.ArrayThrottle > 0 && running[t.BatchID] >= t.ArrayThrottle {
			res.Waiting = append(res.Waiting, Decision{t.TaskID, WaitArrayThrottle, fmt.Sprintf("array throttle: %d of batch %d running (max %d)", running[t.BatchID], t.BatchID, t.ArrayThrottle)})
			continue
		}
		if reason := v.Quotas.hold(t, quota); reason != "" {
			res.Waiting = append(res.Waiting, Decision{t.TaskID, WaitQuota, reason})
			continue
		}
		var p *Placement
		var kind, reason string
		sh, plain := plainShape(t)
		if plain && skipMisses && miss.covers(sh) {
			kind, reason = WaitCapacity, said[sh]
			if reason == "" || online == 0 || undrained == 0 {
				kind, reason = noRoom(t, online, undrained)
				said[sh] = reason
			}
		} else if p, kind, reason = place(t, v.Nodes, usage, online, undrained); p == nil && plain {
			miss.add(sh)
		}
		if p == nil {
			res.Waiting = append(res.Waiting, Decision{t.TaskID, kind, reason})
			continue
		}
		if usage[p.Node] == nil {
			usage[p.Node] = newUsage()
		}
		usage[p.Node].add(t, p.GPUs, p.NUMA)
		if t.RequiredCores < 0 || t.RequiredMemoryBytes < 0 {
			// Submits refuse negative figures, but a task of an older
			// state may hold them: placed, it frees room, so a shape that
			// fit nowhere may fit now.
			miss = nil
		}
		if v.Quotas != nil {
			v.Quotas.charge(t, quota)
		}
		if t.BatchID != 0 {
			running[t.BatchID]++
		}
		res.Placements = append(res.Placements, *p)
	}
	return res
}

// dependencies returns why t cannot start yet ("" when it can) and whether
// it never will.
func dependencies(t *fsm.Task, lookup func(int64) (*fsm.Task, bool)) (string, bool) {
	var waiting []string
	for _, id := range t.After {
		var d *fsm.Task
		ok := false
		if lookup != nil {
			d, ok = lookup(id)
		}
		switch {
		case !ok:
			return fmt.Sprintf("dependency %d does not exist", id), true
		case d.Status == fsm.StatusCompleted:
		case d.Done():
			return fmt.Sprintf("dependency %d ended %s", id, d.Status), true
		default:
			waiting = append(waiting, strconv.FormatInt(id, 10))
		}
	}
	if len(waiting) > 0 {
		return "waiting for " + strings.Join(waiting, ","), false
	}
	return "", false
}

// place finds the node for t, or says why there is none (a Decision kind
// and the reason).
func place(t *fsm.Task, nodes []*fsm.Node, usage map[string]*Usage, online, undrained int) (*Placement, string, string) {
	var best *Placement
	var bestKey [3]int64
	why := ""
	consider := func(n *fsm.Node) {
		if n == nil {
			return
		}
		p, key, reason := fit(t, n, usage[n.Hostname], t.TargetNode != "")
		if p == nil {
			if t.TargetNode != "" {
				why = reason
			}
			return
		}
		if best == nil || key[0] < bestKey[0] || key[0] == bestKey[0] && (key[1] < bestKey[1] || key[1] == bestKey[1] && key[2] < bestKey[2]) {
			best, bestKey = p, key
		}
	}
	if t.TargetNode != "" {
		var target *fsm.Node
		for _, n := range nodes {
			if n.Hostname == t.TargetNode {
				target = n
			}
		}
		if target == nil {
			return nil, WaitTargetNode, fmt.Sprintf("target node %s is not registered", t.TargetNode)
		}
		consider(target)
		if best != nil {
			return best, "", ""
		}
		return nil, WaitTargetNode, why
	}
	for _, n := range nodes {
		consider(n)
	}
	if best != nil {
		return best, "", ""
	}
	kind, reason := noRoom(t, online, undrained)
	return nil, kind, reason
}

// noRoom says why an untargeted task t fits no node (a Decision kind and
// the reason).
func noRoom(t *fsm.Task, online, undrained int) (kind, reason string) {
	if online == 0 {
		return WaitNoOnlineNode, "no online node (waiting for a runner)"
	}
	if undrained == 0 {
		return WaitDrained, "every online node is drained"
	}
	return WaitCapacity, fmt.Sprintf("no node has %s free", describe(t))
}

// shape is what a task that names no node, NUMA node or GPU asks of a
// node: cores, memory (0: none) and a count of GPUs.
type shape struct {
	cores int
	mem   int64
	gpus  int
}

// plainShape returns t's shape, and false when t names a node, a NUMA node
// or GPUs (what fits it then depends on more than its shape).
func plainShape(t *fsm.Task) (shape, bool) {
	if t.TargetNode != "" || t.TargetNUMANodeID != nil || len(t.RequiredGPUs) > 0 {
		return shape{}, false
	}
	return shape{cores: t.RequiredCores, mem: max(t.RequiredMemoryBytes, 0), gpus: max(t.GPUCount, 0)}, true
}

// misses are the shapes that fit no node in this pass. Within a pass the
// nodes' usage only grows, so a shape asking at least as much of each
// (cores, memory, GPUs) as one of them fits no node either: with a long
// queue on a full cluster, most tasks are decided without trying every
// node. At most maxMisses are kept: a shape covered by a new one is
// dropped, and once maxMisses are kept no new one is added.
type misses []shape

// maxMisses bounds the shapes misses keeps (each is checked per task).
const maxMisses = 32

// covers reports whether s asks at least as much as a shape that fit no
// node.
func (m misses) covers(s shape) bool {
	for _, f := range m {
		if s.cores >= f.cores && s.mem >= f.mem && s.gpus >= f.gpus {
			return true
		}
	}
	return false
}

// add records s as fitting no node, dropping the shapes it covers.
func (m *misses) add(s shape) {
	if m.covers(s) {
		return
	}
	kept := (*m)[:0]
	for _, f := range *m {
		if !(f.cores >= s.cores && f.mem >= s.mem && f.gpus >= s.gpus) {
			kept = append(kept, f)
		}
	}
	if *m = kept; len(*m) < maxMisses {
		*m = append(*m, s)
	}
}

func describe(t *fsm.Task) string {
	parts := []string{fmt.Sprintf("%d cores", t.RequiredCores)}
	if t.RequiredMemoryBytes > 0 {
		parts = append(parts, fmt.Sprintf("%d bytes of memory", t.RequiredMemoryBytes))
	}
	if t.GPUCount > 0 {
		parts = append(parts, fmt.Sprintf("%d GPUs", t.GPUCount))
	}
	return strings.Join(parts, ", ")
}

// fit checks t against n's free capacity and returns the placement with its
// tightness key (leftover cores, memory, GPUs), or why it does not fit (only
// when explain is set: formatting every miss dominates a large pass).
func fit(t *fsm.Task, n *fsm.Node, u *Usage, explain bool) (*Placement, [3]int64, string) {
	var key [3]int64
	if n.Status != fsm.NodeOnline {
		return nil, key, because(explain, func() string { return fmt.Sprintf("node %s is %s", n.Hostname, n.Status) })
	}
	if n.Drained {
		return nil, key, because(explain, func() string { return fmt.Sprintf("node %s is drained", n.Hostname) })
	}
	if t.TargetNUMANodeID != nil {
		if _, ok := n.NUMATopology[strconv.Itoa(*t.TargetNUMANodeID)]; !ok {
			return nil, key, because(explain, func() string { return fmt.Sprintf("node %s has no NUMA node %d", n.Hostname, *t.TargetNUMANodeID) })
		}
	}
	if u == nil {
		u = newUsage()
	}
	freeCores := n.TotalCores - u.Cores
	freeMem := n.MemoryTotalBytes - u.MemoryBytes
	if t.RequiredCores > freeCores {
		return nil, key, because(explain, func() string {
			return fmt.Sprintf("node %s has %d of %d cores free, needs %d", n.Hostname, max(0, freeCores), n.TotalCores, t.RequiredCores)
		})
	}
	if t.RequiredMemoryBytes > 0 && t.RequiredMemoryBytes > freeMem {
		return nil, key, because(explain, func() string {
			return fmt.Sprintf("node %s has %d bytes of memory free, needs %d", n.Hostname, max(0, freeMem), t.RequiredMemoryBytes)
		})
	}
	p := &Placement{TaskID: t.TaskID, Node: n.Hostname, NUMA: t.TargetNUMANodeID}
	if t.TargetNUMANodeID != nil {
		numa := n.NUMATopology[strconv.Itoa(*t.TargetNUMANodeID)]
		if free := len(numa.Cores) - u.NUMACores[*t.TargetNUMANodeID]; t.RequiredCores > free {
			return nil, key, because(explain, func() string {
				return fmt.Sprintf("NUMA node %d of %s has %d cores free, needs %d", *t.TargetNUMANodeID, n.Hostname, max(0, free), t.RequiredCores)
			})
		}
	}
	freeGPUs := 0
	for _, g := range n.GPUInfo {
		if _, busy := u.GPUs[g.GPUID]; !busy {
			freeGPUs++
		}
	}
	switch {
	case t.GPUCount > 0:
		if freeGPUs < t.GPUCount {
			return nil, key, because(explain, func() string {
				return fmt.Sprintf("node %s has %d GPUs free, needs %d", n.Hostname, freeGPUs, t.GPUCount)
			})
		}
		// The lowest free IDs, whatever order the node lists its GPUs in.
		for _, g := range n.GPUInfo {
			if _, busy := u.GPUs[g.GPUID]; !busy {
				p.GPUs = append(p.GPUs, g.GPUID)
			}
		}
		sort.Ints(p.GPUs)
		p.GPUs = p.GPUs[:t.GPUCount:t.GPUCount]
	case len(t.RequiredGPUs) > 0:
		for _, g := range t.RequiredGPUs {
			if !hasGPU(n, g) {
				return nil, key, because(explain, func() string { return fmt.Sprintf("node %s has no GPU %d", n.Hostname, g) })
			}
			if holder, busy := u.GPUs[g]; busy {
				return nil, key, because(explain, func() string { return fmt.Sprintf("GPU %d of %s is held by task %d", g, n.Hostname, holder) })
			}
		}
		p.GPUs = append([]int(nil), t.RequiredGPUs...)
	}
	key = [3]int64{int64(freeCores - t.RequiredCores), freeMem - t.RequiredMemoryBytes, int64(freeGPUs - len(p.GPUs))}
	return p, key, ""
}

// because formats a reason only when one is wanted.
func because(explain bool, reason func() string) string {
	if !explain {
		return ""
	}
	return reason()
}

func hasGPU(n *fsm.Node, id int) bool {
	for _, g := range n.GPUInfo {
		if g.GPUID == id {
			return true
		}
	}
	return false
}

// Limit says why t could never run on n, even with n empty, online and
// undrained ("" when it could): the placement check of Plan against the
// node's whole capacity, NUMA node and GPU IDs included. Submit validation
// uses it to refuse work that would wait forever.
func Limit(t *fsm.Task, n *fsm.Node) string {
	idle := *n
	idle.Status, idle.Drained = fsm.NodeOnline, false
	_, _, reason := fit(t, &idle, nil, true)
	return reason
}

// Capacity reports whether t could ever fit node n when it is empty.
func Capacity(t *fsm.Task, n *fsm.Node) bool { return Limit(t, n) == "" }

// FitOn checks whether t fits node n now, beside the placed tasks in
// active, and returns its placement or why not (a stopped VPS started again
// on the node that holds its container). t keeps the GPUs it holds
// (RequiredGPUs) rather than asking for any GPUCount.
func FitOn(t *fsm.Task, n *fsm.Node, active []*fsm.Task) (*Placement, string) {
	c := *t
	c.GPUCount = 0
	p, _, reason := fit(&c, n, Account(active)[n.Hostname], true)
	return p, reason
}
