//go:build integration

package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// usageResult is the accounting query's latency at n ended tasks.
type usageResult struct {
	tasks int
	rows  []usageRow
}

type usageRow struct {
	name     string
	groups   int
	p50, p99 time.Duration
}

// usageSection fills an in-process FSM with n ended tasks (20 owners, 8
// nodes, 30 days, each with its runner's figures), the way the log
// would, and times fsm.UsageReport, what GET /api/usage computes, for
// each grouping.
func usageSection(n int) usageResult {
	m := fsm.New()
	nodes := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	idx := uint64(0)
	apply := func(c fsm.Command) {
		data, err := fsm.Encode(c)
		if err != nil {
			panic(fmt.Sprintf("encode: %v", err))
		}
		idx++
		if r := m.Apply(idx, data); r.Err != nil {
			panic(fmt.Sprintf("apply %s: %v", c.Type(), r.Err))
		}
	}
	for _, name := range nodes {
		apply(&fsm.RegisterNode{Node: &fsm.Node{Hostname: name, URL: "http://" + name + ":8001", TotalCores: 64, MemoryTotalBytes: 256 << 30}, At: base})
	}
	step := 30 * 24 * time.Hour / time.Duration(max(n, 1))
	const per = 500
	for i := 0; i < n; i += per {
		sub, asg, rep := &fsm.SubmitTasks{}, &fsm.AssignTasks{}, &fsm.ReportTasks{}
		for j := i; j < min(i+per, n); j++ {
			id := int64(j+1) << 22
			ids := strconv.FormatInt(id, 10)
			sub.Tasks = append(sub.Tasks, &fsm.Task{TaskID: id, TaskType: fsm.TaskCommand, Command: "python", Arguments: []string{"train.py", ids},
				RequiredCores: 1 + j%8, Status: fsm.StatusPending, Owner: "user" + strconv.Itoa(j%20), SubmittedAt: base})
			asg.Assign = append(asg.Assign, fsm.AssignTask{TaskID: id, Node: nodes[j%len(nodes)], At: base})
			start := base.Add(time.Duration(j) * step)
			stop := start.Add(time.Duration(j%3600) * time.Second)
			code := 0
			rep.Updates = append(rep.Updates, fsm.UpdateTask{TaskID: id, Status: fsm.StatusCompleted, ExitCode: &code, StartedAt: &start, CompletedAt: &stop, At: stop,
				Usage: &fsm.Usage{CPUUserNs: int64(j%3600) * 1e8, PeakMemoryBytes: int64(j%1000) << 20, Source: "cgroup"}})
		}
		apply(sub)
		apply(asg)
		apply(rep)
	}
	res := usageResult{tasks: n}
	for _, q := range []struct {
		name string
		q    fsm.UsageQuery
	}{
		{"total", fsm.UsageQuery{}},
		{"by user", fsm.UsageQuery{By: fsm.UsageByUser}},
		{"by node", fsm.UsageQuery{By: fsm.UsageByNode}},
		{"by day", fsm.UsageQuery{By: fsm.UsageByDay}},
		{"by user, one week", fsm.UsageQuery{By: fsm.UsageByUser, Since: base.Add(7 * 24 * time.Hour), Until: base.Add(14 * 24 * time.Hour)}},
	} {
		var times []time.Duration
		groups := 0
		for range 21 {
			start := time.Now()
			rows, err := m.UsageReport(q.q)
			times = append(times, time.Since(start))
			if err != nil {
				panic(fmt.Sprintf("usage %s: %v", q.name, err))
			}
			groups = len(rows)
		}
		slices.Sort(times)
		res.rows = append(res.rows, usageRow{name: q.name, groups: groups, p50: times[len(times)/2], p99: times[len(times)-1]})
	}
	return res
}

func printUsageBench(out io.Writer, r usageResult) {
	fmt.Fprintf(out, "Accounting query (fsm.UsageReport, what GET /api/usage sums; in-process, no HTTP) at %d ended tasks, 21 runs each\n", r.tasks)
	tw := table(out)
	fmt.Fprintln(tw, "grouping\trows\tp50 ms\tmax ms\t")
	for _, row := range r.rows {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t\n", row.name, row.groups, float64(row.p50)/float64(time.Millisecond), float64(row.p99)/float64(time.Millisecond))
	}
	tw.Flush() //nolint:errcheck // stdout
}
