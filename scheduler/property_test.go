package scheduler_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// sim is a small cluster driven the way the leader drives it: commands
// change tasks and nodes, and after each one a scheduling pass is planned and
// its decisions applied as AssignTask / UpdateTask would apply them.
type sim struct {
	rng    *rand.Rand
	nodes  []*fsm.Node
	tasks  map[int64]*fsm.Task // every task, for dependency lookups
	open   []*fsm.Task         // the tasks not yet final, in ID order (see live)
	nextID int64
	// verbose keeps a log of what happened; a failing seed is replayed
	// with it on (runs are deterministic) to explain the failure.
	verbose bool
	log     []string
	// Accounts (odd seeds only): owners, users and groups with quotas,
	// drawn from a stream of their own so that the even seeds replay
	// exactly as they did before quotas existed.
	qrng   *rand.Rand
	users  []fsm.User
	groups []fsm.Group
	quotas *scheduler.Quotas
	// quotaWaits counts the waiting decisions a quota explained.
	quotaWaits int
}

func newSim(seed uint64) *sim {
	s := &sim{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), tasks: map[int64]*fsm.Task{}, nextID: 1}
	count := 2 + s.rng.IntN(4)
	for i := range count {
		cores := []int{2, 4, 8, 16}[s.rng.IntN(4)]
		n := &fsm.Node{
			Hostname:         fmt.Sprintf("n%d", i),
			TotalCores:       cores,
			MemoryTotalBytes: int64(1+s.rng.IntN(16)) * gib,
			Status:           fsm.NodeOnline,
		}
		if s.rng.IntN(2) == 0 { // NUMA: two halves, or a lopsided split
			half := cores / 2
			if s.rng.IntN(2) == 0 {
				half = 1
			}
			withNUMA(half, cores-half)(n)
		}
		if g := s.rng.IntN(5); g > 0 { // GPUs, listed in a random order
			ids := s.rng.Perm(g)
			withGPUs(ids...)(n)
		}
		s.nodes = append(s.nodes, n)
	}
	if seed%2 == 1 {
		s.addAccounts(seed)
	}
	return s
}

// addAccounts gives the sim users and groups with random quotas: u0 alone,
// u1 and u2 in group g (u2 also in h), u3 with no limit.
func (s *sim) addAccounts(seed uint64) {
	s.qrng = rand.New(rand.NewPCG(seed, 0x51ed27))
	r := s.qrng
	some := func(n int) int { // 0 (no limit) a third of the time
		if r.IntN(3) == 0 {
			return 0
		}
		return 1 + r.IntN(n)
	}
	quota := func() fsm.Quota {
		return fsm.Quota{Cores: some(12), MemoryBytes: int64(some(8)) * gib, GPUs: some(3), RunningTasks: some(6), VPS: some(2)}
	}
	s.users = []fsm.User{
		{Name: "u0", Quota: quota()},
		{Name: "u1", Groups: []string{"g"}},
		{Name: "u2", Quota: quota(), Groups: []string{"g", "h"}},
		{Name: "u3"},
	}
	s.groups = []fsm.Group{{Name: "g", Quota: quota()}, {Name: "h", Quota: quota()}}
	s.quotas = scheduler.NewQuotas(s.users, s.groups)
}

// demand is what a task holds against a quota, computed here independently
// of the scheduler: cores, memory, GPUs, one task, one VPS.
func demand(t *fsm.Task) [5]int64 {
	vps := int64(0)
	if t.TaskType == fsm.TaskVPS {
		vps = 1
	}
	return [5]int64{int64(t.RequiredCores), t.RequiredMemoryBytes, int64(max(len(t.RequiredGPUs), t.GPUCount)), 1, vps}
}

func limits(q fsm.Quota) [5]int64 {
	return [5]int64{int64(q.Cores), q.MemoryBytes, int64(q.GPUs), int64(q.RunningTasks), int64(q.VPS)}
}

