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
  export HAKURIVER_TOKEN_FILE=/etc/hakuriver/token   # membership changes need the cluster token
  hakuriver cluster join --id h4 --raft 10.0.0.4:8300 --api http://10.0.0.4:8000
  hakuriver cluster remove h4
  hakuriver cluster transfer-leadership --to h2
  hakuriver cluster wait-healthy --timeout 5m`,
	}
	cmd.AddCommand(newClusterStatusCmd(g), newClusterJoinCmd(g), newClusterRemoveCmd(g), newClusterTransferCmd(g),
		newClusterWaitHealthyCmd(g), newSnapshotCmd(g))
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

// membershipTokenHelp ends the help of the commands that change membership.
const membershipTokenHelp = `

Membership changes need the cluster token: --token, --token-file,
$` + tokenFileEnv + `, or the cluster_token(_file) of --config.`

// membershipToken returns the cluster token a membership command sends,
// read as doctor reads it; what names the command in the error when there
// is none.
func (f tokenFlags) membershipToken(what string) (string, error) {
	c, _, err := f.loadConfig()
	if err != nil {
		return "", err
	}
	token, err := f.resolveToken(c)
	if err != nil {
		return "", err
	}
	if token == "" {
		return "", fmt.Errorf("%s needs the cluster token: pass --token or --token-file, set $%s, "+
			"or set cluster_token or cluster_token_file in --config", what, tokenFileEnv)
	}
	return token, nil
}

// withMembershipClient runs fn with a client that sends the cluster token.
func withMembershipClient(cmd *cobra.Command, g *clientFlags, tf tokenFlags, fn func(ctx context.Context, c *api.Client, format string) error) error {
	token, err := tf.membershipToken(cmd.CommandPath())
	if err != nil {
		return err
	}
	return g.withTokenClient(cmd, token, fn)
}

func newClusterJoinCmd(g *clientFlags) *cobra.Command {
	var req api.JoinRequest
	var tf tokenFlags
	cmd := &cobra.Command{
		Use:   "join --id ID --raft ADDR [--api URL]",
		Short: "Add a host replica to the group as a voter",
		Long: `Add a host replica to the Raft group as a voter. The new replica must be
running and reachable on its Raft address (a join whose Raft address does
not answer is refused). Replicas that share a gossip pool join by
themselves (bootstrap_expect); use this to add one by hand.` + membershipTokenHelp,
		Example: `  hakuriver cluster join --id h4 --raft 10.0.0.4:8300 --api http://10.0.0.4:8000 --token-file /etc/hakuriver/token`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withMembershipClient(cmd, g, tf, func(ctx context.Context, c *api.Client, format string) error {
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
	tf.bind(f, "membership changes")
	// MarkFlagRequired only fails for an unknown flag name.
	_ = cmd.MarkFlagRequired("id")
	_ = cmd.MarkFlagRequired("raft")
	return cmd
}

func newClusterRemoveCmd(g *clientFlags) *cobra.Command {
	var tf tokenFlags
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a host replica from the group",
		Long: `Remove a host replica from the Raft group by its raft ID, for example one
whose machine is gone for good. Removing the leader makes it step down.` + membershipTokenHelp,
		Example: `  HAKURIVER_TOKEN_FILE=/etc/hakuriver/token hakuriver cluster remove h3`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withMembershipClient(cmd, g, tf, func(ctx context.Context, c *api.Client, format string) error {
				resp, err := c.RemovePeer(ctx, args[0])
				if err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, resp)
			})
		},
	}
	tf.bind(cmd.Flags(), "membership changes")
	return cmd
}

func newClusterTransferCmd(g *clientFlags) *cobra.Command {
	var to string
	var tf tokenFlags
	cmd := &cobra.Command{
		Use:   "transfer-leadership [--to ID]",
		Short: "Hand leadership to another replica",
		Long: `Ask the leader to hand leadership to another voter, for example before
restarting the leader's machine. Without --to Raft picks the most
up-to-date follower.` + membershipTokenHelp,
		Example: `  hakuriver cluster transfer-leadership --token-file /etc/hakuriver/token
  hakuriver cluster transfer-leadership --to h2 --config /etc/hakuriver.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withMembershipClient(cmd, g, tf, func(ctx context.Context, c *api.Client, format string) error {
				resp, err := c.TransferLeadership(ctx, to)
				if err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, resp)
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "raft ID of the replica to lead next (default: Raft's choice)")
	tf.bind(cmd.Flags(), "membership changes")
	return cmd
}
