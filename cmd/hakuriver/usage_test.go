package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestPrintUsage checks the usage table and CSV: a row per group, the
// total last, and the status rows of a measured task.
func TestPrintUsage(t *testing.T) {
	rows := []fsm.UsageRow{
		{Key: "alice", Tasks: 2, Completed: 1, Failed: 1, CoreHours: 1.5, CPUHours: 0.25, MaxPeakMemoryBytes: 200 << 20},
		{Key: "bob", Tasks: 1, Completed: 1, GPUHours: 2},
	}
	res := api.UsageResponse{By: "user", Rows: rows, Total: api.SumUsage(rows)}
	var tb, cb bytes.Buffer
	if err := printUsage(&tb, res); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(tb.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "USER") || !strings.HasPrefix(lines[3], "TOTAL") ||
		!strings.Contains(lines[1], "1.500") || !strings.Contains(lines[1], "200.0MiB") || !strings.Contains(lines[3], "2.000") {
		t.Fatalf("table:\n%s", tb.String())
	}
	if err := printUsageCSV(&cb, res); err != nil {
		t.Fatal(err)
	}
	want := "user,TASKS,COMPLETED,FAILED,KILLED,RUNNING,ELAPSED-H,CORE-H,GPU-H,CPU-H,PEAK\n" +
		"alice,2,1,1,0,0,0.000000,1.500000,0.000000,0.250000,209715200\n" +
		"bob,1,1,0,0,0,0.000000,0.000000,2.000000,0.000000,0\n" +
		"TOTAL,3,2,1,0,0,0.000000,1.500000,2.000000,0.250000,209715200\n"
	if cb.String() != want {
		t.Fatalf("csv:\n%s\nwant:\n%s", cb.String(), want)
	}
	var eb bytes.Buffer
	if err := printUsage(&eb, api.UsageResponse{}); err != nil || !strings.Contains(eb.String(), "No task ended") {
		t.Fatalf("empty: %q %v", eb.String(), err)
	}

	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(4 * time.Second)
	tk := fsm.Task{TaskID: 1, Status: fsm.StatusKilled, StartedAt: &start, CompletedAt: &end,
		Usage: &fsm.Usage{CPUUserNs: 1.5e9, CPUSystemNs: 0.5e9, PeakMemoryBytes: 200 << 20, Signal: 9}}
	var sb bytes.Buffer
	if err := printTask(&sb, tk); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Elapsed:", "4s", "CPU time:", "2s (user 1.5s, system 500ms), 50% of one core", "Peak memory:", "200.0MiB", "Signal:", "9"} {
		if !strings.Contains(sb.String(), w) {
			t.Errorf("task status: no %q in\n%s", w, sb.String())
		}
	}

	var csvb bytes.Buffer
	tk.Name, tk.Owner, tk.AssignedNode, tk.RequiredCores, tk.Command, tk.Arguments = "train", "alice", "n1", 2, "python", []string{"a b.py"}
	if err := printTaskCSV(&csvb, []fsm.Task{tk}); err != nil {
		t.Fatal(err)
	}
	want = strings.Join(taskCSVHeader, ",") + "\n" +
		`1,train,0,alice,killed,,9,n1,2,,0,0001-01-01T00:00:00Z,2026-12-01T00:00:00Z,2026-12-01T00:00:04Z,4.000,1.500,0.500,209715200,"python ""a b.py"""` + "\n"
	if csvb.String() != want {
		t.Fatalf("task csv:\n%s\nwant:\n%s", csvb.String(), want)
	}
}
