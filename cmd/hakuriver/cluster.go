package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// newClusterCmd builds "hakuriver cluster": the Raft group of host replicas.
func newClusterCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect and change the group of host replicas",
		Long: `Inspect and change the Raft group of host replicas: who leads, which
replicas vote, adding and removing replicas, and handing leadership over.`,
		Example: `  hakuriver cluster status
  hakuriver cluster join --id h4 --raft 10.0.0.4:8300 --api http://10.0.0.4:8000
  hakuriver cluster remove h4
  hakuriver cluster transfer-leadership --to h2`,
	}
	cmd.AddCommand(newClusterStatusCmd(g), newClusterJoinCmd(g), newClusterRemoveCmd(g), newClusterTransferCmd(g))
	return cmd
}

func newClusterStatusCmd(g *clientFlags) *cobra.Command {
	var consistent bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the leader, term, applied index and replicas",
		Long: `Show the replica group as seen by the answering replica: the leader, the
Raft term, the applied and commit indexes, and every replica with its API
and Raft addresses, suffrage and state. With --consistent the answering
replica forwards the read to the leader.`,
		Example: `  hakuriver cluster status
  hakuriver cluster status --consistent -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				st, err := c.Cluster(ctx, consistent)
				if err != nil {
					return err
				}
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), st)
				}
				return printCluster(cmd.OutOrStdout(), st)
			})
		},
	}
	cmd.Flags().BoolVar(&consistent, "consistent", false, "read through the leader instead of the answering replica")
	return cmd
}

// printCluster writes the cluster summary and the replicas table.
func printCluster(w io.Writer, st api.ClusterStatus) error {
	leader := "none (election in progress or no quorum)"
	if st.LeaderID != "" {
		leader = st.LeaderID
		if st.LeaderAPI != "" {
			leader += " (" + st.LeaderAPI + ")"
		}
	}
	tw := newTable(w)
	row(tw, "Leader:", leader)
	row(tw, "Term:", strconv.FormatUint(st.Term, 10))
	row(tw, "Applied index:", strconv.FormatUint(st.AppliedIndex, 10))
	row(tw, "Commit index:", strconv.FormatUint(st.CommitIndex, 10))
	if st.NodeID != "" {
		row(tw, "Answered by:", st.NodeID+" ("+orDash(st.State)+")")
	}
	if err := flushTable(tw); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	tw = newTable(w)
	row(tw, "ID", "API", "RAFT", "SUFFRAGE", "STATE")
	for _, r := range st.Replicas {
		row(tw, r.ID, orDash(r.API), orDash(r.Raft), orDash(r.Suffrage), orDash(r.State))
	}
	return flushTable(tw)
}

func newClusterJoinCmd(g *clientFlags) *cobra.Command {
	var req api.JoinRequest
	cmd := &cobra.Command{
		Use:   "join --id ID --raft ADDR [--api URL]",
		Short: "Add a host replica to the group as a voter",
		Long: `Add a host replica to the Raft group as a voter. The new replica must be
running and reachable on its Raft address. Replicas that share a gossip
pool join by themselves (bootstrap_expect); use this to add one by hand.`,
		Example: `  hakuriver cluster join --id h4 --raft 10.0.0.4:8300 --api http://10.0.0.4:8000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				resp, err := c.Join(ctx, req)
				if err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, resp)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.ID, "id", "", "raft ID of the new replica (required)")
	f.StringVar(&req.Raft, "raft", "", "raft address HOST:PORT of the new replica (required)")
	f.StringVar(&req.API, "api", "", "API URL of the new replica (informative)")
	// MarkFlagRequired only fails for an unknown flag name.
	_ = cmd.MarkFlagRequired("id")
	_ = cmd.MarkFlagRequired("raft")
	return cmd
}

func newClusterRemoveCmd(g *clientFlags) *cobra.Command {
	return messageCmd(g, &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a host replica from the group",
		Long: `Remove a host replica from the Raft group by its raft ID, for example one
whose machine is gone for good. Removing the leader makes it step down.`,
		Example: `  hakuriver cluster remove h3`,
	}, (*api.Client).RemovePeer)
}

func newClusterTransferCmd(g *clientFlags) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "transfer-leadership [--to ID]",
		Short: "Hand leadership to another replica",
		Long: `Ask the leader to hand leadership to another voter, for example before
restarting the leader's machine. Without --to Raft picks the most
up-to-date follower.`,
		Example: `  hakuriver cluster transfer-leadership
  hakuriver cluster transfer-leadership --to h2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				resp, err := c.TransferLeadership(ctx, to)
				if err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, resp)
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "raft ID of the replica to lead next (default: Raft's choice)")
	return cmd
}
