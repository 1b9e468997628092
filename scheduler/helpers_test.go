package scheduler_test

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

const gib = int64(1) << 30

// node builds an online, undrained node.
func node(name string, cores int, memGiB int64, mods ...func(*fsm.Node)) *fsm.Node {
	n := &fsm.Node{Hostname: name, TotalCores: cores, MemoryTotalBytes: memGiB * gib, Status: fsm.NodeOnline}
	for _, m := range mods {
		m(n)
	}
	return n
}

// withGPUs gives the node GPUs with these IDs, listed in this order.
func withGPUs(ids ...int) func(*fsm.Node) {
	return func(n *fsm.Node) {
		for _, id := range ids {
			n.GPUInfo = append(n.GPUInfo, fsm.GPUInfo{GPUID: id})
		}
	}
}

// withNUMA splits the node's cores into NUMA nodes of these sizes.
func withNUMA(sizes ...int) func(*fsm.Node) {
	return func(n *fsm.Node) {
		n.NUMATopology = map[string]fsm.NUMANode{}
		core := 0
		for i, s := range sizes {
			var cores []int
			for range s {
				cores = append(cores, core)
				core++
			}
			n.NUMATopology[strconv.Itoa(i)] = fsm.NUMANode{Cores: cores}
		}
	}
}

func drained(n *fsm.Node) { n.Drained = true }
func offline(n *fsm.Node) { n.Status = fsm.NodeOffline }

// pending builds a pending task.
func pending(id int64, cores int, memGiB int64, mods ...func(*fsm.Task)) *fsm.Task {
	t := &fsm.Task{TaskID: id, TaskType: fsm.TaskCommand, RequiredCores: cores, RequiredMemoryBytes: memGiB * gib, Status: fsm.StatusPending}
	for _, m := range mods {
		m(t)
	}
	return t
}

// on builds a task running on a node (use status() to hold it otherwise).
func on(id int64, nodeName string, cores int, memGiB int64, mods ...func(*fsm.Task)) *fsm.Task {
	t := pending(id, cores, memGiB)
	t.Status = fsm.StatusRunning
	t.AssignedNode = nodeName
	for _, m := range mods {
		m(t)
	}
	return t
}

// finished builds a task in a final status (for dependency lookups).
func finished(id int64, s fsm.Status) *fsm.Task {
	return &fsm.Task{TaskID: id, RequiredCores: 1, Status: s}
}

func prio(p int) func(*fsm.Task)          { return func(t *fsm.Task) { t.Priority = p } }
func target(n string) func(*fsm.Task)     { return func(t *fsm.Task) { t.TargetNode = n } }
func status(s fsm.Status) func(*fsm.Task) { return func(t *fsm.Task) { t.Status = s } }
func gpuCount(n int) func(*fsm.Task)      { return func(t *fsm.Task) { t.GPUCount = n } }
func after(ids ...int64) func(*fsm.Task)  { return func(t *fsm.Task) { t.After = ids } }
func memBytes(b int64) func(*fsm.Task)    { return func(t *fsm.Task) { t.RequiredMemoryBytes = b } }
func assigned(n string) func(*fsm.Task)   { return func(t *fsm.Task) { t.AssignedNode = n } }
func gpus(ids ...int) func(*fsm.Task)     { return func(t *fsm.Task) { t.RequiredGPUs = ids } }
func numa(id int) func(*fsm.Task)         { return func(t *fsm.Task) { t.TargetNUMANodeID = &id } }
func owner(u string) func(*fsm.Task)      { return func(t *fsm.Task) { t.Owner = u } }
func vps(t *fsm.Task)                     { t.TaskType = fsm.TaskVPS }
func array(b int64, max int) func(*fsm.Task) {
	return func(t *fsm.Task) { t.BatchID, t.ArrayThrottle = b, max }
}

// view builds a View: every non-final task is active; Lookup finds all.
func view(nodes []*fsm.Node, tasks []*fsm.Task) scheduler.View {
	byID := map[int64]*fsm.Task{}
	var active []*fsm.Task
	for _, t := range tasks {
		byID[t.TaskID] = t
		if !t.Status.Final() {
			active = append(active, t)
		}
	}
	sort.Slice(active, func(i, j int) bool { return active[i].TaskID < active[j].TaskID })
	return scheduler.View{Nodes: nodes, Active: active, Lookup: func(id int64) (*fsm.Task, bool) {
		t, ok := byID[id]
		return t, ok
	}}
}

