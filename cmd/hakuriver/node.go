package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// newNodeCmd builds "hakuriver node": the runner nodes of the cluster.
func newNodeCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Inspect the runner nodes, their health, and drain them",
		Long: `Inspect the runner nodes registered with the cluster: their status, cores
and memory in use, live load and recent health samples. Drain a node to
stop new placements on it, for maintenance, and undrain it afterwards.`,
		Example: `  hakuriver node list
  hakuriver node list -o json
  hakuriver node health
  hakuriver node health node1 --history
  hakuriver node drain node1 --reason "replacing a disk"
  hakuriver node undrain node1`,
	}
	cmd.AddCommand(newNodeListCmd(g), newNodeHealthCmd(g), newNodeDrainCmd(g), newNodeUndrainCmd(g))
	return cmd
}

func newNodeListCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the runner nodes",
		Long: `List every registered runner node with its state, as sinfo names them:
idle (nothing placed), mixed (some cores, tasks or GPUs held), allocated
(every core held), drained (takes no new tasks; running ones finish) or
offline (not heartbeating); then the cores in use out of its total, the memory
reserved by its tasks out of its total, its live CPU load, its GPU count,
the age of its last heartbeat and whether it enforces cgroup limits on
native tasks. Live figures the leader has not received yet show as "-".

After the table, one line per drained node gives the reason it was drained
with (hakuriver node drain --reason), who drained it and when, and a note follows when some nodes
run native tasks without cgroup limits. --output json prints the full node records, GPUs, NUMA topology and
live figures, state, drained_by and drained_at included.`,
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
				return printNodes(cmd.OutOrStdout(), nodes, time.Now())
			})
		},
	}
}

