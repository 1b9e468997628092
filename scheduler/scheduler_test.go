package scheduler_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

func nodes(ns ...*fsm.Node) []*fsm.Node { return ns }
func tasks(ts ...*fsm.Task) []*fsm.Task { return ts }

func TestPlanFit(t *testing.T) {
	runPlanCases(t, []planCase{
		{
			name:  "exactly the node's cores",
			nodes: nodes(node("a", 4, 8)),
			tasks: tasks(pending(1, 4, 8)),
			place: map[int64]string{1: "a"},
		},
		{
			name:  "more cores than free",
			nodes: nodes(node("a", 4, 8)),
			tasks: tasks(on(1, "a", 2, 0), pending(2, 3, 0)),
			wait:  map[int64]string{2: "3 cores"},
		},
		{
			name:  "cores add up within one pass",
			nodes: nodes(node("a", 4, 8)),
			tasks: tasks(pending(1, 2, 0), pending(2, 2, 0), pending(3, 2, 0)),
			place: map[int64]string{1: "a", 2: "a"},
			wait:  map[int64]string{3: "no node has 2 cores"},
		},
		{
			name:  "memory too big for what is free",
			nodes: nodes(node("a", 8, 4)),
			tasks: tasks(on(1, "a", 1, 3), pending(2, 1, 2), pending(3, 1, 1)),
			place: map[int64]string{3: "a"},
			wait:  map[int64]string{2: "memory"},
		},
		{
			name:  "memory adds up within one pass",
			nodes: nodes(node("a", 8, 4)),
			tasks: tasks(pending(1, 1, 2), pending(2, 1, 2), pending(3, 1, 0, memBytes(1))),
			place: map[int64]string{1: "a", 2: "a"},
			wait:  map[int64]string{3: "1 bytes of memory"},
		},
		{
			name:  "no memory asked fits a node whose memory is all held",
			nodes: nodes(node("a", 8, 4)),
			tasks: tasks(on(1, "a", 1, 4), pending(2, 1, 0)),
			place: map[int64]string{2: "a"},
		},
		{
			name:  "zero cores fits a full node",
			nodes: nodes(node("a", 2, 4)),
			tasks: tasks(on(1, "a", 2, 0), pending(2, 0, 0)),
			place: map[int64]string{2: "a"},
		},
		{
			name:  "assigning and paused tasks hold resources",
			nodes: nodes(node("a", 4, 8)),
			tasks: tasks(on(1, "a", 2, 0, status(fsm.StatusAssigning)), on(2, "a", 2, 0, status(fsm.StatusPaused)), pending(3, 1, 0)),
			wait:  map[int64]string{3: "1 cores"},
		},
		{
			name:  "finished tasks and requeued pending tasks hold nothing",
			nodes: nodes(node("a", 4, 8)),
			tasks: tasks(on(1, "a", 4, 8, status(fsm.StatusCompleted)), on(2, "a", 4, 8, status(fsm.StatusLost)),
				pending(3, 4, 8, assigned("a")), pending(4, 0, 0)),
			place: map[int64]string{3: "a", 4: "a"},
		},
		{
			name:  "tasks on another node do not count here",
			nodes: nodes(node("a", 4, 8), node("b", 4, 8)),
			tasks: tasks(on(1, "b", 4, 8), pending(2, 4, 8)),
			place: map[int64]string{2: "a"},
		},
	})
}

func TestPlanTightestFit(t *testing.T) {
	runPlanCases(t, []planCase{
		{
			name:  "fewest cores left over",
			nodes: nodes(node("big", 16, 64), node("small", 4, 64), node("mid", 8, 64)),
			tasks: tasks(pending(1, 4, 1)),
			place: map[int64]string{1: "small"},
		},
		{
			name:  "free cores, not total cores",
			nodes: nodes(node("big", 16, 64), node("small", 4, 64)),
			tasks: tasks(on(1, "big", 13, 0), pending(2, 2, 0)),
			place: map[int64]string{2: "big"},
		},
		{
			name:  "equal cores: least memory left over",
			nodes: nodes(node("roomy", 4, 64), node("tight", 4, 8), node("mid", 4, 16)),
			tasks: tasks(pending(1, 2, 4)),
			place: map[int64]string{1: "tight"},
		},
		{
			name:  "cores decide before memory",
			nodes: nodes(node("fewcores", 4, 64), node("littlemem", 8, 4)),
			tasks: tasks(pending(1, 2, 2)),
			place: map[int64]string{1: "fewcores"},
		},
		{
			name:  "equal cores and memory: keep GPU nodes free",
			nodes: nodes(node("gpu", 4, 8, withGPUs(0, 1)), node("cpu", 4, 8)),
			tasks: tasks(pending(1, 1, 1)),
			place: map[int64]string{1: "cpu"},
		},
		{
			name:  "large job still finds room after small ones",
			nodes: nodes(node("a", 8, 8), node("b", 2, 8)),
			tasks: tasks(pending(1, 2, 0), pending(2, 8, 0)),
			place: map[int64]string{1: "b", 2: "a"},
		},
		{
			name:  "too small nodes are skipped",
			nodes: nodes(node("a", 2, 8), node("b", 6, 8), node("c", 32, 8)),
			tasks: tasks(pending(1, 4, 0)),
			place: map[int64]string{1: "b"},
		},
	})
}

