package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// newQueueCmd builds "hakuriver queue": the pending tasks in the order the
// scheduler will start them, each with the reason it waits.
func newQueueCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "queue",
		Short: "Show the pending tasks and what each one waits for",
		Long: `Show the pending tasks in the order the scheduler starts them (higher
--priority first, then submission order), each with what it waits for:
free cores, memory or GPUs on a node that fits it, the tasks named by
--after, a free slot under its array job's %N limit, a node that is
not drained, or room under its owner's quota or a group's ("hakuriver
quota" shows them). TARGET is "-" when the scheduler may pick any node; COMMAND
is the program without its arguments.

The answering replica forwards the request to the leader, so the queue is
current. --output json prints the entries as the API returns them.`,
		Example: `  hakuriver queue
  hakuriver queue -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				q, err := c.Queue(ctx)
				if err != nil {
					return err
				}
				if format == outputJSON {
					if q == nil {
						q = []api.QueueEntry{}
					}
					return printJSON(cmd.OutOrStdout(), q)
				}
				return printQueue(cmd.OutOrStdout(), q)
			})
		},
	}
}

// printQueue writes the queue table, in the order given.
func printQueue(w io.Writer, q []api.QueueEntry) error {
	if len(q) == 0 {
		if _, err := fmt.Fprintln(w, "Queue is empty."); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	tw := newTable(w)
	row(tw, "TASK ID", "PRIORITY", "TARGET", "WAITING FOR", "SUBMITTED", "COMMAND")
	for _, e := range q {
		row(tw, e.TaskID, strconv.Itoa(e.Priority), orDash(e.TargetNode), orDash(e.Reason),
			formatRFC3339(e.SubmittedAt), truncate(e.Command, 60))
	}
	return flushTable(tw)
}

// addScheduling fills the queueing fields of req from --priority, --array,
// --time-limit and --after. The host validates them fully; this only
// catches malformed values early.
func (o *submitOptions) addScheduling(req *api.SubmitRequest) error {
	req.Priority = o.priority
	if o.array != "" {
		spec, err := api.CheckArray(o.array)
		if err != nil {
			return fmt.Errorf("invalid --array value %q: %w", o.array, err)
		}
		if len(o.targets) > 1 {
			return fmt.Errorf("--array takes at most one --target, got %d", len(o.targets))
		}
		req.Array = spec
	}
	if o.timeLimit != "" {
		secs, err := api.ParseTimeLimit(o.timeLimit)
		if err != nil {
			return fmt.Errorf("invalid --time-limit value %q: %w", o.timeLimit, err)
		}
		req.TimeLimitSeconds = secs
	}
	after, err := parseIDList(o.after)
	if err != nil {
		return err
	}
	req.After = after
	return nil
}

// parseIDList flattens repeated --after values, each "ID[,ID...]", into
// task IDs: blank items skipped, duplicates dropped, order kept.
func parseIDList(values []string) ([]string, error) {
	var ids []string
	for _, v := range values {
		for _, id := range strings.Split(v, ",") {
			id = strings.TrimSpace(id)
			if id == "" {
				continue
			}
			if n, err := strconv.ParseInt(id, 10, 64); err != nil || n <= 0 {
				return nil, fmt.Errorf("invalid --after value %q: %q is not a task ID", v, id)
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// schedulingRows adds the queueing settings a task was submitted with, each
// only when set: array index, priority, time limit and dependencies.
func schedulingRows(kv func(k, v string), t fsm.Task) {
	if t.ArrayIndex != nil {
		idx := strconv.Itoa(*t.ArrayIndex)
		if t.ArrayThrottle > 0 {
			idx += fmt.Sprintf(" (at most %d of the batch running)", t.ArrayThrottle)
		}
		kv("Array index", idx)
	}
	if t.Priority != 0 {
		kv("Priority", strconv.Itoa(t.Priority))
	}
	if t.TimeLimitSeconds > 0 {
		limit := strconv.FormatInt(t.TimeLimitSeconds, 10) + "s"
		if t.TimeLimitSeconds < 1<<32 { // time.Duration holds it
			limit = (time.Duration(t.TimeLimitSeconds) * time.Second).String()
		}
		kv("Time limit", limit)
	}
	if len(t.After) > 0 {
		ids := make([]string, len(t.After))
		for i, id := range t.After {
			ids[i] = strconv.FormatInt(id, 10)
		}
		kv("After", strings.Join(ids, ","))
	}
}
