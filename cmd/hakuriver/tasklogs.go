package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
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
		Use:   "logs TASK_ID",
		Short: "Print a command task's output",
		Long: `Print a command task's standard output (or, with --stderr, its standard
error) as the host's shared directory holds it. The bytes are written as
they are; --output does not apply.

Without --follow a log file that does not exist yet is an error. With
--follow the command keeps polling for new bytes, waits for a log file
that was not written yet, and stops once the task has reached a final
status and everything it wrote was printed. Ctrl-C stops it earlier.`,
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
	r := &api.LogReader{Client: c, TaskID: id, Stream: stream, W: cmd.OutOrStdout(),
		Poll: g.pollOptions(o.pollInterval, cmd.ErrOrStderr(), "following")}
	if !o.follow {
		return r.Dump(cmd.Context())
	}
	return r.Follow(cmd.Context())
}