func TestPlanGPUExclusivity(t *testing.T) {
	g4 := func() *fsm.Node { return node("g", 16, 64, withGPUs(0, 1, 2, 3)) }
	runPlanCases(t, []planCase{
		{
			name:  "explicit ID held by a running task",
			nodes: nodes(g4()),
			tasks: tasks(on(1, "g", 1, 0, gpus(1)), pending(2, 1, 0, target("g"), gpus(1)), pending(3, 1, 0, target("g"), gpus(2))),
			place: map[int64]string{3: "g"},
			gpus:  map[int64][]int{3: {2}},
			wait:  map[int64]string{2: "GPU 1 of g is held by task 1"},
		},
		{
			name:  "explicit ID asked twice in one pass",
			nodes: nodes(g4()),
			tasks: tasks(pending(1, 1, 0, target("g"), gpus(0, 3)), pending(2, 1, 0, target("g"), gpus(3))),
			place: map[int64]string{1: "g"},
			gpus:  map[int64][]int{1: {0, 3}},
			wait:  map[int64]string{2: "GPU 3 of g is held by task 1"},
		},
		{
			name:  "paused and assigning tasks hold their GPUs",
			nodes: nodes(g4()),
			tasks: tasks(on(1, "g", 1, 0, gpus(0), status(fsm.StatusPaused)), on(2, "g", 1, 0, gpus(1), status(fsm.StatusAssigning)),
				pending(3, 1, 0, target("g"), gpus(0)), pending(4, 1, 0, target("g"), gpus(1))),
			wait: map[int64]string{3: "held by task 1", 4: "held by task 2"},
		},
		{
			name:  "finished tasks free their GPUs",
			nodes: nodes(g4()),
			tasks: tasks(on(1, "g", 1, 0, gpus(0), status(fsm.StatusKilled)), pending(2, 1, 0, target("g"), gpus(0))),
			place: map[int64]string{2: "g"},
			gpus:  map[int64][]int{2: {0}},
		},
		{
			name:  "GPU ID the node does not have",
			nodes: nodes(g4()),
			tasks: tasks(pending(1, 1, 0, target("g"), gpus(7))),
			wait:  map[int64]string{1: "g has no GPU 7"},
		},
		{
			name:  "count takes the lowest free IDs",
			nodes: nodes(g4()),
			tasks: tasks(on(1, "g", 1, 0, gpus(0)), pending(2, 1, 0, gpuCount(2)), pending(3, 1, 0, gpuCount(2))),
			place: map[int64]string{2: "g"},
			gpus:  map[int64][]int{2: {1, 2}},
			wait:  map[int64]string{3: "2 GPUs"},
		},
		{
			name:  "count takes the lowest free IDs whatever order the node lists them in",
			nodes: nodes(node("g", 16, 64, withGPUs(3, 1, 2, 0))),
			tasks: tasks(on(1, "g", 1, 0, gpus(1)), pending(2, 1, 0, gpuCount(2))),
			place: map[int64]string{2: "g"},
			gpus:  map[int64][]int{2: {0, 2}},
		},
		{
			name:  "counts add up within one pass",
			nodes: nodes(g4()),
			tasks: tasks(pending(1, 1, 0, gpuCount(1)), pending(2, 1, 0, gpuCount(2)), pending(3, 1, 0, gpuCount(1)), pending(4, 1, 0, gpuCount(1))),
			place: map[int64]string{1: "g", 2: "g", 3: "g"},
			gpus:  map[int64][]int{1: {0}, 2: {1, 2}, 3: {3}},
			wait:  map[int64]string{4: "1 GPUs"},
		},
		{
			name:  "count and explicit IDs never share",
			nodes: nodes(g4()),
			tasks: tasks(on(1, "g", 1, 0, gpus(0)), pending(2, 1, 0, gpuCount(1)), pending(3, 1, 0, target("g"), gpus(1)), pending(4, 1, 0, target("g"), gpus(2))),
			place: map[int64]string{2: "g", 4: "g"},
			gpus:  map[int64][]int{2: {1}, 4: {2}},
			wait:  map[int64]string{3: "GPU 1 of g is held by task 2"},
		},
		{
			name:  "count skips nodes without enough free GPUs even when they fit tighter",
			nodes: nodes(node("cpu", 2, 8), node("one", 2, 8, withGPUs(0)), g4()),
			tasks: tasks(pending(1, 1, 0, gpuCount(2))),
			place: map[int64]string{1: "g"},
			gpus:  map[int64][]int{1: {0, 1}},
		},
		{
			name:  "a task without GPUs gets none",
			nodes: nodes(g4()),
			tasks: tasks(pending(1, 1, 0)),
			place: map[int64]string{1: "g"},
			gpus:  map[int64][]int{1: nil},
		},
	})
}