// printNodes writes the node table; heartbeat ages are relative to now.
func printNodes(w io.Writer, nodes []api.NodeView, now time.Time) error {
	if len(nodes) == 0 {
		if _, err := fmt.Fprintln(w, "No nodes registered."); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	tw := newTable(w)
	row(tw, "HOSTNAME", "STATE", "CORES", "MEMORY", "CPU%", "GPUS", "LAST HEARTBEAT", "LIMITS")
	var unlimited []string
	for _, n := range nodes {
		state := n.State
		if state == "" { // a server from before the state field
			state = api.NodeState(&n)
		}
		online := n.Status == fsm.NodeOnline
		cores, mem, cpu := "-", "-", "-"
		if online {
			// An offline node's CPU load is its last heartbeat's: stale.
			cores, mem, cpu = strconv.Itoa(n.CoresInUse), formatSize(n.MemoryInUseBytes), formatPercent(n.CPUPercent)
		}
		limits := "cgroups"
		if !n.CgroupsLimited {
			limits = "none"
			unlimited = append(unlimited, n.Hostname)
		}
		row(tw, n.Hostname, state,
			cores+"/"+strconv.Itoa(n.TotalCores),
			mem+"/"+formatSize(n.MemoryTotalBytes),
			cpu,
			strconv.Itoa(len(n.GPUInfo)),
			formatAgeRFC3339(n.LastHeartbeat, now),
			limits)
	}
	if err := flushTable(tw); err != nil {
		return err
	}
	for _, n := range nodes {
		if line := drainLine(n.Node); line != "" {
			if _, err := fmt.Fprintln(w, line); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
		}
	}
	if len(unlimited) > 0 {
		if _, err := fmt.Fprintf(w, "note: %s run native tasks without cgroup limits\n", strings.Join(unlimited, ", ")); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}

// drainLine describes a drained node's drain: "drained NAME: REASON (by
// WHO at WHEN)", leaving out what the drain did not record; "" when the node
// is not drained or nothing was recorded.
func drainLine(n fsm.Node) string {
	if !n.Drained || (n.DrainReason == "" && n.DrainedBy == "" && n.DrainedAt == nil) {
		return ""
	}
	reason := n.DrainReason
	if reason == "" {
		reason = "no reason given"
	}
	var who []string
	if n.DrainedBy != "" {
		who = append(who, "by "+n.DrainedBy)
	}
	if n.DrainedAt != nil {
		who = append(who, "at "+formatTime(*n.DrainedAt))
	}
	line := "drained " + n.Hostname + ": " + reason
	if len(who) > 0 {
		line += " (" + strings.Join(who, " ") + ")"
	}
	return line
}

func newNodeHealthCmd(g *clientFlags) *cobra.Command {
	var history bool
	cmd := &cobra.Command{
		Use:   "health [NODE]",
		Short: "Show the nodes' recent health samples",
		Long: `Show the health of every runner node, or of NODE only, from the leader's
one-second samples of the last minute: the latest sample as a table (CPU
and memory load, CPU temperature average/maximum in °C, GPU count) and a
cluster-wide summary line. The summary always covers the whole cluster.

--history prints the summary of every sample, oldest first, instead of
the latest one only. --output json prints every sample as the API
returns it.`,
		Example: `  hakuriver node health
  hakuriver node health node1
  hakuriver node health --history
  hakuriver node health -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = strings.TrimSpace(args[0])
				if name == "" {
					return fmt.Errorf("empty node name")
				}
			}
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				h, err := c.Health(ctx, name)
				if err != nil {
					return err
				}
				if format == outputJSON {
					if h.Nodes == nil {
						h.Nodes = [][]api.NodeHealth{}
					}
					if h.Aggregate == nil {
						h.Aggregate = []api.HealthAggregate{}
					}
					return printJSON(cmd.OutOrStdout(), h)
				}
				return printHealth(cmd.OutOrStdout(), h, history)
			})
		},
	}
	cmd.Flags().BoolVar(&history, "history", false, "print the cluster summary of every sample, oldest first")
	return cmd
}

// printHealth writes the latest sample's node table and the cluster summary
// of the latest sample, or of every sample with history.
func printHealth(w io.Writer, h api.HealthResponse, history bool) error {
	if len(h.Nodes) == 0 && len(h.Aggregate) == 0 {
		if _, err := fmt.Fprintln(w, "No health samples yet."); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	tw := newTable(w)
	if len(h.Nodes) > 0 && len(h.Nodes[len(h.Nodes)-1]) > 0 {
		row(tw, "HOSTNAME", "STATUS", "CPU%", "MEM%", "TEMP(AVG/MAX)", "GPUS")
		for _, n := range h.Nodes[len(h.Nodes)-1] {
			row(tw, n.Hostname, orDash(n.Status), formatPercent(n.CPUPercent), formatPercent(n.MemoryPercent),
				formatTemps(n.CurrentAvgTemp, n.CurrentMaxTemp), strconv.Itoa(len(n.GPUInfo)))
		}
	} else {
		row(tw, "No nodes in the latest sample.")
	}
	if err := flushTable(tw); err != nil {
		return err
	}
	if len(h.Aggregate) == 0 {
		return nil
	}
	if !history {
		if _, err := fmt.Fprintln(w, aggregateLine(h.Aggregate[len(h.Aggregate)-1])); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	tw = newTable(w)
	row(tw, "TIME", "ONLINE", "CORES", "CPU%", "MEMORY", "MEM%", "TEMP(AVG/MAX)")
	for _, a := range h.Aggregate {
		row(tw, formatTime(a.LastUpdated), fmt.Sprintf("%d/%d", a.OnlineNodes, a.TotalNodes), strconv.Itoa(a.TotalCores),
			formatPercent(&a.AvgCPUPercent), formatSize(a.UsedMemBytes)+"/"+formatSize(a.TotalMemBytes),
			formatPercent(&a.AvgMemPercent), aggregateTemps(a))
	}
	return flushTable(tw)
}

// aggregateLine renders one sample's cluster summary on one line.
func aggregateLine(a api.HealthAggregate) string {
	return fmt.Sprintf("Cluster: %d/%d nodes online, %d cores, CPU %s%%, memory %s/%s (%s%%), temp %s, at %s",
		a.OnlineNodes, a.TotalNodes, a.TotalCores, formatPercent(&a.AvgCPUPercent),
		formatSize(a.UsedMemBytes), formatSize(a.TotalMemBytes), formatPercent(&a.AvgMemPercent),
		aggregateTemps(a), formatTime(a.LastUpdated))
}

// aggregateTemps renders a sample's hottest average/maximum CPU temperature;
// the API sends 0 when no node reported one.
func aggregateTemps(a api.HealthAggregate) string {
	if a.MaxAvgCPUTemp == 0 && a.MaxMaxCPUTemp == 0 {
		return "-"
	}
	return formatTemps(&a.MaxAvgCPUTemp, &a.MaxMaxCPUTemp)
}

func newNodeDrainCmd(g *clientFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "drain NODE",
		Short: "Stop placing new tasks on a node",
		Long: `Stop placing new tasks on NODE, for maintenance. Its running tasks go on
and finish; pending tasks wait for other nodes or for "hakuriver node
undrain". "hakuriver node list" shows the node's state as "drained"
and, under the table, the reason given with --reason (one line, at most
200 bytes), who drained it and when, as does the dashboard. Draining a drained node succeeds and replaces its reason; an
unknown node is an error.`,
		Example: `  hakuriver node drain node1
  hakuriver node drain node1 --reason "replacing a disk"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				resp, err := c.DrainWithReason(ctx, args[0], strings.TrimSpace(reason))
				if err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, resp)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the node is drained, shown by node list and the dashboard")
	return cmd
}

func newNodeUndrainCmd(g *clientFlags) *cobra.Command {
	return messageCmd(g, &cobra.Command{
		Use:   "undrain NODE",
		Short: "Let the scheduler place tasks on a drained node again",
		Long: `Let the scheduler place new tasks on NODE again after "hakuriver node
drain". Undraining a node that is not drained succeeds; an unknown node is
an error.`,
		Example: `  hakuriver node undrain node1`,
	}, (*api.Client).Undrain)
}