// quotaUse sums, per quota ("user:NAME", "group:NAME"), what the tasks
// holding resources hold, and returns each quota's limits.
func (s *sim) quotaUse() (use, limit map[string][5]int64) {
	use, limit = map[string][5]int64{}, map[string][5]int64{}
	for _, g := range s.groups {
		limit["group:"+g.Name] = limits(g.Quota)
	}
	for _, u := range s.users {
		limit["user:"+u.Name] = limits(u.Quota)
	}
	for _, t := range s.live() {
		if scheduler.Holds(t.Status) {
			for _, k := range s.quotaKeys(t.Owner) {
				d, u := demand(t), use[k]
				for i := range u {
					u[i] += d[i]
				}
				use[k] = u
			}
		}
	}
	return use, limit
}

// quotaKeys names the quotas a task of owner counts against.
func (s *sim) quotaKeys(owner string) []string {
	for _, u := range s.users {
		if u.Name == owner {
			keys := []string{"user:" + u.Name}
			for _, g := range u.Groups {
				keys = append(keys, "group:"+g)
			}
			return keys
		}
	}
	return nil
}

func (s *sim) logf(format string, args ...any) {
	if s.verbose {
		s.log = append(s.log, fmt.Sprintf(format, args...))
	}
}

func (s *sim) node(name string) *fsm.Node {
	for _, n := range s.nodes {
		if n.Hostname == name {
			return n
		}
	}
	return nil
}

func (s *sim) view() scheduler.View {
	return scheduler.View{Nodes: s.nodes, Active: slices.Clone(s.live()), Lookup: func(id int64) (*fsm.Task, bool) {
		t, ok := s.tasks[id]
		return t, ok
	}, Quotas: s.quotas}
}

// live returns the tasks not in a final status, in ID order.
func (s *sim) live() []*fsm.Task {
	s.open = slices.DeleteFunc(s.open, func(t *fsm.Task) bool { return t.Status.Final() })
	return s.open
}

