package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// newUserCmd builds "hakuriver user": the accounts (admin).
func newUserCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage accounts: roles, Unix user, SSH keys, groups, quota and policy",
		Long: `Manage the cluster's accounts. Anyone with an account may list and show
them; only an admin adds, changes and removes them.

Roles, lowest first: viewer (reads), user (runs and controls their own
tasks), operator (also others' tasks, nodes and environments), admin (also
accounts, membership and policy). The last admin cannot be removed or
demoted.`,
		Example: `  hakuriver user add bob --role user --unix-user bob --ssh-key-file ~/bob.pub --group ml
  hakuriver user list
  hakuriver user show bob
  hakuriver user set bob --quota-cores 16 --quota-memory 64G --allow-mounts
  hakuriver user set-role bob operator
  hakuriver user remove bob`,
	}
	cmd.AddCommand(newUserAddCmd(g), newUserListCmd(g), newUserShowCmd(g), newUserRemoveCmd(g),
		newUserSetRoleCmd(g), newUserSetCmd(g))
	return cmd
}

// userFlags are the flags of "user add" and "user set".
type userFlags struct {
	limitFlags
	role     string
	unixUser string
	keyFiles []string
	groups   []string
	noKeys   bool
	noGroups bool
}

func (f *userFlags) bind(fl *pflag.FlagSet) {
	fl.StringVar(&f.unixUser, "unix-user", "", "Unix user (name or UID[:GID]) the account's tasks run as")
	fl.StringArrayVar(&f.keyFiles, "ssh-key-file", nil, "file of SSH public keys (authorized_keys lines) for the SSH jump host; repeatable")
	fl.StringSliceVar(&f.groups, "group", nil, "group the account belongs to; repeatable or comma-separated")
	f.limitFlags.bind(fl, "the account's")
}

func newUserAddCmd(g *clientFlags) *cobra.Command {
	var f userFlags
	cmd := &cobra.Command{
		Use:   "add NAME --role ROLE [--unix-user U] [--ssh-key-file F]... [--group G]...",
		Short: "Add an account (admin)",
		Long: `Add an account. NAME is 1-32 characters a-z 0-9 _ . - starting with a letter
or _. The account has no token yet: create one with
"hakuriver token create --user NAME".`,
		Example: `  hakuriver user add bob --role user
  hakuriver user add carol --role operator --unix-user 1001:1001 --ssh-key-file ~/carol.pub --group ml,gpu
  hakuriver user add dave --role user --quota-cores 8 --quota-memory 32G --quota-running 4`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			role, err := checkRole("--role", f.role)
			if err != nil {
				return err
			}
			req := api.UserRequest{Name: args[0], Role: role, UnixUser: f.unixUser, Groups: f.groups}
			if req.SSHKeys, err = readKeyFiles(f.keyFiles); err != nil {
				return err
			}
			if req.Quota, _, err = f.quota(cmd.Flags(), fsm.Quota{}); err != nil {
				return err
			}
			req.Policy, _ = f.policy(cmd.Flags(), fsm.Policy{})
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				u, err := c.CreateUser(ctx, req)
				if err != nil {
					return err
				}
				return printUser(cmd.OutOrStdout(), format, u)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.role, "role", "", "role: viewer, user, operator or admin (required)")
	f.bind(fl)
	_ = cmd.MarkFlagRequired("role") // fails only for an unknown flag name
	return cmd
}

func newUserListCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the accounts",
		Example: "  hakuriver user list\n  hakuriver user list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				users, err := c.Users(ctx)
				if err != nil {
					return err
				}
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), users)
				}
				tw := newTable(cmd.OutOrStdout())
				row(tw, "NAME", "ROLE", "UNIX-USER", "GROUPS", "KEYS", "QUOTA", "POLICY", "CREATED")
				for _, u := range users {
					row(tw, u.Name, string(u.Role), orDash(u.UnixUser), formatList(u.Groups), strconv.Itoa(len(u.SSHKeys)),
						formatQuota(u.Quota), formatPolicy(u.Policy), formatTime(u.CreatedAt))
				}
				return flushTable(tw)
			})
		},
	}
}

func newUserShowCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "show NAME",
		Short:   "Show one account with its SSH keys",
		Example: "  hakuriver user show bob\n  hakuriver user show bob -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				u, err := c.User(ctx, args[0])
				if err != nil {
					return err
				}
				return printUser(cmd.OutOrStdout(), format, u)
			})
		},
	}
}

// printUser writes one account.
func printUser(w io.Writer, format string, u fsm.User) error {
	if format == outputJSON {
		return printJSON(w, u)
	}
	tw := newTable(w)
	row(tw, "Name:", u.Name)
	row(tw, "Role:", string(u.Role))
	row(tw, "Unix user:", orDash(u.UnixUser))
	row(tw, "Groups:", formatList(u.Groups))
	row(tw, "Quota:", formatQuota(u.Quota))
	row(tw, "Policy:", formatPolicy(u.Policy))
	row(tw, "Created:", formatTime(u.CreatedAt))
	if len(u.SSHKeys) == 0 {
		row(tw, "SSH keys:", "-")
	}
	for i, k := range u.SSHKeys {
		label := ""
		if i == 0 {
			label = "SSH keys:"
		}
		row(tw, label, truncate(k, 100))
	}
	return flushTable(tw)
}

func newUserRemoveCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove an account and its tokens (admin)",
		Long: `Remove an account and revoke every token of it. Its tasks keep their
owner's name. The last admin cannot be removed.`,
		Example: "  hakuriver user remove bob",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				if err := c.DeleteUser(ctx, args[0]); err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, api.MessageResponse{Message: "user " + args[0] + " removed, with its tokens"})
			})
		},
	}
}

func newUserSetRoleCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:       "set-role NAME ROLE",
		Short:     "Change an account's role (admin)",
		Example:   "  hakuriver user set-role bob operator",
		Args:      cobra.ExactArgs(2),
		ValidArgs: []string{"viewer", "user", "operator", "admin"},
		RunE: func(cmd *cobra.Command, args []string) error {
			role, err := checkRole("ROLE", args[1])
			if err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				u, err := c.PatchUser(ctx, args[0], api.UserPatch{Role: &role})
				if err != nil {
					return err
				}
				return printUser(cmd.OutOrStdout(), format, u)
			})
		},
	}
}

// patch builds the PATCH of "user set" from the flags given; cur is the
// account now, whose quota and policy the flags change in part.
func (f *userFlags) patch(fl *pflag.FlagSet, cur fsm.User) (api.UserPatch, error) {
	var p api.UserPatch
	if fl.Changed("role") {
		role, err := checkRole("--role", f.role)
		if err != nil {
			return p, err
		}
		p.Role = &role
	}
	if fl.Changed("unix-user") {
		p.UnixUser = &f.unixUser
	}
	switch {
	case f.noKeys && fl.Changed("ssh-key-file"):
		return p, fmt.Errorf("--no-ssh-keys and --ssh-key-file: give only one")
	case f.noKeys:
		p.SSHKeys = &[]string{}
	case fl.Changed("ssh-key-file"):
		keys, err := readKeyFiles(f.keyFiles)
		if err != nil {
			return p, err
		}
		p.SSHKeys = &keys
	}
	switch {
	case f.noGroups && fl.Changed("group"):
		return p, fmt.Errorf("--no-groups and --group: give only one")
	case f.noGroups:
		p.Groups = &[]string{}
	case fl.Changed("group"):
		groups := append([]string{}, f.groups...)
		p.Groups = &groups
	}
	q, changed, err := f.quota(fl, cur.Quota)
	if err != nil {
		return p, err
	}
	if changed {
		p.Quota = &q
	}
	if pol, changed := f.policy(fl, cur.Policy); changed {
		p.Policy = &pol
	}
	return p, nil
}

// emptyUserPatch reports whether p changes nothing.
func emptyUserPatch(p api.UserPatch) bool {
	return p.Role == nil && p.UnixUser == nil && p.SSHKeys == nil && p.Groups == nil && p.Quota == nil && p.Policy == nil
}

func newUserSetCmd(g *clientFlags) *cobra.Command {
	var f userFlags
	cmd := &cobra.Command{
		Use:   "set NAME [--unix-user U] [--ssh-key-file F]... [--group G]... [--quota-* N] [--allow-*]",
		Short: "Change an account's fields (admin)",
		Long: `Change the fields of an account whose flags are given; the others stay.
--ssh-key-file and --group replace the whole list (--no-ssh-keys and
--no-groups empty it); each --quota-* flag replaces one limit (0 removes
it); each --allow-* flag grants (or with =false takes back) one right.`,
		Example: `  hakuriver user set bob --unix-user bob --ssh-key-file ~/bob.pub --ssh-key-file ~/bob-laptop.pub
  hakuriver user set bob --group ml --group gpu
  hakuriver user set bob --quota-cores 16 --quota-memory 64G --quota-gpus 2 --quota-running 8 --quota-vps 1
  hakuriver user set bob --allow-mounts --allow-privileged=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Checked before any call; the quota and policy are then
			// merged into the account's current ones.
			p, err := f.patch(cmd.Flags(), fsm.User{})
			if err != nil {
				return err
			}
			if emptyUserPatch(p) {
				return fmt.Errorf("nothing to change: give at least one flag (see --help)")
			}
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				if p.Quota != nil || p.Policy != nil {
					cur, err := c.User(ctx, args[0])
					if err != nil {
						return err
					}
					if p, err = f.patch(cmd.Flags(), cur); err != nil {
						return err
					}
				}
				u, err := c.PatchUser(ctx, args[0], p)
				if err != nil {
					return err
				}
				return printUser(cmd.OutOrStdout(), format, u)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.role, "role", "", "new role: viewer, user, operator or admin")
	f.bind(fl)
	fl.BoolVar(&f.noKeys, "no-ssh-keys", false, "remove every SSH key of the account")
	fl.BoolVar(&f.noGroups, "no-groups", false, "take the account out of every group")
	return cmd
}