func TestPlanNUMA(t *testing.T) {
	n := func() *fsm.Node { return node("n", 8, 32, withNUMA(4, 4)) }
	runPlanCases(t, []planCase{
		{
			name:  "cores counted per NUMA node",
			nodes: nodes(n()),
			tasks: tasks(on(1, "n", 3, 0, numa(0)), pending(2, 2, 0, target("n"), numa(0)), pending(3, 2, 0, target("n"), numa(1))),
			place: map[int64]string{3: "n"},
			numa:  map[int64]int{3: 1},
			wait:  map[int64]string{2: "NUMA node 0 of n has 1 cores free, needs 2"},
		},
		{
			name:  "NUMA cores add up within one pass",
			nodes: nodes(n()),
			tasks: tasks(pending(1, 3, 0, target("n"), numa(1)), pending(2, 2, 0, target("n"), numa(1)), pending(3, 1, 0, target("n"), numa(1))),
			place: map[int64]string{1: "n", 3: "n"},
			numa:  map[int64]int{1: 1, 3: 1},
			wait:  map[int64]string{2: "NUMA node 1"},
		},
		{
			name:  "unpinned tasks count against the node, not a NUMA node",
			nodes: nodes(n()),
			tasks: tasks(on(1, "n", 4, 0), pending(2, 4, 0, target("n"), numa(0)), pending(3, 1, 0)),
			place: map[int64]string{2: "n"},
			numa:  map[int64]int{2: 0},
			wait:  map[int64]string{3: "1 cores"},
		},
		{
			name:  "a NUMA node that does not exist",
			nodes: nodes(n()),
			tasks: tasks(pending(1, 1, 0, target("n"), numa(5))),
			wait:  map[int64]string{1: "NUMA node 5"},
		},
		{
			name:  "a NUMA node that does not exist, on a full node",
			nodes: nodes(n()),
			tasks: tasks(on(1, "n", 8, 0), pending(2, 1, 0, target("n"), numa(5))),
			wait:  map[int64]string{2: "NUMA node 5"},
		},
		{
			name:  "a node without NUMA topology",
			nodes: nodes(node("flat", 8, 32)),
			tasks: tasks(pending(1, 1, 0, target("flat"), numa(0))),
			wait:  map[int64]string{1: "flat has no NUMA node 0"},
		},
	})
}

func TestPlanPriorityAndFIFO(t *testing.T) {
	runPlanCases(t, []planCase{
		{
			name:  "higher priority first, then lower ID",
			nodes: nodes(node("a", 2, 8)),
			tasks: tasks(pending(1, 1, 0), pending(2, 1, 0, prio(5)), pending(3, 1, 0)),
			place: map[int64]string{1: "a", 2: "a"},
			order: []int64{2, 1},
			wait:  map[int64]string{3: "1 cores"},
		},
		{
			name:  "FIFO by ID whatever order the view lists them in",
			nodes: nodes(node("a", 2, 8)),
			tasks: tasks(pending(9, 1, 0), pending(4, 1, 0), pending(7, 1, 0)),
			place: map[int64]string{4: "a", 7: "a"},
			order: []int64{4, 7},
			wait:  map[int64]string{9: "1 cores"},
		},
		{
			name:  "negative priority goes last",
			nodes: nodes(node("a", 1, 8)),
			tasks: tasks(pending(1, 1, 0, prio(-1)), pending(2, 1, 0)),
			place: map[int64]string{2: "a"},
			wait:  map[int64]string{1: "1 cores"},
		},
		{
			name:  "a big task that does not fit does not block a small one",
			nodes: nodes(node("a", 4, 8)),
			tasks: tasks(on(1, "a", 2, 0), pending(2, 4, 0, prio(10)), pending(3, 1, 0), pending(4, 1, 0)),
			place: map[int64]string{3: "a", 4: "a"},
			order: []int64{3, 4},
			wait:  map[int64]string{2: "4 cores"},
		},
		{
			name:  "a high-priority task takes the last core before an older one",
			nodes: nodes(node("a", 4, 8)),
			tasks: tasks(on(1, "a", 3, 0), pending(2, 1, 0), pending(3, 1, 0, prio(1))),
			place: map[int64]string{3: "a"},
			wait:  map[int64]string{2: "1 cores"},
		},
	})
}

