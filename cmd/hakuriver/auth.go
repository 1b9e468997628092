package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// maxTokenInput bounds a token read from standard input.
const maxTokenInput = 4 << 10

// newAuthCmd builds "hakuriver auth": the caller's own credentials.
func newAuthCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Bootstrap the accounts, log in and out, show who you are",
		Long: `Every call to the cluster is made as an account: the API token sent with
--token, else $HAKURIVER_TOKEN, else the one "hakuriver auth login" saved for
the first --host replica (in $` + credentialsEnv + `, default
~/.config/hakuriver/tokens.json, mode 0600).

A new cluster has no accounts: "hakuriver auth bootstrap" creates the first
admin with the cluster token, once in the cluster's life.`,
		Example: `  hakuriver auth bootstrap --cluster-token-file /etc/hakuriver/token --save
  hakuriver auth login                 # paste the token; it is not echoed
  echo "$TOKEN" | hakuriver auth login
  hakuriver auth whoami
  hakuriver auth logout --revoke`,
	}
	cmd.AddCommand(newAuthBootstrapCmd(g), newAuthLoginCmd(g), newAuthLogoutCmd(g), newAuthWhoAmICmd(g))
	return cmd
}

// withBearer is withClient sending bearer as the account token, whatever
// --token, $HAKURIVER_TOKEN and the token store say.
func (g *clientFlags) withBearer(cmd *cobra.Command, bearer string, fn func(ctx context.Context, c *api.Client, format string) error) error {
	format, err := g.format()
	if err != nil {
		return err
	}
	cfg, err := g.clientConfig("")
	if err != nil {
		return err
	}
	cfg.Bearer = bearer
	c, err := api.NewClient(cfg)
	if err != nil {
		return fmt.Errorf("invalid --host: %w", err)
	}
	defer c.Close()
	ctx, cancel := g.call(cmd.Context())
	defer cancel()
	return fn(ctx, c, format)
}

// tokenSource says where accountToken found the token it sends.
func (g *clientFlags) tokenSource() string {
	switch {
	case g.token != "":
		return "--token"
	case os.Getenv(tokenEnv) != "":
		return "$" + tokenEnv
	}
	if t, err := loadSavedToken(g.hostList()); err == nil && t != "" {
		if p, err := tokenStorePath(); err == nil {
			return "saved in " + p
		}
		return "saved"
	}
	return "none"
}

// bootstrapFlags are the flags of "auth bootstrap".
type bootstrapFlags struct {
	tokenFile  string
	configPath string
	user       string
	save       bool
}

// clusterToken reads the cluster token as "cluster join" does, from
// --cluster-token-file, else $HAKURIVER_TOKEN_FILE, else the config's
// cluster_token(_file).
func (f bootstrapFlags) clusterToken() (string, error) {
	tf := tokenFlags{configPath: f.configPath}
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return "", fmt.Errorf("read --cluster-token-file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("--cluster-token-file %s: empty", f.tokenFile)
		}
		return t, nil
	}
	c, _, err := tf.loadConfig()
	if err != nil {
		return "", err
	}
	token, err := tf.resolveToken(c)
	if err != nil {
		return "", err
	}
	if token == "" {
		return "", fmt.Errorf("bootstrap needs the cluster token: pass --cluster-token-file, set $%s, "+
			"or set cluster_token or cluster_token_file in --config", tokenFileEnv)
	}
	return token, nil
}

