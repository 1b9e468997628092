package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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

// vpsLifecycle resolves the VPS arg names and asks a replica to stop or
// start it (op), returning the VPS and the answer.
func vpsLifecycle(ctx context.Context, c *api.Client, arg, op string) (fsm.Task, api.MessageResponse, error) {
	var resp api.MessageResponse
	t, err := resolveVPS(ctx, c, arg)
	if err != nil {
		return t, resp, err
	}
	_, err = c.Do(ctx, http.MethodPost, fmt.Sprintf("/api/vps/%d/%s", t.TaskID, op), nil, &resp)
	return t, resp, err
}

func newVPSStopCmd(g *clientFlags) *cobra.Command {
	var snap bool
	var sf snapshotFlags
	cmd := &cobra.Command{
		Use:   "stop VPS",
		Short: "Stop a VPS and keep it: its container and disk stay on its node, its cores, memory and GPUs are freed",
		Long: `Stop a running (or paused) VPS. Its container is stopped, not removed:
everything written inside it is kept on the node it ran on, and the cores,
memory and GPUs it held are free for other work at once. Start it again with
"hakuriver vps start"; it comes back on the same node, with a new SSH port
that "hakuriver ssh" finds by itself.

With --snapshot the stopped VPS is also saved as a snapshot (see "hakuriver
vps snapshot"; --snapshot-name and --snapshot-keep as its --name and --keep).

VPS is a task ID or a name given with "vps create --name". To end a VPS and
remove its container, use "hakuriver vps kill".`,
		Example: `  hakuriver vps stop 1790263384729600000
  hakuriver vps stop my-notebook --snapshot --snapshot-keep 5`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				t, resp, err := vpsLifecycle(ctx, c, args[0], "stop")
				if err != nil {
					return err
				}
				if !snap {
					return printMessage(cmd.OutOrStdout(), format, resp)
				}
				if format != outputJSON {
					fmt.Fprintln(cmd.OutOrStdout(), resp.Message)
				}
				sctx, cancel := context.WithTimeout(cmd.Context(), snapshotTimeout)
				defer cancel()
				s, err := takeSnapshot(sctx, c, t.TaskID, sf.name, sf.keep)
				if err != nil {
					return fmt.Errorf("VPS %d is stopped, but its snapshot failed: %w", t.TaskID, err)
				}
				return printVPSSnapshot(cmd.OutOrStdout(), format, s)
			})
		},
	}
	cmd.Flags().BoolVar(&snap, "snapshot", false, "also save the stopped VPS as a snapshot")
	sf.add(cmd.Flags(), "snapshot-")
	return cmd
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
				t, resp, err := vpsLifecycle(ctx, c, args[0], "start")
				if err != nil {
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

// snapshotTimeout bounds "vps snapshot": a commit and a save of the whole
// image to shared storage.
const snapshotTimeout = 20 * time.Minute

// takeSnapshot asks the cluster to snapshot VPS id into name ("" for the
// default name), keeping keep versions (0 for the default).
func takeSnapshot(ctx context.Context, c *api.Client, id int64, name string, keep int) (fsm.VPSSnapshot, error) {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	if keep > 0 {
		q.Set("keep", strconv.Itoa(keep))
	}
	path := fmt.Sprintf("/api/vps/%d/snapshot", id)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var s fsm.VPSSnapshot
	_, err := c.Do(ctx, http.MethodPost, path, nil, &s)
	return s, err
}

// snapshotFlags are the flags of "vps snapshot" and "vps stop --snapshot".
type snapshotFlags struct {
	name string
	keep int
}

func (s *snapshotFlags) add(f *pflag.FlagSet, prefix string) {
	f.StringVar(&s.name, prefix+"name", "", "snapshot `NAME`, an environment name (default snap-<VPS name> or snap-vps-<ID>)")
	f.IntVar(&s.keep, prefix+"keep", 0, "keep the newest `N` versions of the snapshot (default 3)")
}

func printVPSSnapshot(w io.Writer, format string, s fsm.VPSSnapshot) error {
	if format == outputJSON {
		return printJSON(w, s)
	}
	_, err := fmt.Fprintf(w, "Snapshot %s version %d saved (%s) from VPS %d.\nCreate a VPS from it with: hakuriver vps create --from-snapshot %s\n",
		s.Name, s.Version, formatBytes(s.Size), s.TaskID, s.Name)
	return err
}

func newVPSSnapshotCmd(g *clientFlags) *cobra.Command {
	var sf snapshotFlags
	cmd := &cobra.Command{
		Use:   "snapshot VPS",
		Short: "Save a VPS (docker commit) as a versioned image in the environment store",
		Long: `Save a running, paused or stopped VPS: its container is committed (paused
for the commit when running) and saved as a new version of an environment
tarball on shared storage, named --name (default snap-<VPS name> or
snap-vps-<ID>). The newest --keep versions are kept. Create a VPS from it
with "hakuriver vps create --from-snapshot NAME"; list snapshots with
"hakuriver vps snapshots", delete one with "hakuriver vps snapshots delete".

Only the VPS's owner or an operator may snapshot it. Host keys of the VPS's
sshd are part of the image: VPS created from it share them.`,
		Example: `  hakuriver vps snapshot my-notebook
  hakuriver vps snapshot 1790263384729600000 --name notebook-v2 --keep 5`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				t, err := resolveVPS(ctx, c, args[0])
				if err != nil {
					return err
				}
				sctx, cancel := context.WithTimeout(cmd.Context(), snapshotTimeout)
				defer cancel()
				s, err := takeSnapshot(sctx, c, t.TaskID, sf.name, sf.keep)
				if err != nil {
					return err
				}
				return printVPSSnapshot(cmd.OutOrStdout(), format, s)
			})
		},
	}
	sf.add(cmd.Flags(), "")
	return cmd
}

func newVPSSnapshotsCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List VPS snapshots (and delete them with \"snapshots delete\")",
		Long: `List the VPS snapshots: name, newest version, size, the VPS it was taken
from and its owner. "hakuriver vps snapshots delete NAME" deletes one: no VPS
can be created from it any more and its tarballs are removed.`,
		Example: `  hakuriver vps snapshots
  hakuriver vps snapshots -o json
  hakuriver vps snapshots delete snap-my-notebook`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				var list []fsm.VPSSnapshot
				if _, err := c.Do(ctx, http.MethodGet, "/api/vps/snapshots", nil, &list); err != nil {
					return fmt.Errorf("list VPS snapshots: %w", err)
				}
				if format == outputJSON {
					if list == nil {
						list = []fsm.VPSSnapshot{}
					}
					return printJSON(cmd.OutOrStdout(), list)
				}
				if len(list) == 0 {
					_, err := fmt.Fprintln(cmd.OutOrStdout(), "No VPS snapshots.")
					return err
				}
				tw := newTable(cmd.OutOrStdout())
				row(tw, "NAME", "VERSION", "SIZE", "FROM VPS", "OWNER", "TAKEN")
				for _, s := range list {
					row(tw, s.Name, strconv.FormatInt(s.Version, 10), formatBytes(s.Size), strconv.FormatInt(s.TaskID, 10),
						orDash(s.Owner), s.At.Format(time.RFC3339))
				}
				return flushTable(tw)
			})
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a VPS snapshot and its tarballs",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				var resp api.MessageResponse
				if _, err := c.Do(ctx, http.MethodDelete, "/api/vps/snapshots/"+url.PathEscape(args[0]), nil, &resp); err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, resp)
			})
		},
	})
	return cmd
}

// fromSnapshot checks a --from-snapshot NAME[:VERSION] against the
// cluster's snapshots and returns the environment name to create from.
func fromSnapshot(ctx context.Context, c *api.Client, ref string) (string, error) {
	name, ver, hasVer := strings.Cut(ref, ":")
	var list []fsm.VPSSnapshot
	if _, err := c.Do(ctx, http.MethodGet, "/api/vps/snapshots", nil, &list); err != nil {
		return "", fmt.Errorf("look up snapshot %s: %w", name, err)
	}
	for _, s := range list {
		if s.Name != name {
			continue
		}
		if hasVer && ver != strconv.FormatInt(s.Version, 10) {
			return "", fmt.Errorf("--from-snapshot %s: version %s is not the snapshot's current version %d (only the newest version can start a VPS)", ref, ver, s.Version)
		}
		return name, nil
	}
	return "", fmt.Errorf("--from-snapshot %s: no VPS snapshot is named %s (see hakuriver vps snapshots)", ref, name)
}