func TestOrder(t *testing.T) {
	ts := []*fsm.Task{pending(5, 1, 0), pending(3, 1, 0, prio(-2)), pending(4, 1, 0, prio(2)), pending(1, 1, 0), pending(2, 1, 0, prio(2))}
	scheduler.Order(ts)
	var got []int64
	for _, tk := range ts {
		got = append(got, tk.TaskID)
	}
	if want := []int64{2, 4, 1, 5, 3}; !slices.Equal(got, want) {
		t.Fatalf("Order = %v, want %v", got, want)
	}
}

func TestPlanArrayThrottle(t *testing.T) {
	big := func() *fsm.Node { return node("a", 64, 64) }
	runPlanCases(t, []planCase{
		{
			name:  "at most 3 placed in one pass",
			nodes: nodes(big()),
			tasks: tasks(pending(10, 1, 0, array(10, 3)), pending(11, 1, 0, array(10, 3)), pending(12, 1, 0, array(10, 3)),
				pending(13, 1, 0, array(10, 3)), pending(14, 1, 0, array(10, 3))),
			place: map[int64]string{10: "a", 11: "a", 12: "a"},
			wait:  map[int64]string{13: "array throttle|3 of batch 10", 14: "array throttle"},
		},
		{
			name:  "running, assigning and paused count",
			nodes: nodes(big()),
			tasks: tasks(on(10, "a", 1, 0, array(10, 3)), on(11, "a", 1, 0, array(10, 3), status(fsm.StatusAssigning)),
				pending(12, 1, 0, array(10, 3)), pending(13, 1, 0, array(10, 3))),
			place: map[int64]string{12: "a"},
			wait:  map[int64]string{13: "array throttle"},
		},
		{
			name:  "paused counts",
			nodes: nodes(big()),
			tasks: tasks(on(10, "a", 1, 0, array(10, 3)), on(11, "a", 1, 0, array(10, 3), status(fsm.StatusPaused)),
				on(12, "a", 1, 0, array(10, 3)), pending(13, 1, 0, array(10, 3))),
			wait: map[int64]string{13: "array throttle"},
		},
		{
			name:  "finished tasks free a slot",
			nodes: nodes(big()),
			tasks: tasks(on(10, "a", 1, 0, array(10, 3), status(fsm.StatusCompleted)), on(11, "a", 1, 0, array(10, 3), status(fsm.StatusFailed)),
				on(12, "a", 1, 0, array(10, 3)), pending(13, 1, 0, array(10, 3)), pending(14, 1, 0, array(10, 3)), pending(15, 1, 0, array(10, 3))),
			place: map[int64]string{13: "a", 14: "a"},
			wait:  map[int64]string{15: "array throttle"},
		},
		{
			name:  "batches are throttled separately",
			nodes: nodes(big()),
			tasks: tasks(on(10, "a", 1, 0, array(10, 1)), pending(11, 1, 0, array(10, 1)),
				pending(20, 1, 0, array(20, 1)), pending(21, 1, 0, array(20, 1)), pending(30, 1, 0), pending(31, 1, 0)),
			place: map[int64]string{20: "a", 30: "a", 31: "a"},
			wait:  map[int64]string{11: "batch 10", 21: "batch 20"},
		},
		{
			name:  "no throttle",
			nodes: nodes(big()),
			tasks: tasks(pending(10, 1, 0, array(10, 0)), pending(11, 1, 0, array(10, 0)), pending(12, 1, 0, array(10, 0)), pending(13, 1, 0, array(10, 0))),
			place: map[int64]string{10: "a", 11: "a", 12: "a", 13: "a"},
		},
		{
			name:  "a throttled task that does not fit uses no slot",
			nodes: nodes(node("a", 2, 8)),
			tasks: tasks(pending(10, 4, 0, array(10, 1), prio(1)), pending(11, 1, 0, array(10, 1))),
			place: map[int64]string{11: "a"},
			wait:  map[int64]string{10: "4 cores"},
		},
	})
}