// planCase is one table row: the state, and what one pass must decide for
// every pending task. Reasons are matched as substrings (all of them, when
// separated by "|").
type planCase struct {
	name  string
	nodes []*fsm.Node
	tasks []*fsm.Task
	place map[int64]string // task → node
	gpus  map[int64][]int  // task → GPUs of its placement (nil slice: none)
	numa  map[int64]int    // task → NUMA node of its placement
	order []int64          // placements in this order (optional)
	wait  map[int64]string // task → reason substrings
	fail  map[int64]string // task → reason substrings
	// quotas are the account limits of the pass (nil: none).
	quotas *scheduler.Quotas
}

func runPlanCases(t *testing.T, cases []planCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := view(c.nodes, c.tasks)
			v.Quotas = c.quotas
			res := scheduler.Plan(v)
			checkResult(t, c, res)
		})
	}
}

func checkResult(t *testing.T, c planCase, res scheduler.Result) {
	t.Helper()
	seen := map[int64]string{}
	note := func(id int64, kind string) {
		if prev, dup := seen[id]; dup {
			t.Errorf("task %d decided twice (%s and %s)", id, prev, kind)
		}
		seen[id] = kind
	}
	var order []int64
	for _, p := range res.Placements {
		note(p.TaskID, "placed")
		order = append(order, p.TaskID)
		want, ok := c.place[p.TaskID]
		if !ok {
			t.Errorf("task %d placed on %s, want not placed", p.TaskID, p.Node)
			continue
		}
		if p.Node != want {
			t.Errorf("task %d placed on %s, want %s", p.TaskID, p.Node, want)
		}
		if wg, ok := c.gpus[p.TaskID]; ok && !slices.Equal(p.GPUs, wg) {
			t.Errorf("task %d got GPUs %v, want %v", p.TaskID, p.GPUs, wg)
		}
		if wn, ok := c.numa[p.TaskID]; ok && (p.NUMA == nil || *p.NUMA != wn) {
			t.Errorf("task %d got NUMA %v, want %d", p.TaskID, fmtPtr(p.NUMA), wn)
		}
	}
	checkDecisions(t, "waiting", res.Waiting, c.wait, note)
	checkDecisions(t, "failed", res.Failed, c.fail, note)
	for id := range c.place {
		if seen[id] != "placed" {
			t.Errorf("task %d: want placed on %s, got %q", id, c.place[id], seen[id])
		}
	}
	for _, tk := range c.tasks {
		if tk.Status == fsm.StatusPending && seen[tk.TaskID] == "" {
			t.Errorf("pending task %d got no decision", tk.TaskID)
		}
		if tk.Status != fsm.StatusPending && seen[tk.TaskID] != "" {
			t.Errorf("%s task %d was decided (%s)", tk.Status, tk.TaskID, seen[tk.TaskID])
		}
	}
	if c.order != nil && !slices.Equal(order, c.order) {
		t.Errorf("placement order %v, want %v", order, c.order)
	}
}

func checkDecisions(t *testing.T, kind string, got []scheduler.Decision, want map[int64]string, note func(int64, string)) {
	t.Helper()
	for _, d := range got {
		note(d.TaskID, kind)
		if d.Reason == "" {
			t.Errorf("task %d is %s with an empty reason", d.TaskID, kind)
		}
		if want := kindOf(d.Reason); d.Kind != want {
			t.Errorf("task %d is %s (%q) with kind %q, want %q", d.TaskID, kind, d.Reason, d.Kind, want)
		}
		w, ok := want[d.TaskID]
		if !ok {
			t.Errorf("task %d %s (%q), not expected", d.TaskID, kind, d.Reason)
			continue
		}
		for _, sub := range strings.Split(w, "|") {
			if !strings.Contains(d.Reason, sub) {
				t.Errorf("task %d %s reason %q does not mention %q", d.TaskID, kind, d.Reason, sub)
			}
		}
	}
	for id := range want {
		found := false
		for _, d := range got {
			found = found || d.TaskID == id
		}
		if !found {
			t.Errorf("task %d: want %s, was not", id, kind)
		}
	}
}

func fmtPtr(p *int) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

// kindOf is the Decision kind a reason's wording implies.
func kindOf(reason string) string {
	for prefix, kind := range map[string]string{
		"waiting for ": scheduler.WaitDependency, "dependency ": scheduler.WaitDependencyFailed,
		"array throttle": scheduler.WaitArrayThrottle, "quota:": scheduler.WaitQuota,
		"no online node": scheduler.WaitNoOnlineNode, "every online node is drained": scheduler.WaitDrained,
		"no node has ": scheduler.WaitCapacity,
	} {
		if strings.HasPrefix(reason, prefix) {
			return kind
		}
	}
	return scheduler.WaitTargetNode // "target node ...", "node n1 is offline", "GPU 3 of n1 ..."
}
