package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// newQuotaCmd builds "hakuriver quota": each user's and group's quota, with
// what is used of it.
func newQuotaCmd(g *clientFlags) *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "quota",
		Short: "Show the users' and groups' quotas and what is used of them",
		Long: `Show every user and group whose quota sets a limit, with what its tasks
hold of each resource as "USED of LIMIT" ("of -": no limit). Tasks hold
resources while assigning, running or paused; a group's use is the sum over
all its members. A pending task that would go over its owner's quota (or a
group's) waits in the queue ("hakuriver queue" names the quota) and starts
once use drops; a task that could never fit the quota is refused at submit.

--user NAME shows that user, limited or not, and their groups that set a
limit. --output json prints the entries as the API returns them.`,
		Example: `  hakuriver quota
  hakuriver quota --user alice
  hakuriver quota -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				q, err := c.Quota(ctx, user)
				if err != nil {
					return err
				}
				if q == nil {
					q = []api.QuotaEntry{}
				}
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), q)
				}
				return printQuota(cmd.OutOrStdout(), q)
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "show only this user and their groups")
	return cmd
}

// printQuota writes the quota table: one row per user or group.
func printQuota(w io.Writer, q []api.QuotaEntry) error {
	if len(q) == 0 {
		if _, err := fmt.Fprintln(w, "No quota sets a limit."); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	tw := newTable(w)
	row(tw, "KIND", "NAME", "CORES", "MEMORY", "GPUS", "RUNNING TASKS", "VPS", "GROUPS/MEMBERS")
	for _, e := range q {
		cells := map[string]string{}
		for _, r := range e.Resources {
			cells[r.Resource] = quotaCell(r)
		}
		related := e.Groups
		if e.Kind == "group" {
			related = e.Members
		}
		row(tw, e.Kind, e.Name, orDash(cells["cores"]), orDash(cells["memory_bytes"]), orDash(cells["gpus"]),
			orDash(cells["running_tasks"]), orDash(cells["vps"]), orDash(strings.Join(related, ",")))
	}
	return flushTable(tw)
}

// quotaCell renders one resource as "USED of LIMIT", memory in binary units.
func quotaCell(r api.QuotaResource) string {
	f := func(n int64) string { return strconv.FormatInt(n, 10) }
	if r.Resource == "memory_bytes" {
		f = func(n int64) string {
			if n <= 0 {
				return "0B"
			}
			return formatBytes(n)
		}
	}
	limit := "-"
	if r.Limit > 0 {
		limit = f(r.Limit)
	}
	return f(r.Used) + " of " + limit
}