func TestPlanDependencies(t *testing.T) {
	a := func() *fsm.Node { return node("a", 8, 8) }
	runPlanCases(t, []planCase{
		{
			name:  "waits while the dependency runs",
			nodes: nodes(a()),
			tasks: tasks(on(1, "a", 1, 0), pending(2, 1, 0, after(1))),
			wait:  map[int64]string{2: "waiting for 1"},
		},
		{
			name:  "waits while the dependency is pending, even when it is placed in the same pass",
			nodes: nodes(a()),
			tasks: tasks(pending(1, 1, 0), pending(2, 1, 0, after(1))),
			place: map[int64]string{1: "a"},
			wait:  map[int64]string{2: "waiting for 1"},
		},
		{
			name:  "names only the unfinished dependencies",
			nodes: nodes(a()),
			tasks: tasks(finished(1, fsm.StatusCompleted), on(2, "a", 1, 0, status(fsm.StatusPaused)), on(3, "a", 1, 0),
				pending(4, 1, 0, after(1, 2, 3))),
			wait: map[int64]string{4: "waiting for 2,3"},
		},
		{
			name:  "placed once all completed",
			nodes: nodes(a()),
			tasks: tasks(finished(1, fsm.StatusCompleted), finished(2, fsm.StatusCompleted), pending(3, 1, 0, after(1, 2))),
			place: map[int64]string{3: "a"},
		},
		{
			name:  "fails when a dependency failed",
			nodes: nodes(a()),
			tasks: tasks(finished(1, fsm.StatusCompleted), finished(2, fsm.StatusFailed), pending(3, 1, 0, after(1, 2))),
			fail:  map[int64]string{3: "dependency 2|failed"},
		},
		{
			name:  "fails when a dependency was killed",
			nodes: nodes(a()),
			tasks: tasks(finished(1, fsm.StatusKilled), pending(2, 1, 0, after(1))),
			fail:  map[int64]string{2: "dependency 1|killed"},
		},
		{
			name:  "fails when a dependency was killed for memory",
			nodes: nodes(a()),
			tasks: tasks(finished(1, fsm.StatusKilledOOM), pending(2, 1, 0, after(1))),
			fail:  map[int64]string{2: "dependency 1|killed_oom"},
		},
		{
			name:  "fails when a dependency was lost",
			nodes: nodes(a()),
			tasks: tasks(finished(1, fsm.StatusLost), pending(2, 1, 0, after(1))),
			fail:  map[int64]string{2: "dependency 1|lost"},
		},
		{
			name:  "fails when a dependency does not exist",
			nodes: nodes(a()),
			tasks: tasks(pending(2, 1, 0, after(99))),
			fail:  map[int64]string{2: "dependency 99 does not exist"},
		},
		{
			name:  "a failed dependency wins over an unfinished one",
			nodes: nodes(a()),
			tasks: tasks(on(1, "a", 1, 0), finished(2, fsm.StatusLost), pending(3, 1, 0, after(1, 2))),
			fail:  map[int64]string{3: "dependency 2"},
		},
		{
			name:  "a chain: only the head runs",
			nodes: nodes(a()),
			tasks: tasks(pending(1, 1, 0), pending(2, 1, 0, after(1)), pending(3, 1, 0, after(2))),
			place: map[int64]string{1: "a"},
			wait:  map[int64]string{2: "waiting for 1", 3: "waiting for 2"},
		},
		{
			name:  "a chain: the middle runs once the head completed",
			nodes: nodes(a()),
			tasks: tasks(finished(1, fsm.StatusCompleted), pending(2, 1, 0, after(1)), pending(3, 1, 0, after(2))),
			place: map[int64]string{2: "a"},
			wait:  map[int64]string{3: "waiting for 2"},
		},
		{
			name:  "a dependent whose dependencies completed still needs room",
			nodes: nodes(a()),
			tasks: tasks(finished(1, fsm.StatusCompleted), on(2, "a", 8, 0), pending(3, 1, 0, after(1))),
			wait:  map[int64]string{3: "1 cores"},
		},
	})
}

// TestPlanDependencyChainRuns drives a chain pass by pass: each link is
// placed only after the one before completed; when a link fails, the rest of
// the chain fails one pass at a time, each naming its own dependency.
func TestPlanDependencyChainRuns(t *testing.T) {
	ns := nodes(node("a", 8, 8))
	ts := tasks(pending(1, 1, 0), pending(2, 1, 0, after(1)), pending(3, 1, 0, after(2)), pending(4, 1, 0, after(3)))
	byID := map[int64]*fsm.Task{}
	for _, tk := range ts {
		byID[tk.TaskID] = tk
	}
	for _, want := range []int64{1, 2} {
		res := scheduler.Plan(view(ns, ts))
		if len(res.Placements) != 1 || res.Placements[0].TaskID != want || len(res.Failed) != 0 {
			t.Fatalf("want only task %d placed, got %+v", want, res)
		}
		byID[want].Status = fsm.StatusCompleted
	}
	byID[3].Status = fsm.StatusFailed
	res := scheduler.Plan(view(ns, ts))
	if len(res.Placements) != 0 || len(res.Failed) != 1 || res.Failed[0].TaskID != 4 || res.Failed[0].Reason != "dependency 3 ended failed" {
		t.Fatalf("want task 4 failed naming task 3, got %+v", res)
	}
}

