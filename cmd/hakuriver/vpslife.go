package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// resolveVPS turns a VPS task ID or name (vps create --name) into the
// task, through the same resolution as task commands.
func resolveVPS(ctx context.Context, c *api.Client, arg string) (fsm.Task, error) {
	ref, err := resolveRef(ctx, c, arg, false)
	if err != nil {
		return fsm.Task{}, err
	}
	if ref.batch {
		return fsm.Task{}, fmt.Errorf("%q names a batch, not a VPS", arg)
	}
	if ref.task != nil && ref.task.TaskType == fsm.TaskVPS {
		return *ref.task, nil
	}
	return getVPS(ctx, c, ref.id)
}

func newVPSStopCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "stop VPS",
		Short: "Stop a VPS and keep it: its container and disk stay on its node, its cores, memory and GPUs are freed",
		Long: `Stop a running (or paused) VPS. Its container is stopped, not removed:
everything written inside it is kept on the node it ran on, and the cores,
memory and GPUs it held are free for other work at once. Start it again with
"hakuriver vps start"; it comes back on the same node, with a new SSH port
that "hakuriver ssh" finds by itself.

VPS is a task ID or a name given with "vps create --name". To end a VPS and
remove its container, use "hakuriver vps kill".`,
		Example: `  hakuriver vps stop 1790263384729600000
  hakuriver vps stop my-notebook`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				t, err := resolveVPS(ctx, c, args[0])
				if err != nil {
					return err
				}
				var resp api.MessageResponse
				if _, err := c.Do(ctx, http.MethodPost, fmt.Sprintf("/api/vps/%d/stop", t.TaskID), nil, &resp); err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, resp)
			})
		},
	}
}

func newVPSStartCmd(g *clientFlags) *cobra.Command {
	var wait bool
	var poll, within time.Duration
	cmd := &cobra.Command{
		Use:   "start VPS",
		Short: "Start a stopped VPS again on the node that kept it",
		Long: `Start a VPS stopped with "hakuriver vps stop". It runs again on the node
that kept its container, with its files and your keys as they were. The
start is refused, with the reason, when that node is offline, when it has
no room left for the VPS's cores, memory or GPUs (stop or end other work
there, or wait), or when its container was removed outside HakuRiver (its
disk is gone: kill the VPS and create a new one).

With --wait the command waits until the VPS runs and its SSH port is known.`,
		Example: `  hakuriver vps start 1790263384729600000 --wait
  hakuriver vps start my-notebook`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait && (poll <= 0 || within <= 0) {
				return fmt.Errorf("--poll-interval and --wait-timeout: must be positive")
			}
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				t, err := resolveVPS(ctx, c, args[0])
				if err != nil {
					return err
				}
				var resp api.MessageResponse
				if _, err := c.Do(ctx, http.MethodPost, fmt.Sprintf("/api/vps/%d/start", t.TaskID), nil, &resp); err != nil {
					return err
				}
				if !wait {
					return printMessage(cmd.OutOrStdout(), format, resp)
				}
				wctx, cancel := context.WithTimeout(cmd.Context(), within)
				defer cancel()
				run, err := waitStarted(wctx, c, t, poll, g.timeout)
				if err != nil {
					return err
				}
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), run)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "VPS %d is running on %s, SSH port %d.\nConnect with: hakuriver ssh %d\n",
					run.TaskID, run.AssignedNode, run.SSHPort, run.TaskID)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&wait, "wait", false, "wait until the VPS runs and its SSH port is known")
	f.DurationVar(&poll, "poll-interval", time.Second, "time between status checks with --wait")
	f.DurationVar(&within, "wait-timeout", 5*time.Minute, "give up waiting after this long")
	return cmd
}

// waitStarted polls a VPS being started until it runs with an SSH port, or
// is stopped again (a failed start: the error says why) or ends.
func waitStarted(ctx context.Context, c *api.Client, before fsm.Task, poll, callTimeout time.Duration) (fsm.Task, error) {
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		t, err := c.Status(cctx, fmt.Sprint(before.TaskID))
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			// a replica that did not answer: ask again
		case err != nil:
			return t, fmt.Errorf("wait for VPS %d to run: %w", before.TaskID, ctx.Err())
		case t.Status == fsm.StatusRunning && t.SSHPort > 0:
			return t, nil
		case t.Status.Final():
			return t, fmt.Errorf("VPS %d %s: %s", t.TaskID, t.Status, orDash(t.ErrorMessage))
		case t.Status == fsm.StatusStopped && t.StoppedAt != nil && (before.StoppedAt == nil || t.StoppedAt.After(*before.StoppedAt)):
			return t, fmt.Errorf("VPS %d did not start and is stopped again: %s", t.TaskID, orDash(t.ErrorMessage))
		}
		select {
		case <-ctx.Done():
			return t, fmt.Errorf("wait for VPS %d to run: %w", before.TaskID, ctx.Err())
		case <-time.After(poll):
		}
	}
}

func newVPSKillCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "kill VPS",
		Aliases: []string{"delete", "rm"},
		Short:   "End a VPS and remove its container (everything stored only inside it is lost)",
		Long: `End a VPS: the task is marked killed at once, and its runner kills the
container and removes it, a stopped VPS's kept container included. Whatever
was stored only inside the container is lost; /shared is not. (Before VPS
stop/start existed, "vps stop" did this.)`,
		Example: `  hakuriver vps kill 1790263384729600000
  hakuriver vps delete my-notebook`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				t, err := resolveVPS(ctx, c, args[0])
				if err != nil {
					return err
				}
				resp, err := c.Kill(ctx, fmt.Sprint(t.TaskID))
				if err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, resp)
			})
		},
	}
}

// mergeNewestFirst joins two task lists without duplicates, newest first.
func mergeNewestFirst(a, b []fsm.Task) []fsm.Task {
	seen := make(map[int64]bool, len(a))
	for _, t := range a {
		seen[t.TaskID] = true
	}
	for _, t := range b {
		if !seen[t.TaskID] {
			a = append(a, t)
		}
	}
	slices.SortFunc(a, func(x, y fsm.Task) int { return compareInt64(y.TaskID, x.TaskID) })
	return a
}

// sshTaskID is the VPS a "hakuriver ssh" argument names: a task ID as is,
// or a VPS name (vps create --name) looked up through the cluster.
func sshTaskID(cmd *cobra.Command, g *clientFlags, arg string) (int64, error) {
	if isNumeric(arg) || !fsm.ValidTaskName(arg) {
		return parseSSHTaskID(arg)
	}
	var id int64
	err := g.withClient(cmd, func(ctx context.Context, c *api.Client, _ string) error {
		t, err := resolveVPS(ctx, c, arg)
		id = t.TaskID
		return err
	})
	return id, err
}
