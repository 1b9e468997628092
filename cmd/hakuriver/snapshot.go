package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster"
	"github.com/hakuriver/hakuriver-ha/cluster/backup"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/config"
)

// newSnapshotCmd builds "hakuriver cluster snapshot": backups of the
// replicated state.
func newSnapshotCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up the cluster state to a file, inspect a backup, restore a cluster from one",
		Long: `Back up the whole replicated state (tasks, nodes, environments, accounts,
tokens, audit log) into one file, online, through any replica; check a
backup; and create a new cluster from one after a disaster.

A snapshot file holds API token hashes and environment values: keep it as
you keep the cluster token. See the README ("Backup and restore").`,
		Example: `  hakuriver cluster snapshot save /backup/hakuriver-$(date +%F).snap
  hakuriver cluster snapshot inspect /backup/hakuriver-2026-12-06.snap
  hakuriver cluster snapshot restore /backup/hakuriver-2026-12-06.snap --config /etc/hakuriver/host.toml`,
	}
	cmd.AddCommand(newSnapshotSaveCmd(g), newSnapshotInspectCmd(g), newSnapshotRestoreCmd(g))
	return cmd
}

// snapshotSummary is what save and inspect report (--output json).
type snapshotSummary struct {
	File       string        `json:"file"`
	Bytes      int64         `json:"bytes"`
	SHA256     string        `json:"sha256"`
	ChecksumOK bool          `json:"checksum_ok"`
	StateOK    bool          `json:"state_ok"`
	Error      string        `json:"error,omitempty"`
	Header     backup.Header `json:"header"`
}

func newSnapshotSaveCmd(g *clientFlags) *cobra.Command {
	var maxTime time.Duration
	var maxSize int64
	var force bool
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a consistent snapshot of the cluster state to FILE (admin)",
		Long: `Save the replicated state to FILE. Any replica may be asked: it relays the
leader's stream. The leader first makes sure it has applied everything
committed (a Raft barrier), then writes the state at one applied index. The
file carries a header (format and binary versions, cluster ID, applied index
and term, counts, creation time) and a SHA-256 checksum; it is written to a
temporary file next to FILE, verified, and only then renamed to FILE. A
download larger than --max-size is stopped and removed. FILE is never
replaced without --force, even when it appears during the download.

Needs an admin account's token: the file holds token hashes and environment
values.`,
		Example: `  hakuriver cluster snapshot save backup.snap
  hakuriver cluster snapshot save --host http://10.0.0.2:8000 backup.snap -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			if maxTime <= 0 {
				return fmt.Errorf("invalid --max-time %s: must be positive", maxTime)
			}
			if maxSize <= 0 {
				return fmt.Errorf("invalid --max-size %d: must be positive", maxSize)
			}
			path := args[0]
			if _, err := os.Lstat(path); err == nil && !force {
				return fmt.Errorf("%s exists: choose another name or pass --force to replace it", path)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), maxTime)
			defer cancel()
			sum, err := saveSnapshot(ctx, path, maxSize, force, func(w io.Writer) (int64, error) { return c.Snapshot(ctx, w) })
			if err != nil {
				return err
			}
			return printSnapshot(cmd.OutOrStdout(), format, sum)
		},
	}
	cmd.Flags().DurationVar(&maxTime, "max-time", 30*time.Minute, "time limit of the whole download")
	cmd.Flags().Int64Var(&maxSize, "max-size", backup.DefaultMaxFileBytes, "stop the download when it grows past this many bytes")
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE when it exists")
	return cmd
}

// errTooLarge is what capWriter returns past its limit.
var errTooLarge = errors.New("the snapshot is larger than --max-size")

// capWriter passes at most max bytes to w; a write past that fails with
// errTooLarge and writes nothing of it.
type capWriter struct {
	w      io.Writer
	max, n int64
}

// Write writes p, or fails without writing when p would pass the limit.
func (c *capWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.max-c.n {
		return 0, fmt.Errorf("%w (%d bytes)", errTooLarge, c.max)
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// saveSnapshot writes what fetch streams into a temporary file next to
// path, stopping past maxSize bytes, syncs and verifies it, and moves it to
// path. Without force an existing path is never replaced: the file is
// hard-linked to path, which fails when path exists.
func saveSnapshot(ctx context.Context, path string, maxSize int64, force bool, fetch func(io.Writer) (int64, error)) (snapshotSummary, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return snapshotSummary{}, fmt.Errorf("create the snapshot file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(&capWriter{w: tmp, max: maxSize}, 1<<20)
	if _, err := fetch(bw); err != nil {
		return snapshotSummary{}, fmt.Errorf("save snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return snapshotSummary{}, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return snapshotSummary{}, fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return snapshotSummary{}, fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := ctx.Err(); err != nil {
		return snapshotSummary{}, err
	}
	f, err := backup.Open(tmp.Name(), maxSize)
	if err != nil {
		return snapshotSummary{}, fmt.Errorf("the snapshot received is incomplete or damaged: %w", err)
	}
	defer f.Close()
	if err := f.Verify(); err != nil {
		return snapshotSummary{}, fmt.Errorf("the snapshot received is incomplete or damaged: %w", err)
	}
	if err := placeSnapshot(tmp.Name(), path, force); err != nil {
		return snapshotSummary{}, err
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		d.Sync() //nolint:errcheck // the rename is durable on most filesystems already
		d.Close()
	}
	return snapshotSummary{File: path, Bytes: f.Size, SHA256: f.Checksum, ChecksumOK: true, Header: f.Header}, nil
}

// placeSnapshot moves the finished file tmp to path: by rename with force,
// otherwise by a hard link, which fails when path exists (also when it was
// created during the download), and then removes tmp.
func placeSnapshot(tmp, path string, force bool) error {
	if force {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("save snapshot: %w", err)
		}
		return nil
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: choose another name or pass --force to replace it", path)
		}
		return fmt.Errorf("save snapshot (without --force the file is hard-linked into place): %w", err)
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("save snapshot: remove %s: %w", tmp, err)
	}
	return nil
}

func newSnapshotInspectCmd(g *clientFlags) *cobra.Command {
	var maxSize int64
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print a snapshot file's versions, index, counts and whether its checksum holds",
		Long: `Read a snapshot file offline (no cluster needed): print its format and
binary versions, cluster ID, applied index and term, creation time, counts
(tasks by status, nodes, environments, users, groups, tokens), and check it:
the SHA-256 checksum over the whole content (OK or BAD) and that the state
decodes and matches the header. Exits 1 when the file is damaged.`,
		Example: `  hakuriver cluster snapshot inspect backup.snap
  hakuriver cluster snapshot inspect backup.snap -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			f, err := backup.Open(args[0], maxSize)
			if err != nil {
				return err
			}
			defer f.Close()
			sum := snapshotSummary{File: args[0], Bytes: f.Size, SHA256: f.Checksum, Header: f.Header}
			var checkErr error
			if checkErr = f.Verify(); checkErr == nil {
				sum.ChecksumOK = true
				var m *fsm.Machine
				if m, checkErr = f.ReadState(); checkErr == nil {
					sum.StateOK = true
					m.Close() //nolint:errcheck // only its temporary archive
				}
			}
			if checkErr != nil {
				sum.Error = checkErr.Error()
			}
			if err := printSnapshot(cmd.OutOrStdout(), format, sum); err != nil {
				return err
			}
			if checkErr != nil {
				return fmt.Errorf("%s is damaged: %w", args[0], checkErr)
			}
			return nil
		},
	}
	cmd.Flags().Int64Var(&maxSize, "max-size", backup.DefaultMaxFileBytes, "refuse files larger than this many bytes")
	return cmd
}