func newAuthBootstrapCmd(g *clientFlags) *cobra.Command {
	var f bootstrapFlags
	cmd := &cobra.Command{
		Use:   "bootstrap [--user NAME] [--save]",
		Short: "Create the first admin account (once, with the cluster token)",
		Long: `Create the first admin account of a new cluster and print its API token.
It needs the cluster token (--cluster-token-file, $` + tokenFileEnv + `, or the
cluster_token(_file) of --config) and works once in the cluster's life;
afterwards an admin creates accounts and tokens with "hakuriver user" and
"hakuriver token".

The token is printed this once: the cluster keeps only its hash. --save
also stores it as "hakuriver auth login" does.`,
		Example: `  hakuriver auth bootstrap --cluster-token-file /etc/hakuriver/token --save
  hakuriver auth bootstrap --config /etc/hakuriver/config.toml --user alice -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := f.clusterToken()
			if err != nil {
				return err
			}
			return g.withTokenClient(cmd, token, func(ctx context.Context, c *api.Client, format string) error {
				resp, err := c.Bootstrap(ctx, f.user)
				if err != nil {
					return err
				}
				saved := ""
				if f.save {
					if saved, err = saveToken(g.hostList(), resp.Token); err != nil {
						// The secret exists nowhere else: print it anyway.
						fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
						saved = ""
					} else {
						warnEnvToken(cmd.ErrOrStderr())
					}
				}
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), resp)
				}
				return printNewToken(cmd.OutOrStdout(), "Accounts bootstrapped: admin account "+resp.User+" created.", resp, saved)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.tokenFile, "cluster-token-file", "", "file holding the cluster token (default $"+tokenFileEnv+", else --config)")
	fl.StringVarP(&f.configPath, "config", "c", "", "config file whose cluster_token(_file) to use (default $"+configEnv+")")
	fl.StringVar(&f.user, "user", "admin", "name of the first admin account")
	fl.BoolVar(&f.save, "save", false, "also save the token for this cluster, as auth login does")
	return cmd
}

// printNewToken writes a created token: its owner, its ID and the secret,
// said to be shown once; saved is where it was saved ("" when not).
func printNewToken(w io.Writer, headline string, t api.TokenResponse, saved string) error {
	var b strings.Builder
	fmt.Fprintln(&b, headline)
	tw := newTable(&b)
	row(tw, "User:", t.User)
	row(tw, "Role:", string(t.Role))
	row(tw, "Token ID:", t.TokenID)
	row(tw, "Expires:", formatTimePtr(t.ExpiresAt))
	if err := flushTable(tw); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\nToken (shown only this once; the cluster keeps only its hash):\n%s\n", t.Token)
	if saved != "" {
		fmt.Fprintf(&b, "\nSaved in %s: later commands send it.\n", saved)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// loginResult is what "auth login" prints with -o json.
type loginResult struct {
	Cluster string `json:"cluster"`
	User    string `json:"user"`
	Role    string `json:"role"`
	TokenID string `json:"token_id"`
	SavedIn string `json:"saved_in"`
}

func newAuthLoginCmd(g *clientFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Check an API token and save it for this cluster",
		Long: `Check an API token with the cluster and save it for the cluster of the first
--host replica, so that later commands send it. The token comes from
--token, else standard input: a prompt that does not echo when it is a
terminal, else its first line (a pipe).

Tokens are saved in $` + credentialsEnv + ` (default
~/.config/hakuriver/tokens.json), a file of mode 0600 in a directory of
mode 0700, one token per cluster.`,
		Example: `  hakuriver auth login
  hakuriver --host http://10.0.0.1:8000 auth login < token.txt
  hakuriver auth login --token "$TOKEN"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token := g.token
			if token == "" {
				t, err := readToken(cmd.InOrStdin(), cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				token = t
			}
			if err := checkTokenText(token); err != nil {
				return err
			}
			return g.withBearer(cmd, token, func(ctx context.Context, c *api.Client, format string) error {
				who, err := c.WhoAmI(ctx)
				if err != nil {
					return fmt.Errorf("the cluster refused the token: %w", err)
				}
				if who.Anonymous {
					return errors.New("the cluster did not take the token for an account's")
				}
				path, err := saveToken(g.hostList(), token)
				if err != nil {
					return err
				}
				warnEnvToken(cmd.ErrOrStderr())
				res := loginResult{Cluster: clusterKey(g.hostList()), User: who.User, Role: string(who.Role), TokenID: who.TokenID, SavedIn: path}
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s (role %s, token %s).\nToken saved in %s (mode 0600).\n",
					res.Cluster, res.User, res.Role, res.TokenID, res.SavedIn)
				if err != nil {
					return fmt.Errorf("write output: %w", err)
				}
				return nil
			})
		},
	}
	return cmd
}

// warnEnvToken says, when $HAKURIVER_TOKEN is set, that it wins over the
// token just saved.
func warnEnvToken(w io.Writer) {
	if os.Getenv(tokenEnv) != "" {
		fmt.Fprintf(w, "note: $%s is set in this shell and is sent instead of the saved token; unset it to use the saved one\n", tokenEnv)
	}
}

