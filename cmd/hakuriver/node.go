package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// newNodeCmd builds "hakuriver node": the runner nodes of the cluster.
func newNodeCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Inspect the runner nodes",
		Long: `Inspect the runner nodes registered with the cluster: their status,
cores and memory in use, and runner URL.`,
		Example: `  hakuriver node list
  hakuriver node list -o json`,
	}
	cmd.AddCommand(newNodeListCmd(g))
	return cmd
}

func newNodeListCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the runner nodes",
		Long: `List every registered runner node with its status, the cores in use out
of its total, the memory reserved by its tasks out of its total, and its
runner URL. --output json prints the full node records, GPUs and NUMA
topology included.`,
		Example: `  hakuriver node list
  hakuriver --host http://h1:8000,http://h2:8000 node list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				nodes, err := c.Nodes(ctx)
				if err != nil {
					return err
				}
				if format == outputJSON {
					if nodes == nil {
						nodes = []api.NodeView{}
					}
					return printJSON(cmd.OutOrStdout(), nodes)
				}
				return printNodes(cmd.OutOrStdout(), nodes)
			})
		},
	}
}

// printNodes writes the node table.
func printNodes(w io.Writer, nodes []api.NodeView) error {
	if len(nodes) == 0 {
		if _, err := fmt.Fprintln(w, "No nodes registered."); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	tw := newTable(w)
	row(tw, "HOSTNAME", "STATUS", "CORES", "MEMORY", "URL")
	for _, n := range nodes {
		status := string(n.Status)
		if n.Drained {
			status += " (drained)"
		}
		used := "-"
		if n.Status == fsm.NodeOnline {
			used = strconv.Itoa(n.CoresInUse)
		}
		cores := used + "/" + strconv.Itoa(n.TotalCores)
		mem := formatBytes(n.MemoryInUseBytes) + "/" + formatBytes(n.MemoryTotalBytes)
		if n.MemoryInUseBytes == 0 && n.Status == fsm.NodeOnline {
			mem = "0/" + formatBytes(n.MemoryTotalBytes)
		}
		row(tw, n.Hostname, status, cores, mem, orDash(n.URL))
	}
	return flushTable(tw)
}