// printSnapshot writes a snapshot summary as a table or JSON.
func printSnapshot(w io.Writer, format string, s snapshotSummary) error {
	if format == outputJSON {
		return printJSON(w, s)
	}
	h := s.Header
	check := "BAD"
	if s.ChecksumOK {
		check = "OK"
	}
	tw := newTable(w)
	row(tw, "File:", s.File)
	row(tw, "Size:", formatSize(s.Bytes)+" ("+strconv.FormatInt(s.Bytes, 10)+" bytes)")
	row(tw, "Checksum:", check+" (sha256 "+s.SHA256+")")
	switch {
	case s.StateOK:
		row(tw, "State:", "OK (decodes, matches the header)")
	case s.ChecksumOK && s.Error != "":
		row(tw, "State:", "BAD")
	}
	if s.Error != "" {
		row(tw, "Error:", s.Error)
	}
	row(tw, "Format:", strconv.Itoa(h.Format)+" (state encoding "+strconv.Itoa(h.SnapshotVersion)+")")
	row(tw, "Written by:", "hakuriver "+orDash(h.HakuriverVersion)+" on leader "+orDash(h.Leader))
	row(tw, "Created:", h.CreatedAt.UTC().Format(time.RFC3339))
	row(tw, "Cluster ID:", orDash(h.ClusterID))
	row(tw, "Applied index:", strconv.FormatUint(h.AppliedIndex, 10)+" (term "+strconv.FormatUint(h.Term, 10)+")")
	c := h.Counts
	row(tw, "Tasks:", strconv.Itoa(c.TasksTotal)+taskStatusCounts(c.Tasks))
	row(tw, "Nodes:", strconv.Itoa(c.Nodes))
	row(tw, "Environments:", strconv.Itoa(c.Environments)+" ("+strconv.Itoa(c.Tarballs)+" tarballs recorded)")
	row(tw, "Users:", strconv.Itoa(c.Users))
	row(tw, "Groups:", strconv.Itoa(c.Groups))
	row(tw, "Tokens:", strconv.Itoa(c.Tokens))
	row(tw, "Audit records:", strconv.Itoa(c.AuditRecords))
	return flushTable(tw)
}