// checkTokenText rejects what cannot be a token before it is sent in a
// header.
func checkTokenText(token string) error {
	switch {
	case token == "":
		return errors.New("empty token")
	case len(token) > 1024:
		return errors.New("token too long: an API token has well under 1024 characters")
	case strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return errors.New("token contains blanks or control characters: paste the token alone")
	}
	return nil
}

// readToken reads a token from in: with a prompt on prompt and echo off
// when in is a terminal, else its first line.
func readToken(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && isTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "API token: ")
		line, err := readNoEcho(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(line), nil
	}
	line, err := bufio.NewReaderSize(io.LimitReader(in, maxTokenInput), maxTokenInput).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the token from standard input: %w", err)
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("no token: pass --token, pipe it on standard input, or run in a terminal to be asked")
	}
	return line, nil
}

// readNoEcho reads one line from terminal fd with echo turned off.
func readNoEcho(fd int) (string, error) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("read terminal mode: %w", err)
	}
	old := *t
	t.Lflag &^= unix.ECHO
	t.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return "", fmt.Errorf("turn echo off: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, &old) //nolint:errcheck // best effort on the way out
	var line []byte
	buf := make([]byte, 1)
	for len(line) < maxTokenInput {
		n, err := unix.Read(fd, buf)
		if n == 1 {
			if buf[0] == '\n' || buf[0] == '\r' {
				break
			}
			line = append(line, buf[0])
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read the token: %w", err)
		}
		break // end of input
	}
	return string(line), nil
}

// logoutResult is what "auth logout" prints with -o json.
type logoutResult struct {
	Cluster string `json:"cluster"`
	Removed bool   `json:"removed"`
	Revoked string `json:"revoked,omitempty"`
}

func newAuthLogoutCmd(g *clientFlags) *cobra.Command {
	var revoke bool
	cmd := &cobra.Command{
		Use:   "logout [--revoke]",
		Short: "Forget the token saved for this cluster",
		Long: `Remove the token "hakuriver auth login" saved for the cluster of the first
--host replica. With --revoke the token is first revoked on the cluster, so
that no copy of it works any more.`,
		Example: `  hakuriver auth logout
  hakuriver auth logout --revoke`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			hosts := g.hostList()
			saved, err := loadSavedToken(hosts)
			if err != nil {
				return err
			}
			res := logoutResult{Cluster: clusterKey(hosts), Removed: saved != ""}
			if revoke && saved != "" {
				err := g.withBearer(cmd, saved, func(ctx context.Context, c *api.Client, _ string) error {
					who, err := c.WhoAmI(ctx)
					if err != nil {
						return err
					}
					if err := c.RevokeToken(ctx, who.TokenID); err != nil {
						return err
					}
					res.Revoked = who.TokenID
					return nil
				})
				if err != nil {
					return fmt.Errorf("revoke the saved token (it stays saved): %w", err)
				}
			}
			if saved != "" {
				if _, err := saveToken(hosts, ""); err != nil {
					return err
				}
			}
			if format == outputJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			msg := "No token was saved for " + res.Cluster + "."
			if res.Removed {
				msg = "Logged out of " + res.Cluster + ": the saved token is removed."
			}
			if res.Revoked != "" {
				msg += " Token " + res.Revoked + " is revoked."
			}
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), msg); err != nil {
				return fmt.Errorf("write output: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&revoke, "revoke", false, "revoke the token on the cluster too")
	return cmd
}

func newAuthWhoAmICmd(g *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the account the cluster sees you as",
		Long: `Show the account of the token this command sends (--token, $` + tokenEnv + `
or the saved one), its role and the token's ID; or, without a token, the
role the cluster grants anonymous callers.`,
		Example: `  hakuriver auth whoami
  hakuriver auth whoami -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
				who, err := c.WhoAmI(ctx)
				if err != nil {
					return err
				}
				if format == outputJSON {
					return printJSON(cmd.OutOrStdout(), who)
				}
				tw := newTable(cmd.OutOrStdout())
				if who.Anonymous {
					row(tw, "User:", "anonymous (no token sent)")
				} else {
					row(tw, "User:", who.User)
				}
				row(tw, "Role:", orDash(string(who.Role)))
				row(tw, "Token ID:", orDash(who.TokenID))
				row(tw, "Token from:", g.tokenSource())
				return flushTable(tw)
			})
		},
	}
}
