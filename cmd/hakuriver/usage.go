package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// outputCSV is the extra --output format of the accounting commands.
const outputCSV = "csv"

// newUsageCmd builds "hakuriver usage": the accounting of the cluster's
// tasks, like Slurm's sreport/sacct summaries.
func newUsageCmd(g *clientFlags) *cobra.Command {
	var q api.UsageQuery
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show what the tasks used: core-hours, GPU-hours, CPU-hours, tasks and failures",
		Long: `Show the accounting of the cluster's tasks, one row per user, node or day
(--by), and the total. A task counts in the period in which it ended
(--since and --until select [since, until), RFC 3339 times or YYYY-MM-DD
dates in UTC); a task still running counts up to now.

  CORE-H   cores the task held × the time it ran (--cores 0 holds none)
  GPU-H    GPUs the task held × the time it ran
  CPU-H    CPU time its processes used, user + system, as the runner
           measured it from the task's cgroup when it ended
  TASKS    tasks counted; FAILED: failed, killed_oom or lost; KILLED: by
           a user; RUNNING: not ended yet
  PEAK     the largest peak memory of one task

Every account with the viewer role sees the usage of the whole cluster, as
the task list already shows every task's owner, node and resources;
--user NAME limits the rows to one account. --output json prints the API's
answer, --output csv one line per row (and the total) for spreadsheets.`,
		Example: `  hakuriver usage
  hakuriver usage --by user --since 2026-12-01
  hakuriver usage --by day --since 2026-12-01 --until 2026-12-08 -o csv
  hakuriver usage --by node --user alice -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			csvOut := g.output == outputCSV
			if csvOut {
				g.output = outputTable // the shared flag knows table and json
			}
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				res, err := c.Usage(ctx, q)
				if err != nil {
					return err
				}
				switch {
				case csvOut:
					return printUsageCSV(cmd.OutOrStdout(), res)
				case format == outputJSON:
					return printJSON(cmd.OutOrStdout(), res)
				}
				return printUsage(cmd.OutOrStdout(), res)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.By, "by", "", "group the rows by user, node or day (default: the total only)")
	f.StringVar(&q.Since, "since", "", "count tasks that ended at or after this time (RFC 3339 or YYYY-MM-DD, UTC)")
	f.StringVar(&q.Until, "until", "", "count tasks that ended before this time (RFC 3339 or YYYY-MM-DD, UTC)")
	f.StringVar(&q.User, "user", "", "count only this account's tasks")
	return cmd
}

// usageHeader names the columns of the table and the CSV.
var usageHeader = []string{"TASKS", "COMPLETED", "FAILED", "KILLED", "RUNNING", "ELAPSED-H", "CORE-H", "GPU-H", "CPU-H", "PEAK"}

// usageCells renders one row's figures, hours with prec decimals.
func usageCells(r fsm.UsageRow, prec int, peak func(int64) string) []string {
	h := func(v float64) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	return []string{strconv.Itoa(r.Tasks), strconv.Itoa(r.Completed), strconv.Itoa(r.Failed), strconv.Itoa(r.Killed),
		strconv.Itoa(r.Running), h(r.ElapsedHours), h(r.CoreHours), h(r.GPUHours), h(r.CPUHours), peak(r.MaxPeakMemoryBytes)}
}

// printUsage writes the usage table, the total last.
func printUsage(w io.Writer, res api.UsageResponse) error {
	if res.Total.Tasks == 0 {
		if _, err := fmt.Fprintln(w, "No task ended in this period."); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	tw := newTable(w)
	by := res.By
	if by == "" {
		by = "total"
	}
	row(tw, append([]string{upper(by)}, usageHeader...)...)
	if res.By != "" {
		for _, r := range res.Rows {
			row(tw, append([]string{r.Key}, usageCells(r, 3, formatBytes)...)...)
		}
	}
	row(tw, append([]string{"TOTAL"}, usageCells(res.Total, 3, formatBytes)...)...)
	return flushTable(tw)
}

// printUsageCSV writes the rows and the total as CSV, peak memory in bytes.
func printUsageCSV(w io.Writer, res api.UsageResponse) error {
	cw := csv.NewWriter(w)
	by := res.By
	if by == "" {
		by = "total"
	}
	recs := [][]string{append([]string{by}, usageHeader...)}
	bytesCell := func(n int64) string { return strconv.FormatInt(n, 10) }
	if res.By != "" {
		for _, r := range res.Rows {
			recs = append(recs, append([]string{r.Key}, usageCells(r, 6, bytesCell)...))
		}
	}
	recs = append(recs, append([]string{"TOTAL"}, usageCells(res.Total, 6, bytesCell)...))
	if err := cw.WriteAll(recs); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// upper returns s in upper case (ASCII).
func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// usageRows adds a task's accounting to its status: elapsed time, and the
// CPU time, peak memory and signal its runner measured at its end.
func usageRows(kv func(k, v string), t fsm.Task) {
	if t.StartedAt == nil {
		return
	}
	el := fsm.TaskElapsed(&t, time.Now())
	elapsed := el.Round(time.Second).String()
	if t.CompletedAt == nil {
		elapsed += " (running)"
	}
	kv("Elapsed", elapsed)
	if t.Usage == nil {
		if t.Status.Final() {
			kv("CPU time", "not measured")
		}
		return
	}
	cpu := t.Usage.CPUTime()
	line := fmt.Sprintf("%s (user %s, system %s)", cpu.Round(time.Millisecond),
		time.Duration(t.Usage.CPUUserNs).Round(time.Millisecond), time.Duration(t.Usage.CPUSystemNs).Round(time.Millisecond))
	if el > 0 {
		line += fmt.Sprintf(", %.0f%% of one core", 100*cpu.Seconds()/el.Seconds())
	}
	kv("CPU time", line)
	peak := "not measured"
	if t.Usage.PeakMemoryBytes > 0 {
		peak = fmt.Sprintf("%s (%d bytes)", formatBytes(t.Usage.PeakMemoryBytes), t.Usage.PeakMemoryBytes)
	}
	kv("Peak memory", peak)
	if t.Usage.Signal != 0 {
		kv("Signal", strconv.Itoa(t.Usage.Signal))
	}
}

// taskCSVHeader names the columns of "task list -o csv": one accounting
// record per task, like Slurm's sacct --parsable.
var taskCSVHeader = []string{"task_id", "name", "batch_id", "owner", "status", "exit_code", "signal", "node", "cores",
	"gpus", "memory_bytes", "submitted_at", "started_at", "completed_at", "elapsed_s", "cpu_user_s", "cpu_system_s",
	"peak_memory_bytes", "command"}

// printTaskCSV writes tasks as CSV accounting records (times RFC 3339 UTC,
// durations in seconds; empty where unknown).
func printTaskCSV(w io.Writer, tasks []fsm.Task) error {
	cw := csv.NewWriter(w)
	ts := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	sec := func(ns int64) string { return strconv.FormatFloat(float64(ns)/1e9, 'f', 3, 64) }
	recs := [][]string{taskCSVHeader}
	for i := range tasks {
		t := &tasks[i]
		exit, sig, el, user, sys, peak, gpus := "", "", "", "", "", "", ""
		if len(t.RequiredGPUs) > 0 {
			gpus = formatInts(t.RequiredGPUs)
		}
		if t.ExitCode != nil {
			exit = strconv.Itoa(*t.ExitCode)
		}
		if t.StartedAt != nil && t.CompletedAt != nil {
			el = sec(int64(fsm.TaskElapsed(t, time.Time{})))
		}
		if u := t.Usage; u != nil {
			user, sys, peak = sec(u.CPUUserNs), sec(u.CPUSystemNs), strconv.FormatInt(u.PeakMemoryBytes, 10)
			if u.Signal != 0 {
				sig = strconv.Itoa(u.Signal)
			}
		}
		recs = append(recs, []string{strconv.FormatInt(t.TaskID, 10), t.Name, strconv.FormatInt(t.BatchID, 10), t.Owner,
			string(t.Status), exit, sig, t.AssignedNode, strconv.Itoa(t.RequiredCores), gpus,
			strconv.FormatInt(t.RequiredMemoryBytes, 10), t.SubmittedAt.UTC().Format(time.RFC3339), ts(t.StartedAt),
			ts(t.CompletedAt), el, user, sys, peak, commandLine(t.Command, t.Arguments)})
	}
	if err := cw.WriteAll(recs); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
