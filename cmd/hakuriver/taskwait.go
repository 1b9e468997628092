package main

import (
	"context"
	"errors"
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

// waitOptions holds the flags of "task wait".
type waitOptions struct {
	timeout      time.Duration
	pollInterval time.Duration
	batch        bool
}

// waitIDs resolves the arguments of "task wait" into task IDs: a batch ID
// (or name of a batch) stands for every task of the batch.
func waitIDs(ctx context.Context, g *clientFlags, c *api.Client, args []string, batch bool) ([]string, error) {
	var ids []string
	add := func(id string) {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, arg := range args {
		cctx, cancel := g.call(ctx)
		ref, err := resolveRef(cctx, c, arg, batch)
		if err == nil && ref.batch {
			var tasks []fsm.Task
			if tasks, err = batchTasks(cctx, c, ref.id); err == nil {
				for _, t := range tasks {
					add(strconv.FormatInt(t.TaskID, 10))
				}
			}
		} else if err == nil {
			add(ref.id)
		}
		cancel()
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func newTaskWaitCmd(g *clientFlags) *cobra.Command {
	o := &waitOptions{}
	cmd := &cobra.Command{
		Use:   "wait TASK_ID|BATCH_ID|NAME...",
		Short: "Wait until tasks finish",
		Long: `Wait until every given task has reached a final status (completed, failed,
killed, killed_oom or lost), printing each one as it finishes.

The command succeeds when every task completed. Otherwise it fails with an
error that lists each task that did not complete with its status; when a
single task was given and it ended with a non-zero exit code, the command
exits with that code (a task killed by signal N exits with 128+N).

--timeout bounds the whole wait (0, the default, waits forever); for this
command it replaces the global --timeout, and each API call keeps the
default limit of ` + defaultTimeout.String() + `. --output json prints the final tasks.

A batch ID (with --batch, every ID given is taken as one) waits for every
task of the batch, and fails if any of them did not complete. A task name works where only one task, or
one batch, has it.`,
		Example: `  hakuriver task wait 1790263384729600000
  hakuriver task wait --timeout 1h 1790263384729600000 1790263384729600001
  hakuriver task wait -o json 1790263384729600000`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTaskWait(cmd, g, o, args)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.timeout, "timeout", 0, "give up after this long (0: wait forever)")
	f.DurationVar(&o.pollInterval, "poll-interval", time.Second, "time between two reads of every unfinished task (between them, the first unfinished task is followed: its changes are seen at once)")
	f.BoolVar(&o.batch, "batch", false, "take each ID as a batch ID")
	return cmd
}

func runTaskWait(cmd *cobra.Command, g *clientFlags, o *waitOptions, args []string) error {
	format, err := g.format()
	if err != nil {
		return err
	}
	if o.timeout < 0 {
		return fmt.Errorf("invalid --timeout %s: must be 0 (forever) or positive", o.timeout)
	}
	if o.pollInterval <= 0 {
		return fmt.Errorf("invalid --poll-interval %s: must be positive", o.pollInterval)
	}
	for _, id := range args {
		if strings.TrimSpace(id) == "" {
			return fmt.Errorf("empty task ID")
		}
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := cmd.Context()
	ids, err := waitIDs(ctx, g, c, args, o.batch)
	if err != nil {
		return err
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	progress := out
	if format == outputJSON {
		progress = errOut
	}
	tasks, err := waitTasks(ctx, g, c, ids, o.pollInterval, progress, errOut)
	if err != nil {
		return err
	}
	if format == outputJSON {
		if err := printJSON(out, tasks); err != nil {
			return err
		}
	}
	return notCompleted(tasks)
}

// pollOptions are the API client's polling settings for the CLI: every
// interval, each call bounded by --timeout, transient errors reported on
// warn as "warning: ERR (still DOING)".
func (g *clientFlags) pollOptions(every time.Duration, warn io.Writer, doing string) api.PollOptions {
	return api.PollOptions{Interval: every, CallTimeout: g.timeout, Warn: func(err error) {
		fmt.Fprintf(warn, "warning: %s (still %s)\n", err, doing)
	}}
}

// waitTasks waits for every task through the API client (Client.WaitTasks)
// and reports each finished task on progress and transient errors on warn.
// It serves "task submit --wait" and "task wait".
func waitTasks(ctx context.Context, g *clientFlags, c *api.Client, ids []string, every time.Duration, progress, warn io.Writer) ([]fsm.Task, error) {
	return c.WaitTasks(ctx, ids, g.pollOptions(every, warn, "waiting"), func(id string, t fsm.Task) {
		fmt.Fprintf(progress, "task %s: %s\n", id, describeEnd(t))
	})
}

// describeEnd renders a finished task's outcome: "failed (exit code 1) on
// node1: message".
func describeEnd(t fsm.Task) string {
	s := string(t.Status)
	if t.ExitCode != nil {
		s += fmt.Sprintf(" (exit code %d)", *t.ExitCode)
	}
	if t.AssignedNode != "" {
		s += " on " + t.AssignedNode
	}
	if t.ErrorMessage != "" {
		s += ": " + t.ErrorMessage
	}
	return s
}

// notCompleted returns an error listing the tasks that did not complete,
// each with its status and exit code. When the only task did not complete
// and has a non-zero exit code, the error is an *exitCodeError carrying it
// (mapped by processExitCode), so the process exits as the task did.
func notCompleted(tasks []fsm.Task) error {
	var bad []string
	for _, t := range tasks {
		if t.Status != fsm.StatusCompleted {
			s := fmt.Sprintf("%d %s", t.TaskID, t.Status)
			if t.ExitCode != nil {
				s += fmt.Sprintf(" (exit code %d)", *t.ExitCode)
			}
			bad = append(bad, s)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d of %d tasks did not complete: %s", len(bad), len(tasks), strings.Join(bad, ", "))
	if len(tasks) == 1 && tasks[0].ExitCode != nil && *tasks[0].ExitCode != 0 {
		return &exitCodeError{code: processExitCode(*tasks[0].ExitCode), msg: msg}
	}
	return errors.New(msg)
}