func TestPlanDrainAndOffline(t *testing.T) {
	runPlanCases(t, []planCase{
		{
			name:  "a drained node gets no placements even when it fits tighter",
			nodes: nodes(node("tight", 2, 8, drained), node("roomy", 16, 64)),
			tasks: tasks(pending(1, 2, 0)),
			place: map[int64]string{1: "roomy"},
		},
		{
			name:  "only drained nodes",
			nodes: nodes(node("a", 8, 8, drained), node("b", 8, 8, drained)),
			tasks: tasks(pending(1, 1, 0)),
			wait:  map[int64]string{1: "drained"},
		},
		{
			name:  "drained and offline nodes",
			nodes: nodes(node("a", 8, 8, drained), node("b", 8, 8, offline)),
			tasks: tasks(pending(1, 1, 0)),
			wait:  map[int64]string{1: "drained"},
		},
		{
			name:  "targeted at a drained node",
			nodes: nodes(node("a", 8, 8, drained), node("b", 8, 8)),
			tasks: tasks(pending(1, 1, 0, target("a"))),
			wait:  map[int64]string{1: "node a is drained"},
		},
		{
			name:  "tasks on a drained node still hold its resources",
			nodes: nodes(node("a", 4, 8)),
			tasks: tasks(on(1, "a", 4, 0), pending(2, 1, 0)),
			wait:  map[int64]string{2: "1 cores"},
		},
		{
			name:  "an offline node gets no placements",
			nodes: nodes(node("tight", 2, 8, offline), node("roomy", 16, 64)),
			tasks: tasks(pending(1, 2, 0)),
			place: map[int64]string{1: "roomy"},
		},
		{
			name:  "targeted at an offline node",
			nodes: nodes(node("a", 8, 8, offline), node("b", 8, 8)),
			tasks: tasks(pending(1, 1, 0, target("a"))),
			wait:  map[int64]string{1: "node a is offline"},
		},
		{
			name:  "every node offline: waiting for a runner",
			nodes: nodes(node("a", 8, 8, offline)),
			tasks: tasks(pending(1, 1, 0), pending(2, 1, 0, gpuCount(1))),
			wait:  map[int64]string{1: "waiting for a runner", 2: "waiting for a runner"},
		},
		{
			name:  "no node registered: waiting for a runner",
			tasks: tasks(pending(1, 1, 0)),
			wait:  map[int64]string{1: "waiting for a runner"},
		},
	})
}

func TestPlanDrainedNodeRecoversAfterUndrain(t *testing.T) {
	a := node("a", 4, 8, drained)
	ts := tasks(pending(1, 1, 0))
	if res := scheduler.Plan(view(nodes(a), ts)); len(res.Placements) != 0 {
		t.Fatalf("drained: placed %+v", res.Placements)
	}
	a.Drained = false
	if res := scheduler.Plan(view(nodes(a), ts)); len(res.Placements) != 1 || res.Placements[0].Node != "a" {
		t.Fatalf("undrained: got %+v", res)
	}
}

func TestPlanTargets(t *testing.T) {
	runPlanCases(t, []planCase{
		{
			name:  "goes to its target even when another fits tighter",
			nodes: nodes(node("tight", 2, 8), node("roomy", 16, 64)),
			tasks: tasks(pending(1, 2, 0, target("roomy"))),
			place: map[int64]string{1: "roomy"},
		},
		{
			name:  "waits for its target when the target is full",
			nodes: nodes(node("full", 2, 8), node("free", 16, 64)),
			tasks: tasks(on(1, "full", 2, 0), pending(2, 1, 0, target("full"))),
			wait:  map[int64]string{2: "node full has 0 of 2 cores free, needs 1"},
		},
		{
			name:  "waits for its target's memory",
			nodes: nodes(node("full", 8, 8), node("free", 16, 64)),
			tasks: tasks(on(1, "full", 1, 8), pending(2, 1, 1, target("full"))),
			wait:  map[int64]string{2: "node full has 0 bytes of memory free"},
		},
		{
			name:  "an unregistered target",
			nodes: nodes(node("a", 8, 8)),
			tasks: tasks(pending(1, 1, 0, target("ghost"))),
			wait:  map[int64]string{1: "target node ghost is not registered"},
		},
		{
			name:  "targeted count of GPUs",
			nodes: nodes(node("g1", 8, 8, withGPUs(0, 1)), node("g2", 8, 8, withGPUs(0, 1))),
			tasks: tasks(pending(1, 1, 0, target("g2"), gpuCount(1))),
			place: map[int64]string{1: "g2"},
			gpus:  map[int64][]int{1: {0}},
		},
		{
			name:  "a targeted task fills its node; an untargeted one goes elsewhere",
			nodes: nodes(node("a", 2, 8), node("b", 4, 8)),
			tasks: tasks(pending(1, 2, 0, target("b")), pending(2, 2, 0, target("b")), pending(3, 2, 0)),
			place: map[int64]string{1: "b", 2: "b", 3: "a"},
		},
	})
}

