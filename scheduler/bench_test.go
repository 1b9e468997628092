package scheduler_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// benchView is a 100-node cluster (a third with GPUs, half with two NUMA
// nodes, a quarter already half busy) and 10,000 pending tasks of mixed
// sizes: some with GPU counts, some targeted, some pinned, some arrays.
func benchView() scheduler.View {
	rng := rand.New(rand.NewPCG(1, 2))
	var ns []*fsm.Node
	var ts []*fsm.Task
	id := int64(1)
	for i := range 100 {
		cores := []int{8, 16, 32, 64}[rng.IntN(4)]
		n := node(fmt.Sprintf("node%03d", i), cores, int64(cores)*4)
		if i%2 == 0 {
			withNUMA(cores/2, cores-cores/2)(n)
		}
		if i%3 == 0 {
			withGPUs(0, 1, 2, 3, 4, 5, 6, 7)(n)
		}
		ns = append(ns, n)
		if i%4 == 0 {
			ts = append(ts, on(id, n.Hostname, cores/2, int64(cores), gpus(0, 1)))
			id++
		}
	}
	for i := range 10_000 {
		t := pending(id, 1+rng.IntN(8), int64(rng.IntN(16)), prio(rng.IntN(3)))
		switch {
		case i%10 == 0:
			t.GPUCount = 1 + rng.IntN(2)
		case i%25 == 1:
			t.TargetNode = ns[rng.IntN(len(ns))].Hostname
		case i%50 == 2:
			h := ns[2*rng.IntN(len(ns)/2)]
			t.TargetNode = h.Hostname
			numa(rng.IntN(2))(t)
		case i%7 == 3:
			t.BatchID, t.ArrayThrottle = int64(1_000_000+i/100), 8
		}
		ts = append(ts, t)
		id++
	}
	return view(ns, ts)
}

// BenchmarkPlan measures one scheduling pass over 100 nodes and 10,000
// pending tasks. decisions/s counts every pending task decided (placed,
// waiting or failed); placements/op is how many of them were placed.
func BenchmarkPlan(b *testing.B) {
	v := benchView()
	pendingTasks := 0
	for _, t := range v.Active {
		if t.Status == fsm.StatusPending {
			pendingTasks++
		}
	}
	var res scheduler.Result
	b.ReportAllocs()
	for b.Loop() {
		res = scheduler.Plan(v)
	}
	if got := len(res.Placements) + len(res.Waiting) + len(res.Failed); got != pendingTasks {
		b.Fatalf("decided %d of %d pending tasks", got, pendingTasks)
	}
	b.ReportMetric(float64(len(res.Placements)), "placements/op")
	b.ReportMetric(float64(pendingTasks)*float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
