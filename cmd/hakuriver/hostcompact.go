package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster"
	"github.com/hakuriver/hakuriver-ha/ops/config"
)

// newHostCompactCmd returns "hakuriver host compact": the offline
// compaction of a replica's Raft store.
func newHostCompactCmd() *cobra.Command {
	var dataDir, configPath string
	cmd := &cobra.Command{
		Use:   "compact --data-dir DIR | --config FILE",
		Short: "Shrink a stopped replica's Raft store (raft.db) to its live data",
		Long: `boltdb never gives back the space of deleted entries: a raft.db that once held
a long log (a burst of submits before a snapshot) keeps its size. compact copies
every entry into a new file with bbolt's Compact, checks that each bucket holds
as many keys as before, and renames it over raft.db (atomic). Snapshots are
untouched.

Offline only: stop the replica first. compact refuses while a host holds the
store (it takes the same lock), and a host cannot start while compact runs.
In a cluster, compact one replica at a time; the others keep serving.`,
		Example: `  systemctl stop hakuriver-host.service
  hakuriver host compact --data-dir /var/lib/hakuriver/data
  systemctl start hakuriver-host.service`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := cmd.Flags().GetString("output")
			if err != nil || (format != outputTable && format != outputJSON) {
				return fmt.Errorf("invalid --output %q: want %s or %s", format, outputTable, outputJSON)
			}
			dir := dataDir
			if dir == "" && configPath != "" {
				c, err := config.Load(configPath)
				if err != nil {
					return err
				}
				dir = c.Cluster.DataDir
			}
			if dir == "" {
				return errors.New("--data-dir: name the replica's data dir (or --config holding cluster.data_dir)")
			}
			res, err := cluster.CompactStore(dir)
			if err != nil {
				return err
			}
			if format == outputJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "compacted %s: %s -> %s (%d log entries, %d stable-store keys)\n",
				res.Path, formatBytes(res.Before), formatBytes(res.After), res.Keys["logs"], res.Keys["conf"])
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the replica's data dir (holding raft.db)")
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "config file whose cluster.data_dir to compact")
	return cmd
}