func TestAccount(t *testing.T) {
	ts := []*fsm.Task{
		on(1, "a", 2, 1, gpus(0), numa(0)),
		on(2, "a", 1, 2, status(fsm.StatusPaused), gpus(1)),
		on(3, "a", 1, 0, status(fsm.StatusAssigning), numa(0)),
		on(4, "a", 8, 8, status(fsm.StatusPending)),
		on(5, "a", 8, 8, status(fsm.StatusCompleted)),
		on(6, "b", 3, 0),
		on(7, "", 5, 0),
	}
	u := scheduler.Account(ts)
	a := u["a"]
	if a == nil || a.Cores != 4 || a.MemoryBytes != 3*gib || a.Tasks != 3 || a.NUMACores[0] != 3 || len(a.GPUs) != 2 || a.GPUs[0] != 1 || a.GPUs[1] != 2 {
		t.Fatalf("usage of a = %+v", a)
	}
	if b := u["b"]; b == nil || b.Cores != 3 || b.Tasks != 1 {
		t.Fatalf("usage of b = %+v", b)
	}
	if len(u) != 2 {
		t.Fatalf("usage has %d nodes, want 2: %v", len(u), u)
	}
}

// TestAccountTable checks, case by case, what Account counts: only tasks
// placed on a node in a status that holds resources (Holds).
func TestAccountTable(t *testing.T) {
	for _, c := range []struct {
		name string
		task *fsm.Task
		want *scheduler.Usage // on node "a"; nil: nothing counted
	}{
		{"running", on(1, "a", 2, 1), &scheduler.Usage{Cores: 2, MemoryBytes: gib, Tasks: 1}},
		{"paused", on(1, "a", 2, 1, status(fsm.StatusPaused)), &scheduler.Usage{Cores: 2, MemoryBytes: gib, Tasks: 1}},
		{"assigning", on(1, "a", 2, 1, status(fsm.StatusAssigning)), &scheduler.Usage{Cores: 2, MemoryBytes: gib, Tasks: 1}},
		{"pending with a node", on(1, "a", 2, 1, status(fsm.StatusPending)), nil},
		{"unplaced", on(1, "", 2, 1), nil},
		{"completed", on(1, "a", 2, 1, status(fsm.StatusCompleted)), nil},
		{"failed", on(1, "a", 2, 1, status(fsm.StatusFailed)), nil},
		{"killed", on(1, "a", 2, 1, status(fsm.StatusKilled)), nil},
		{"killed_oom", on(1, "a", 2, 1, status(fsm.StatusKilledOOM)), nil},
		{"lost", on(1, "a", 2, 1, status(fsm.StatusLost)), nil},
		{"GPUs", on(7, "a", 1, 0, gpus(3, 1)), &scheduler.Usage{Cores: 1, Tasks: 1, GPUs: map[int]int64{3: 7, 1: 7}}},
		{"NUMA", on(7, "a", 3, 0, numa(1)), &scheduler.Usage{Cores: 3, Tasks: 1, NUMACores: map[int]int{1: 3}}},
	} {
		u := scheduler.Account([]*fsm.Task{c.task})
		got := u["a"]
		if c.want == nil {
			if len(u) != 0 {
				t.Errorf("%s: usage %v, want none", c.name, u)
			}
			continue
		}
		if c.want.GPUs == nil {
			c.want.GPUs = map[int]int64{}
		}
		if c.want.NUMACores == nil {
			c.want.NUMACores = map[int]int{}
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: usage %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestHolds(t *testing.T) {
	for _, s := range fsm.AllStatuses() {
		want := s == fsm.StatusAssigning || s == fsm.StatusRunning || s == fsm.StatusPaused
		if got := scheduler.Holds(s); got != want {
			t.Errorf("Holds(%s) = %v, want %v", s, got, want)
		}
	}
}

// TestLimit checks the whole-capacity check submit validation uses: the
// placement check against an empty node, whatever its status, with the
// reason Plan would give.
func TestLimit(t *testing.T) {
	n := node("a", 8, 16, withGPUs(0, 1), withNUMA(6, 2))
	for _, c := range []struct {
		name string
		node *fsm.Node
		task *fsm.Task
		want string // "" when it fits
	}{
		{"fits exactly", n, pending(1, 8, 16, gpuCount(2)), ""},
		{"nothing asked", n, pending(1, 0, 0), ""},
		{"too many cores", n, pending(1, 9, 1), "node a has 8 of 8 cores free, needs 9"},
		{"too much memory", n, pending(1, 1, 17), "node a has 17179869184 bytes of memory free, needs 18253611008"},
		{"too many GPUs", n, pending(1, 1, 1, gpuCount(3)), "node a has 2 GPUs free, needs 3"},
		{"GPU ID not on node", n, pending(1, 1, 0, gpus(0, 5)), "node a has no GPU 5"},
		{"GPU IDs on node", n, pending(1, 1, 0, gpus(1, 0)), ""},
		{"no such NUMA node", n, pending(1, 1, 0, numa(2)), "node a has no NUMA node 2"},
		{"NUMA node too small", n, pending(1, 3, 0, numa(1)), "NUMA node 1 of a has 2 cores free, needs 3"},
		{"NUMA node fits", n, pending(1, 6, 0, numa(0)), ""},
		{"offline node: capacity still counts", node("o", 4, 4, offline), pending(1, 4, 4), ""},
		{"drained node: capacity still counts", node("d", 4, 4, drained), pending(1, 5, 0), "node d has 4 of 4 cores free, needs 5"},
	} {
		got := scheduler.Limit(c.task, c.node)
		if got != c.want {
			t.Errorf("%s: Limit = %q, want %q", c.name, got, c.want)
		}
		if ok := scheduler.Capacity(c.task, c.node); ok != (c.want == "") {
			t.Errorf("%s: Capacity = %v, want %v", c.name, ok, c.want == "")
		}
	}
	if n.Status != fsm.NodeOnline || n.Drained {
		t.Fatalf("Limit changed its node: %+v", n)
	}
	if o := node("o", 4, 4, offline); scheduler.Limit(pending(1, 1, 0), o) != "" || o.Status != fsm.NodeOffline {
		t.Fatalf("Limit changed an offline node: %+v", o)
	}
}

// TestPlanDoesNotMutate checks that Plan leaves the view's tasks and nodes as
// they were: it reads committed state and only returns decisions.
func TestPlanDoesNotMutate(t *testing.T) {
	ns := nodes(node("g", 8, 8, withGPUs(2, 0, 1), withNUMA(4, 4)))
	ts := tasks(pending(1, 1, 0, gpuCount(2)), pending(2, 1, 0, target("g"), numa(1)), on(3, "g", 1, 0, gpus(2)))
	res := scheduler.Plan(view(ns, ts))
	if len(res.Placements) != 2 {
		t.Fatalf("want 2 placements, got %+v", res)
	}
	if ts[0].Status != fsm.StatusPending || ts[0].AssignedNode != "" || ts[0].RequiredGPUs != nil || ts[1].Status != fsm.StatusPending {
		t.Fatalf("Plan changed its input tasks: %+v %+v", ts[0], ts[1])
	}
	if ns[0].GPUInfo[0].GPUID != 2 {
		t.Fatalf("Plan reordered the node's GPUs: %+v", ns[0].GPUInfo)
	}
	if !slices.Equal(res.Placements[0].GPUs, []int{0, 1}) {
		t.Fatalf("GPUs %v, want [0 1]", res.Placements[0].GPUs)
	}
	if res2 := scheduler.Plan(view(ns, ts)); !reflect.DeepEqual(res, res2) {
		t.Fatalf("Plan is not deterministic:\n%+v\n%+v", res, res2)
	}
}

// TestPlanMissesAfterNegativeTask: a shape that fit no node is not tried
// again in the pass, unless a task placed since freed room, which only a
// task holding negative figures (of an older state: submits refuse them)
// can do. The pass must then decide what trying every node decides.
func TestPlanMissesAfterNegativeTask(t *testing.T) {
	v := view([]*fsm.Node{node("a", 4, 8)}, []*fsm.Task{
		pending(1, 5, 0), // fits nowhere: its shape is a miss
		pending(2, -2, 0),
		pending(3, 5, 0), // the same shape, which fits once task 2 is placed
	})
	res := scheduler.Plan(v)
	if ref := scheduler.PlanTryingEveryNode(v); !reflect.DeepEqual(res, ref) {
		t.Fatalf("Plan = %+v; trying every node gives %+v", res, ref)
	}
	if len(res.Placements) != 2 || res.Placements[1].TaskID != 3 {
		t.Fatalf("placements %+v, want tasks 2 and 3", res.Placements)
	}
}
