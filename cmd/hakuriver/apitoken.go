package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// maxTokenTTL mirrors the host's bound on a token's lifetime.
const maxTokenTTL = 10 * 365 * 24 * time.Hour

// newTokenCmd builds "hakuriver token": API tokens.
func newTokenCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens",
		Long: `Create, list and revoke API tokens. A user (or operator) manages their own
tokens; an admin manages anyone's. The secret of a token is printed once,
when it is created: the cluster keeps only its hash.`,
		Example: `  hakuriver token create --name laptop --ttl 720h
  hakuriver token create --user bob --name ci     # admin
  hakuriver token list
  hakuriver token revoke 3f2a9c0d1e4b5a69`,
	}
	cmd.AddCommand(newTokenCreateCmd(g), newTokenListCmd(g), newTokenRevokeCmd(g))
	return cmd
}

func newTokenCreateCmd(g *clientFlags) *cobra.Command {
	var req api.TokenRequest
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create [--user U] [--name N] [--ttl 720h]",
		Short: "Create an API token and print its secret once",
		Long: `Create an API token, for yourself or (admin) for --user, and print its
secret once. Give it to its owner, who runs "hakuriver auth login" with it.
Without --ttl it never expires; revoke it with "hakuriver token revoke ID".`,
		Example: `  hakuriver token create --name laptop --ttl 720h
  hakuriver token create --user bob --name ci -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("ttl") {
				if ttl <= 0 || ttl > maxTokenTTL {
					return fmt.Errorf("invalid --ttl %s: want a positive duration up to %s, like 720h", ttl, maxTokenTTL)
				}
				req.TTL = ttl.String()
			}
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				resp, err := c.CreateToken(ctx, req)
				if err != nil {
					return err
				}
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), resp)
				}
				return printNewToken(cmd.OutOrStdout(), "Token created for "+resp.User+".", resp, "")
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.User, "user", "", "whose token (default: yours; another user's needs admin)")
	fl.StringVar(&req.Name, "name", "", "a label for the token, like laptop or ci")
	fl.DurationVar(&ttl, "ttl", 0, "lifetime, like 720h (default: never expires)")
	return cmd
}

func newTokenListCmd(g *clientFlags) *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "list [--user U]",
		Short: "List API tokens (never their secrets)",
		Long: `List your API tokens; an admin sees everyone's, or one user's with --user.
Secrets are never shown: only IDs, labels and dates.`,
		Example: "  hakuriver token list\n  hakuriver token list --user bob -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				toks, err := c.Tokens(ctx, user)
				if err != nil {
					return err
				}
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), toks)
				}
				tw := newTable(cmd.OutOrStdout())
				row(tw, "ID", "USER", "NAME", "CREATED", "EXPIRES")
				for _, t := range toks {
					exp := formatTimePtr(t.ExpiresAt)
					if t.Expired {
						exp += " (expired)"
					}
					row(tw, t.ID, t.User, orDash(printable(t.Name)), formatTime(t.CreatedAt), exp)
				}
				return flushTable(tw)
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "list this user's tokens (another user's needs admin)")
	return cmd
}

func newTokenRevokeCmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token",
		Long: `Revoke an API token by its ID (see "hakuriver token list"): every replica
refuses it from then on. Your own, or (admin) anyone's.`,
		Example: "  hakuriver token revoke 3f2a9c0d1e4b5a69",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				if err := c.RevokeToken(ctx, args[0]); err != nil {
					return err
				}
				return printMessage(cmd.OutOrStdout(), format, api.MessageResponse{Message: "token " + args[0] + " revoked"})
			})
		},
	}
}