// pick returns a random live task that ok accepts.
func (s *sim) pick(ok func(*fsm.Task) bool) *fsm.Task {
	var c []*fsm.Task
	for _, t := range s.live() {
		if ok(t) {
			c = append(c, t)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[s.rng.IntN(len(c))]
}

// submit adds one task or an array, sized to fit some node's total (as
// submit validation guarantees), sometimes targeted, sometimes dependent.
func (s *sim) submit() {
	count, throttle := 1, 0
	if s.rng.IntN(4) == 0 {
		count, throttle = 2+s.rng.IntN(6), s.rng.IntN(4)
	}
	base := &fsm.Task{TaskType: fsm.TaskCommand, Status: fsm.StatusPending, Priority: s.rng.IntN(5) - 2, ArrayThrottle: throttle}
	host := s.nodes[s.rng.IntN(len(s.nodes))]
	base.RequiredCores = s.rng.IntN(host.TotalCores + 1)
	if s.rng.IntN(2) == 0 {
		base.RequiredMemoryBytes = s.rng.Int64N(host.MemoryTotalBytes + 1)
	}
	targeted := s.rng.IntN(4) == 0
	if targeted {
		base.TargetNode = host.Hostname
		if len(host.NUMATopology) > 0 && s.rng.IntN(3) == 0 {
			id := s.rng.IntN(len(host.NUMATopology))
			base.TargetNUMANodeID = &id
			base.RequiredCores = s.rng.IntN(len(host.NUMATopology[strconv.Itoa(id)].Cores) + 1)
		}
	}
	switch r := s.rng.IntN(6); {
	case r == 0 && len(host.GPUInfo) > 0:
		base.GPUCount = 1 + s.rng.IntN(len(host.GPUInfo))
	case r == 1 && targeted && len(host.GPUInfo) > 0:
		for _, g := range host.GPUInfo {
			if s.rng.IntN(2) == 0 {
				base.RequiredGPUs = append(base.RequiredGPUs, g.GPUID)
			}
		}
	}
	if s.rng.IntN(6) == 0 && s.nextID > 1 {
		for range 1 + s.rng.IntN(2) {
			id := 1 + s.rng.Int64N(s.nextID-1)
			if s.rng.IntN(20) == 0 {
				id = s.nextID + 1000 // does not exist
			}
			base.After = append(base.After, id)
		}
	}
	if s.qrng != nil {
		base.Owner = []string{"", "u0", "u1", "u2", "u3"}[s.qrng.IntN(5)]
		if s.qrng.IntN(4) == 0 {
			base.TaskType = fsm.TaskVPS
		}
	}
	batch := int64(0)
	if count > 1 {
		batch = s.nextID
	}
	for range count {
		t := *base
		t.TaskID = s.nextID
		t.BatchID = batch
		t.RequiredGPUs = slices.Clone(base.RequiredGPUs)
		t.After = slices.Clone(base.After)
		s.nextID++
		s.tasks[t.TaskID] = &t
		s.open = append(s.open, &t)
		s.logf("submit %d: cores=%d mem=%d gpus=%d%v prio=%d target=%q numa=%s batch=%d throttle=%d after=%v owner=%q type=%s",
			t.TaskID, t.RequiredCores, t.RequiredMemoryBytes, t.GPUCount, t.RequiredGPUs, t.Priority, t.TargetNode, fmtPtr(t.TargetNUMANodeID), t.BatchID, t.ArrayThrottle, t.After, t.Owner, t.TaskType)
	}
}

func (s *sim) set(t *fsm.Task, st fsm.Status) {
	if !t.Status.CanMoveTo(st) {
		panic(fmt.Sprintf("test bug: task %d %s → %s", t.TaskID, t.Status, st))
	}
	s.logf("task %d %s → %s", t.TaskID, t.Status, st)
	t.Status = st
}

// step applies one random command, after some running tasks finished.
func (s *sim) step() {
	for _, t := range s.live() {
		switch {
		case t.Status == fsm.StatusRunning && s.rng.IntN(6) == 0:
			s.set(t, []fsm.Status{fsm.StatusCompleted, fsm.StatusCompleted, fsm.StatusFailed}[s.rng.IntN(3)])
		case t.Status == fsm.StatusPaused && s.rng.IntN(4) == 0:
			s.set(t, fsm.StatusRunning)
		}
	}
	// Drained and offline nodes come back after a while.
	for _, n := range s.nodes {
		if n.Drained && s.rng.IntN(8) == 0 {
			n.Drained = false
			s.logf("node %s undrained", n.Hostname)
		}
		if n.Status == fsm.NodeOffline && s.rng.IntN(8) == 0 {
			n.Status = fsm.NodeOnline
			s.logf("node %s online", n.Hostname)
		}
	}
	switch r := s.rng.IntN(100); {
	case r < 40:
		if len(s.live()) < 80 {
			s.submit()
		}
	case r < 47:
		if t := s.pick(func(t *fsm.Task) bool { return !t.Status.Final() }); t != nil {
			s.set(t, fsm.StatusKilled)
		}
	case r < 55:
		if t := s.pick(func(t *fsm.Task) bool { return t.Status == fsm.StatusRunning }); t != nil {
			s.set(t, fsm.StatusPaused)
		}
	case r < 59:
		// A dispatch that could not reach the runner re-queues the task,
		// keeping the GPUs it was given (as the FSM does).
		if t := s.pick(func(t *fsm.Task) bool { return t.Status == fsm.StatusAssigning }); t != nil {
			s.set(t, fsm.StatusPending)
		}
	case r < 62:
		n := s.nodes[s.rng.IntN(len(s.nodes))]
		n.Drained = true
		s.logf("node %s drained", n.Hostname)
	case r < 65:
		n := s.nodes[s.rng.IntN(len(s.nodes))]
		if n.Status == fsm.NodeOnline {
			n.Status = fsm.NodeOffline
			s.logf("node %s offline", n.Hostname)
			// The FSM marks the node's unfinished tasks lost in the same entry.
			for _, t := range s.live() {
				if t.AssignedNode == n.Hostname && scheduler.Holds(t.Status) {
					s.set(t, fsm.StatusLost)
				}
			}
		}
	default:
		// time passes: nothing but a scheduling pass
	}
}

// apply commits a pass's decisions the way the leader does.
func (s *sim) apply(res scheduler.Result) {
	for _, f := range res.Failed {
		s.set(s.tasks[f.TaskID], fsm.StatusFailed)
	}
	for _, p := range res.Placements {
		t := s.tasks[p.TaskID]
		s.set(t, fsm.StatusAssigning)
		t.AssignedNode = p.Node
		t.RequiredGPUs = slices.Clone(p.GPUs)
		if p.NUMA != nil {
			v := *p.NUMA
			t.TargetNUMANodeID = &v
		}
		s.logf("placed %d on %s gpus=%v numa=%s", t.TaskID, p.Node, p.GPUs, fmtPtr(p.NUMA))
	}
}

// checkPass checks one pass against the state it was planned on.
func (s *sim) checkPass(res scheduler.Result) error {
	decided := map[int64]string{}
	for _, p := range res.Placements {
		t, ok := s.tasks[p.TaskID]
		if !ok || t.Status != fsm.StatusPending {
			return fmt.Errorf("placed task %d that is not pending", p.TaskID)
		}
		n := s.node(p.Node)
		switch {
		case n == nil:
			return fmt.Errorf("task %d placed on unknown node %s", p.TaskID, p.Node)
		case n.Status != fsm.NodeOnline:
			return fmt.Errorf("task %d placed on %s node %s", p.TaskID, n.Status, p.Node)
		case n.Drained:
			return fmt.Errorf("task %d placed on drained node %s", p.TaskID, p.Node)
		case !depsCompleted(s.tasks, t):
			return fmt.Errorf("task %d placed before its dependencies %v completed", p.TaskID, t.After)
		case t.TargetNode != "" && p.Node != t.TargetNode:
			return fmt.Errorf("task %d targeted at %s placed on %s", p.TaskID, t.TargetNode, p.Node)
		case t.GPUCount > 0 && len(p.GPUs) != t.GPUCount:
			return fmt.Errorf("task %d asked for %d GPUs, got %v", p.TaskID, t.GPUCount, p.GPUs)
		case t.GPUCount == 0 && !slices.Equal(p.GPUs, t.RequiredGPUs):
			return fmt.Errorf("task %d asked for GPUs %v, got %v", p.TaskID, t.RequiredGPUs, p.GPUs)
		case (p.NUMA == nil) != (t.TargetNUMANodeID == nil) || p.NUMA != nil && *p.NUMA != *t.TargetNUMANodeID:
			return fmt.Errorf("task %d pinned to NUMA %s placed with NUMA %s", p.TaskID, fmtPtr(t.TargetNUMANodeID), fmtPtr(p.NUMA))
		}
		decided[p.TaskID] = "placed"
	}
	for kind, ds := range map[string][]scheduler.Decision{"waiting": res.Waiting, "failed": res.Failed} {
		for _, d := range ds {
			if d.Reason == "" {
				return fmt.Errorf("task %d %s without a reason", d.TaskID, kind)
			}
			if !slices.Contains(scheduler.WaitKinds(), d.Kind) {
				return fmt.Errorf("task %d %s with kind %q", d.TaskID, kind, d.Kind)
			}
			if prev, dup := decided[d.TaskID]; dup {
				return fmt.Errorf("task %d is both %s and %s", d.TaskID, prev, kind)
			}
			decided[d.TaskID] = kind
		}
	}
	for _, t := range s.live() {
		if (t.Status == fsm.StatusPending) != (decided[t.TaskID] != "") {
			return fmt.Errorf("task %d (%s) decided %q", t.TaskID, t.Status, decided[t.TaskID])
		}
	}
	for id, kind := range decided {
		if t := s.tasks[id]; t == nil || t.Status != fsm.StatusPending {
			return fmt.Errorf("task %d decided %s but is not pending", id, kind)
		}
	}
	for _, f := range res.Failed {
		if !strings.Contains(f.Reason, "dependency") {
			return fmt.Errorf("task %d failed for a reason other than a dependency: %q", f.TaskID, f.Reason)
		}
	}
	return nil
}

// checkState checks the invariants on committed state: no node is
// over-committed, GPUs are exclusive, arrays stay under their throttle.
func (s *sim) checkState() error {
	type load struct {
		cores int
		mem   int64
		gpus  map[int]int64
		numa  map[int]int
	}
	loads := map[string]*load{}
	batches := map[int64]int{}
	throttle := map[int64]int{}
	for _, t := range s.live() {
		id := t.TaskID
		if !scheduler.Holds(t.Status) {
			continue
		}
		n := s.node(t.AssignedNode)
		if n == nil {
			return fmt.Errorf("task %d holds resources on unknown node %q", id, t.AssignedNode)
		}
		if n.Status != fsm.NodeOnline {
			return fmt.Errorf("task %d still %s on offline node %s", id, t.Status, n.Hostname)
		}
		l := loads[n.Hostname]
		if l == nil {
			l = &load{gpus: map[int]int64{}, numa: map[int]int{}}
			loads[n.Hostname] = l
		}
		l.cores += t.RequiredCores
		l.mem += t.RequiredMemoryBytes
		for _, g := range t.RequiredGPUs {
			if holder, taken := l.gpus[g]; taken {
				return fmt.Errorf("GPU %d of %s held by tasks %d and %d", g, n.Hostname, holder, id)
			}
			if !slices.ContainsFunc(n.GPUInfo, func(i fsm.GPUInfo) bool { return i.GPUID == g }) {
				return fmt.Errorf("task %d holds GPU %d that %s does not have", id, g, n.Hostname)
			}
			l.gpus[g] = id
		}
		if t.TargetNUMANodeID != nil {
			l.numa[*t.TargetNUMANodeID] += t.RequiredCores
		}
		if t.BatchID != 0 {
			batches[t.BatchID]++
			throttle[t.BatchID] = t.ArrayThrottle
		}
	}
	for name, l := range loads {
		n := s.node(name)
		if l.cores > n.TotalCores {
			return fmt.Errorf("node %s over-committed: %d of %d cores", name, l.cores, n.TotalCores)
		}
		if l.mem > n.MemoryTotalBytes {
			return fmt.Errorf("node %s over-committed: %d of %d bytes", name, l.mem, n.MemoryTotalBytes)
		}
		for id, c := range l.numa {
			nn, ok := n.NUMATopology[strconv.Itoa(id)]
			if !ok || c > len(nn.Cores) {
				return fmt.Errorf("node %s NUMA %d over-committed: %d cores pinned", name, id, c)
			}
		}
	}
	for b, c := range batches {
		if throttle[b] > 0 && c > throttle[b] {
			return fmt.Errorf("batch %d has %d tasks holding resources, throttle %d", b, c, throttle[b])
		}
	}
	use, limit := s.quotaUse()
	for k, u := range use {
		for i, l := range limit[k] {
			if l > 0 && u[i] > l {
				return fmt.Errorf("quota %s exceeded: resource %d used %d, limit %d", k, i, u[i], l)
			}
		}
	}
	return nil
}

// leftBehind is an oracle independent of Plan: after a pass has been
// applied, no pending task whose dependencies completed and whose array has
// a free slot may fit the free capacity of a node it is allowed on.
func (s *sim) leftBehind() error {
	cores, mem := map[string]int{}, map[string]int64{}
	gpus, numa := map[string]map[int]bool{}, map[string]map[int]int{}
	batches := map[int64]int{}
	for _, n := range s.nodes {
		gpus[n.Hostname], numa[n.Hostname] = map[int]bool{}, map[int]int{}
	}
	for _, t := range s.live() {
		if !scheduler.Holds(t.Status) {
			continue
		}
		cores[t.AssignedNode] += t.RequiredCores
		mem[t.AssignedNode] += t.RequiredMemoryBytes
		for _, g := range t.RequiredGPUs {
			gpus[t.AssignedNode][g] = true
		}
		if t.TargetNUMANodeID != nil {
			numa[t.AssignedNode][*t.TargetNUMANodeID] += t.RequiredCores
		}
		if t.BatchID != 0 {
			batches[t.BatchID]++
		}
	}
	use, limit := s.quotaUse()
	overQuota := func(t *fsm.Task) bool {
		d := demand(t)
		for _, k := range s.quotaKeys(t.Owner) {
			for i, l := range limit[k] {
				if l > 0 && d[i] > 0 && use[k][i]+d[i] > l {
					return true
				}
			}
		}
		return false
	}
	for _, t := range s.live() {
		id := t.TaskID
		if t.Status != fsm.StatusPending {
			continue
		}
		if t.ArrayThrottle > 0 && t.BatchID != 0 && batches[t.BatchID] >= t.ArrayThrottle {
			continue
		}
		if overQuota(t) {
			continue
		}
		if !depsCompleted(s.tasks, t) {
			continue
		}
		for _, n := range s.nodes {
			h := n.Hostname
			if n.Status != fsm.NodeOnline || n.Drained || t.TargetNode != "" && t.TargetNode != h {
				continue
			}
			if t.RequiredCores > n.TotalCores-cores[h] || t.RequiredMemoryBytes > n.MemoryTotalBytes-mem[h] {
				continue
			}
			if t.TargetNUMANodeID != nil {
				nn, ok := n.NUMATopology[strconv.Itoa(*t.TargetNUMANodeID)]
				if !ok || t.RequiredCores > len(nn.Cores)-numa[h][*t.TargetNUMANodeID] {
					continue
				}
			}
			free := 0
			for _, g := range n.GPUInfo {
				if !gpus[h][g.GPUID] {
					free++
				}
			}
			if t.GPUCount > 0 && free < t.GPUCount {
				continue
			}
			if t.GPUCount == 0 && slices.ContainsFunc(t.RequiredGPUs, func(g int) bool {
				return gpus[h][g] || !slices.ContainsFunc(n.GPUInfo, func(i fsm.GPUInfo) bool { return i.GPUID == g })
			}) {
				continue
			}
			return fmt.Errorf("pending task %d fits free node %s but was left for another pass", id, h)
		}
	}
	return nil
}

func depsCompleted(tasks map[int64]*fsm.Task, t *fsm.Task) bool {
	for _, d := range t.After {
		if dt, ok := tasks[d]; !ok || dt.Status != fsm.StatusCompleted {
			return false
		}
	}
	return true
}

// run drives one seed for steps steps and returns the first broken
// invariant with the step it broke at, and how many tasks were placed.
func (s *sim) run(steps int) (placed, at int, err error) {
	for step := range steps {
		s.step()
		res := scheduler.Plan(s.view())
		if err := s.checkPass(res); err != nil {
			return placed, step, err
		}
		if ref := scheduler.PlanTryingEveryNode(s.view()); !reflect.DeepEqual(res, ref) {
			return placed, step, fmt.Errorf("the pass decided %+v; trying every task on every node decides %+v", res, ref)
		}
		for _, w := range res.Waiting {
			if strings.HasPrefix(w.Reason, "quota: ") {
				s.quotaWaits++
			}
		}
		s.apply(res)
		placed += len(res.Placements)
		if err := s.checkState(); err != nil {
			return placed, step, err
		}
		again := scheduler.Plan(s.view())
		if len(again.Placements) > 0 {
			return placed, step, fmt.Errorf("a second pass right after the first placed %+v", again.Placements)
		}
		if err := s.checkPass(again); err != nil {
			return placed, step, fmt.Errorf("second pass: %w", err)
		}
		if err := s.leftBehind(); err != nil {
			return placed, step, err
		}
		// Some placed tasks start.
		for _, t := range s.live() {
			if t.Status == fsm.StatusAssigning && s.rng.IntN(2) == 0 {
				s.set(t, fsm.StatusRunning)
			}
		}
	}
	return placed, steps, nil
}

// TestPlanProperties drives random clusters through random submit / finish /
// kill / pause / requeue / drain / offline sequences and checks, after every
// step, that no node is over-committed, arrays stay under their throttle,
// no user or group goes over a quota (odd seeds have accounts),
// nothing is placed on an offline or drained node, a pass leaves no
// pending task that fits a free node for the next pass, and a pass decides
// exactly what it would trying every task on every node.
func TestPlanProperties(t *testing.T) {
	seeds, steps := 200, 300
	if raceEnabled || testing.Short() {
		seeds = 100 // the same first 100 seeds: still well under 10 s
	}
	total, quotaWaits := 0, 0
	for seed := range seeds {
		s := newSim(uint64(seed))
		placed, at, err := s.run(steps)
		total += placed
		quotaWaits += s.quotaWaits
		if err != nil {
			s := newSim(uint64(seed))
			s.verbose = true
			s.run(at + 1)
			tail := s.log[max(0, len(s.log)-60):]
			t.Fatalf("seed %d step %d: %v\nlast events:\n  %s", seed, at, err, strings.Join(tail, "\n  "))
		}
	}
	if total < seeds*steps/10 {
		t.Fatalf("only %d placements over %d seeds: the generator hardly exercises placement", total, seeds)
	}
	if quotaWaits < seeds*steps/100 {
		t.Fatalf("only %d waits for a quota over %d seeds: the generator hardly exercises quotas", quotaWaits, seeds)
	}
	t.Logf("%d placements, %d waits for a quota", total, quotaWaits)
}
