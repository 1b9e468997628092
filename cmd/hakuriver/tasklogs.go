package main

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// logsOptions holds the flags of "task logs".
type logsOptions struct {
	stderr       bool
	follow       bool
	pollInterval time.Duration
}

func newTaskLogsCmd(g *clientFlags) *cobra.Command {
	o := &logsOptions{}
	cmd := &cobra.Command{
		Use:   "logs TASK_ID|NAME",
		Short: "Print a command task's output",
		Long: `Print a command task's standard output (or, with --stderr, its standard
error) as the host's shared directory holds it. The bytes are written as
they are; --output does not apply.

Without --follow a log file that does not exist yet is an error. With
--follow the command keeps polling for new bytes, waits for a log file
that was not written yet, and stops once the task has reached a final
status and everything it wrote was printed, and then exits as the task did:
0 when it completed, its exit code when it failed with one (128+N for
signal N), 1 when it ended otherwise (killed, lost). Ctrl-C stops it
earlier. A task name works where only one task has it.`,
		Example: `  hakuriver task logs 1790263384729600000
  hakuriver task logs --stderr 1790263384729600000
  hakuriver task logs --follow --poll-interval 2s 1790263384729600000`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTaskLogs(cmd, g, o, args[0])
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.stderr, "stderr", false, "print the standard error instead of the standard output")
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing new output until the task finishes")
	f.DurationVar(&o.pollInterval, "poll-interval", 500*time.Millisecond, "time between reads with --follow")
	return cmd
}

func runTaskLogs(cmd *cobra.Command, g *clientFlags, o *logsOptions, id string) error {
	if _, err := g.format(); err != nil {
		return err
	}
	if o.follow && o.pollInterval <= 0 {
		return fmt.Errorf("invalid --poll-interval %s: must be positive", o.pollInterval)
	}
	stream := api.StreamStdout
	if o.stderr {
		stream = api.StreamStderr
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		ctx, cancel := g.call(cmd.Context())
		ref, err := resolveRef(ctx, c, id, false)
		cancel()
		if err != nil {
			return err
		}
		if ref.batch {
			return fmt.Errorf("%q names a batch: give one of its task IDs (hakuriver task list --batch %s)", id, ref.id)
		}
		id = ref.id
	}
	r := &api.LogReader{Client: c, TaskID: id, Stream: stream, W: cmd.OutOrStdout(),
		Poll: g.pollOptions(o.pollInterval, cmd.ErrOrStderr(), "following")}
	read := r.Dump
	if o.follow {
		read = r.Follow
	}
	if err := read(cmd.Context()); err != nil {
		if api.StatusCode(err) == http.StatusNotFound {
			// A batch ID has no logs of its own: say so.
			ctx, cancel := g.call(cmd.Context())
			ref, rerr := resolveRef(ctx, c, id, false)
			cancel()
			if rerr == nil && ref.batch {
				return fmt.Errorf("%s is a batch ID: give one of its task IDs (hakuriver task list --batch %s)", id, id)
			}
		}
		return err
	}
	if !o.follow {
		return nil
	}
	ctx, cancel := g.call(cmd.Context())
	defer cancel()
	t, err := c.Status(ctx, id)
	if err != nil {
		return fmt.Errorf("task %s finished; reading its exit status: %w", id, err)
	}
	return taskEnd(t)
}

// taskEnd is nil for a completed task, else an error that makes the
// process exit as the task did: its exit code (128+N for signal N), or 1
// when it has none.
func taskEnd(t fsm.Task) error {
	if t.Status == fsm.StatusCompleted {
		return nil
	}
	msg := fmt.Sprintf("task %d %s", t.TaskID, describeEnd(t))
	if t.ExitCode != nil && *t.ExitCode != 0 {
		return &exitCodeError{code: processExitCode(*t.ExitCode), msg: msg}
	}
	return &exitCodeError{code: 1, msg: msg}
}
