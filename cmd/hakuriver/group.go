package main

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// newGroupCmd builds "hakuriver group": groups of accounts sharing a quota
// and a policy.
func newGroupCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Manage groups: a quota the members share and a policy they all get",
		Long: `Manage groups of accounts. A group's quota caps what all its members hold
together; its policy adds to each member's own. Membership is a field of
the account: "hakuriver user set NAME --group G". Anyone with an account
may list the groups; only an admin adds, changes and removes them.`,
		Example: `  hakuriver group add ml --quota-gpus 4 --quota-running 20
  hakuriver user set bob --group ml
  hakuriver group list
  hakuriver group set ml --allow-mounts --quota-memory 256G
  hakuriver group remove ml`,
	}
	cmd.AddCommand(newGroupAddCmd(g), newGroupListCmd(g), newGroupRemoveCmd(g), newGroupSetCmd(g))
	return cmd
}

func newGroupAddCmd(g *clientFlags) *cobra.Command {
	var f limitFlags
	cmd := &cobra.Command{
		Use:     "add NAME [--quota-* N] [--allow-*]",
		Short:   "Add a group (admin)",
		Long:    `Add a group. NAME is 1-32 characters a-z 0-9 _ . - starting with a letter or _.`,
		Example: "  hakuriver group add ml --quota-gpus 4 --quota-cores 64 --allow-mounts",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.GroupRequest{Name: args[0]}
			var err error
			if req.Quota, _, err = f.quota(cmd.Flags(), fsm.Quota{}); err != nil {
				return err
			}
			req.Policy, _ = f.policy(cmd.Flags(), fsm.Policy{})
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				grp, err := c.CreateGroup(ctx, req)
				if err != nil {
					return err
				}
				return printGroup(cmd.OutOrStdout(), format, grp)
			})
		},
	}
	f.bind(cmd.Flags(), "the members'")
	return cmd
}

func newGroupSetCmd(g *clientFlags) *cobra.Command {
	var f limitFlags
	cmd := &cobra.Command{
		Use:   "set NAME [--quota-* N] [--allow-*]",
		Short: "Change a group's quota or policy (admin)",
		Long: `Change the limits and rights whose flags are given; the others stay. Each
--quota-* flag replaces one limit (0 removes it); each --allow-* flag grants
(or with =false takes back) one right.`,
		Example: `  hakuriver group set ml --quota-gpus 8
  hakuriver group set ml --allow-privileged=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			_, qChanged, err := f.quota(fl, fsm.Quota{})
			if err != nil {
				return err
			}
			_, pChanged := f.policy(fl, fsm.Policy{})
			if !qChanged && !pChanged {
				return fmt.Errorf("nothing to change: give at least one --quota-* or --allow-* flag (see --help)")
			}
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				cur, err := findGroup(ctx, c, args[0])
				if err != nil {
					return err
				}
				var p api.GroupPatch
				if q, changed, _ := f.quota(fl, cur.Quota); changed {
					p.Quota = &q
				}
				if pol, changed := f.policy(fl, cur.Policy); changed {
					p.Policy = &pol
				}
				grp, err := c.PatchGroup(ctx, args[0], p)
				if err != nil {
					return err
				}
				return printGroup(cmd.OutOrStdout(), format, grp)
			})
		},
	}
	f.bind(cmd.Flags(), "the members'")
	return cmd
}

// findGroup returns the group named name from the list (there is no
// single-group endpoint).
func findGroup(ctx context.Context, c *api.Client, name string) (fsm.Group, error) {
	groups, err := c.Groups(ctx)
	if err != nil {
		return fsm.Group{}, err
	}
	for _, grp := range groups {
		if grp.Name == name {
			return grp, nil
		}
	}
	return fsm.Group{}, fmt.Errorf("no group %q (hakuriver group list shows them)", name)
}

// groupView is a group as "group list" shows it: with its members.
type groupView struct {
	fsm.Group
	Members []string `json:"members"`
}

func newGroupListCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the groups with their members",
		Example: "  hakuriver group list\n  hakuriver group list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				groups, err := c.Groups(ctx)
				if err != nil {
					return err
				}
				users, err := c.Users(ctx)
				if err != nil {
					return err
				}
				views := groupViews(groups, users)
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), views)
				}
				tw := newTable(cmd.OutOrStdout())
				row(tw, "NAME", "QUOTA", "POLICY", "MEMBERS", "CREATED")
				for _, v := range views {
					row(tw, v.Name, formatQuota(v.Quota), formatPolicy(v.Policy), formatList(v.Members), formatTime(v.CreatedAt))
				}
				return flushTable(tw)
			})
		},
	}
}

// groupViews joins groups with the users naming them, members sorted.
func groupViews(groups []fsm.Group, users []fsm.User) []groupView {
	out := make([]groupView, 0, len(groups))
	for _, grp := range groups {
		v := groupView{Group: grp, Members: []string{}}
		for _, u := range users {
			for _, name := range u.Groups {
				if name == grp.Name {
					v.Members = append(v.Members, u.Name)
					break
				}
			}
		}
		sort.Strings(v.Members)
		out = append(out, v)
	}
	return out
}

// printGroup writes one group.
func printGroup(w io.Writer, format string, grp fsm.Group) error {
	if format == outputJSON {
		return printJSON(w, grp)
	}
	tw := newTable(w)
	row(tw, "Name:", grp.Name)
	row(tw, "Quota:", formatQuota(grp.Quota))
	row(tw, "Policy:", formatPolicy(grp.Policy))
	row(tw, "Created:", formatTime(grp.CreatedAt))
	return flushTable(tw)
}

func newGroupRemoveCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a group (admin)",
		Long: `Remove a group. Accounts keep its name in their groups, where it means
nothing until a group of that name exists again.`,
		Example: "  hakuriver group remove ml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				if err := c.DeleteGroup(ctx, args[0]); err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, api.MessageResponse{Message: "group " + args[0] + " removed"})
			})
		},
	}
}
