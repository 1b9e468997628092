package fsm_test

import (
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// usageMachine returns a machine holding n ended tasks of 20 owners on 8
// nodes over 30 days, each with its runner's figures.
func usageMachine(tb testing.TB, n int) *fsm.Machine {
	h := newHarness(tb)
	nodes := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"}
	for _, name := range nodes {
		h.register(name, 0)
	}
	const per = 500
	owners := make([]string, 20)
	for i := range owners {
		owners[i] = "user" + string(rune('a'+i))
	}
	var base int64 = 7_300_000_000_000_000_000
	for i := 0; i < n; i += per {
		sub, asg, rep := &fsm.SubmitTasks{}, &fsm.AssignTasks{}, &fsm.ReportTasks{}
		for j := i; j < min(i+per, n); j++ {
			id := base + int64(j)
			tk := newTask(id)
			tk.Owner = owners[j%len(owners)]
			sub.Tasks = append(sub.Tasks, tk)
			asg.Assign = append(asg.Assign, fsm.AssignTask{TaskID: id, Node: nodes[j%len(nodes)], At: at(1)})
			start := t0.Add(time.Duration(j) * (30 * 24 * time.Hour / time.Duration(n)))
			stop := start.Add(time.Duration(j%3600) * time.Second)
			st := fsm.StatusCompleted
			if j%10 == 0 {
				st = fsm.StatusFailed
			}
			rep.Updates = append(rep.Updates, fsm.UpdateTask{TaskID: id, Status: st, ExitCode: intp(0), StartedAt: &start, CompletedAt: &stop, At: stop,
				Usage: &fsm.Usage{CPUUserNs: int64(j%3600) * 1e8, PeakMemoryBytes: int64(j%1000) << 20, Source: "cgroup"}})
		}
		h.ok(sub)
		h.ok(asg)
		h.ok(rep)
	}
	return h.m
}

// BenchmarkUsageReport100k measures GET /api/usage's sum at 100,000
// ended tasks, by user, node and day, and over a one-week window.
func BenchmarkUsageReport100k(b *testing.B) {
	m := usageMachine(b, 100_000)
	for _, q := range []struct {
		name string
		q    fsm.UsageQuery
	}{
		{"total", fsm.UsageQuery{}},
		{"by_user", fsm.UsageQuery{By: fsm.UsageByUser}},
		{"by_node", fsm.UsageQuery{By: fsm.UsageByNode}},
		{"by_day", fsm.UsageQuery{By: fsm.UsageByDay}},
		{"by_user_week", fsm.UsageQuery{By: fsm.UsageByUser, Since: t0.Add(7 * 24 * time.Hour), Until: t0.Add(14 * 24 * time.Hour)}},
	} {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rows, err := m.UsageReport(q.q)
				if err != nil || len(rows) == 0 {
					b.Fatalf("%v %d rows", err, len(rows))
				}
			}
		})
	}
}