// taskStatusCounts renders " (completed 3, running 1)" ("" for none).
func taskStatusCounts(m map[fsm.Status]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	out := " ("
	for i, k := range keys {
		if i > 0 {
			out += ", "
		}
		out += k + " " + strconv.Itoa(m[fsm.Status(k)])
	}
	return out + ")"
}

// restoreResult is what restore reports (--output json).
type restoreResult struct {
	DataDir   string        `json:"data_dir"`
	NodeID    string        `json:"node_id"`
	RaftAddr  string        `json:"raft_address"`
	ClusterID string        `json:"cluster_id"`
	Header    backup.Header `json:"header"`
}

func newSnapshotRestoreCmd(g *clientFlags) *cobra.Command {
	var sf serverFlags
	var scratch config.Config
	var maxSize int64
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Create a new cluster's first replica data dir from a snapshot file (offline)",
		Long: `Disaster recovery: create the data dir of a new cluster's first replica
from a snapshot file. Run it on the machine of that replica, with the
config file and flags you will start 'hakuriver host' with (it reads the
data dir, node ID, advertise or bind address and Raft port from them), then
start the host. It serves the saved state as a one-replica cluster; other
replicas join it as usual (empty data dirs, --join).

The data dir must not exist or be empty: restore never touches a replica's
store. The file is checked first: checksum, format version (a file of a
newer hakuriver is refused) and a strict decode of the whole state.

The cluster keeps its cluster ID, so runners' containers and environments
stay recognised: never run the old cluster again next to the restored one.`,
		Example: `  hakuriver cluster snapshot restore backup.snap --config /etc/hakuriver/host.toml
  hakuriver cluster snapshot restore backup.snap --data-dir /var/lib/hakuriver/data --node-id h1 --bind 10.0.0.1 --raft-port 8300`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			// The Raft snapshot store's own logs are left out: what goes
			// wrong is the error returned.
			c, _, err := sf.resolve(cmd)
			if err != nil {
				return err
			}
			rc, err := restoreConfig(c)
			if err != nil {
				return err
			}
			f, err := backup.Open(args[0], maxSize)
			if err != nil {
				return err
			}
			defer f.Close()
			m, err := f.ReadState()
			if err != nil {
				return fmt.Errorf("refusing to restore %s: %w", args[0], err)
			}
			defer m.Close() //nolint:errcheck // only its temporary archive
			if err := cluster.RestoreDataDir(rc, m, f.Header.Term); err != nil {
				return err
			}
			res := restoreResult{DataDir: rc.DataDir, NodeID: rc.NodeID, RaftAddr: rc.RaftAddr, ClusterID: m.ClusterID(), Header: f.Header}
			if format == outputJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			h := f.Header
			_, err = fmt.Fprintf(cmd.OutOrStdout(),
				"restored cluster %s at index %d (%d tasks, %d nodes, %d users, %d tokens) into %s\n"+
					"as the only voter %s at %s; start 'hakuriver host' with the same config and flags,\n"+
					"then join the other replicas to it with empty data dirs\n",
				orDash(h.ClusterID), h.AppliedIndex, h.Counts.TasksTotal, h.Counts.Nodes, h.Counts.Users, h.Counts.Tokens,
				rc.DataDir, rc.NodeID, rc.RaftAddr)
			return err
		},
	}
	sf.bind(cmd)
	config.BindFlags(cmd.Flags(), &scratch)
	cmd.Flags().Int64Var(&maxSize, "max-size", backup.DefaultMaxFileBytes, "refuse files larger than this many bytes")
	return cmd
}

// restoreConfig takes the data dir, node ID and Raft address of the replica
// to restore from its host config (as hostConfig does).
func restoreConfig(c config.Config) (cluster.RestoreConfig, error) {
	id, err := c.NodeID()
	if err != nil {
		return cluster.RestoreConfig{}, err
	}
	addr := c.Network.HostReachableAddress
	if addr == "" {
		addr = c.Network.HostBindIP
	}
	if addr == "" || addr == "0.0.0.0" || addr == "::" {
		return cluster.RestoreConfig{}, errors.New("the replica's Raft address is unknown: set --advertise (host_reachable_address) or --bind")
	}
	if c.Cluster.RaftPort <= 0 {
		return cluster.RestoreConfig{}, errors.New("raft_port: a restored replica needs a fixed Raft port (the new configuration names it)")
	}
	if c.Cluster.DataDir == "" {
		return cluster.RestoreConfig{}, errors.New("data_dir: must not be empty")
	}
	return cluster.RestoreConfig{DataDir: c.Cluster.DataDir, NodeID: id,
		RaftAddr: net.JoinHostPort(addr, strconv.Itoa(c.Cluster.RaftPort))}, nil
}
