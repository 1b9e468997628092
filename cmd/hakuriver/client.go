package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/certs"
)

// defaultHost is the replica the client commands call when neither --host
// nor $HAKURIVER_HOST names one.
const defaultHost = "http://127.0.0.1:8000"

// hostEnv names the environment variable that lists the replicas.
const hostEnv = "HAKURIVER_HOST"

// defaultTimeout is the default --timeout: the time limit of one API call.
const defaultTimeout = 30 * time.Second

// clientFlags holds the persistent flags every client command shares.
type clientFlags struct {
	hosts   []string
	output  string
	timeout time.Duration
	// token is --token: an account's API token.
	token string
	// caFile is --ca-file: the cluster CA that https:// replicas are
	// verified against.
	caFile string
}

// caFileEnv names the environment variable holding the --ca-file default.
const caFileEnv = "HAKURIVER_CA_FILE"

// caFilePath returns --ca-file, else $HAKURIVER_CA_FILE, as an absolute
// path when it can ("" when neither is set).
func (g *clientFlags) caFilePath() string {
	f := g.caFile
	if f == "" {
		f = os.Getenv(caFileEnv)
	}
	if abs, err := filepath.Abs(f); err == nil && f != "" {
		return abs
	}
	return f
}

// tlsConfig returns the client TLS config of --ca-file (else
// $HAKURIVER_CA_FILE), or nil (the system roots) when neither is set.
func (g *clientFlags) tlsConfig() (*tls.Config, error) {
	f := g.caFilePath()
	if f == "" {
		return nil, nil
	}
	c, err := certs.ClientTLS(f)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	return c, nil
}

// tokenEnv names the environment variable holding an API token.
const tokenEnv = "HAKURIVER_TOKEN"

// accountToken returns the API token to send: --token, else
// $HAKURIVER_TOKEN, else the one `hakuriver auth login` saved for the first
// replica ("" when none).
func (g *clientFlags) accountToken() string {
	if g.token != "" {
		return g.token
	}
	if v := os.Getenv(tokenEnv); v != "" {
		return v
	}
	return savedToken(g.hostList())
}

// addClientFlags registers --host, --output and --timeout on root.
func addClientFlags(root *cobra.Command) *clientFlags {
	g := &clientFlags{}
	pf := root.PersistentFlags()
	pf.StringSliceVar(&g.hosts, "host", nil,
		"host replica URL(s), comma-separated or repeated, tried in order (default $"+hostEnv+" or "+defaultHost+")")
	pf.StringVarP(&g.output, "output", "o", outputTable, "output format of client commands: table or json (task list and usage also take csv)")
	pf.DurationVar(&g.timeout, "timeout", defaultTimeout, "time limit of each API call, trying other replicas included")
	pf.StringVar(&g.caFile, "ca-file", "", "cluster CA certificate that https:// replicas are verified against (default $"+caFileEnv+")")
	pf.StringVar(&g.token, "token", "", "API token of your account (default $"+tokenEnv+", else the one saved by 'hakuriver auth login')")
	return g
}

// hostList returns the replicas to call: --host, else $HAKURIVER_HOST, else
// the local default.
func (g *clientFlags) hostList() []string {
	if len(g.hosts) > 0 {
		return g.hosts
	}
	if v := os.Getenv(hostEnv); v != "" {
		return []string{v}
	}
	return []string{defaultHost}
}

// format validates --output and returns it.
func (g *clientFlags) format() (string, error) {
	switch g.output {
	case outputTable, outputJSON:
		return g.output, nil
	}
	if g.output == outputCSV {
		return "", fmt.Errorf("invalid --output %q: this command prints %s or %s (csv is for task list and usage)", g.output, outputTable, outputJSON)
	}
	return "", fmt.Errorf("invalid --output %q: want %s or %s", g.output, outputTable, outputJSON)
}

// client validates the shared flags and builds an API client. The caller
// closes it.
func (g *clientFlags) client() (*api.Client, error) { return g.tokenClient("") }

// tokenClient is client sending token (when not "") on every call.
func (g *clientFlags) tokenClient(token string) (*api.Client, error) {
	cfg, err := g.clientConfig(token)
	if err != nil {
		return nil, err
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("invalid --host: %w", err)
	}
	return c, nil
}

// clientConfig validates the shared flags and returns the API client
// configuration they give, sending token when not "".
func (g *clientFlags) clientConfig(token string) (api.ClientConfig, error) {
	var err error
	if _, err = g.format(); err != nil {
		return api.ClientConfig{}, err
	}
	if g.timeout <= 0 {
		return api.ClientConfig{}, fmt.Errorf("invalid --timeout %s: must be positive", g.timeout)
	}
	cfg := api.DefaultClientConfig()
	cfg.Hosts = g.hostList()
	cfg.Timeout = min(g.timeout, api.DefaultClientTimeout)
	cfg.RetryBudget = g.timeout
	cfg.UserAgent = "hakuriver-cli"
	cfg.Token = token
	if cfg.TLS, err = g.tlsConfig(); err != nil {
		return api.ClientConfig{}, err
	}
	if token == "" {
		cfg.Bearer = g.accountToken()
	}
	return cfg, nil
}

// call returns a context bounded by --timeout for one API call.
func (g *clientFlags) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, g.timeout)
}

// withClient validates the shared flags, builds a client and runs fn with a
// context bounded by --timeout and the validated output format.
func (g *clientFlags) withClient(cmd *cobra.Command, fn func(ctx context.Context, c *api.Client, format string) error) error {
	return g.withTokenClient(cmd, "", fn)
}

// withTokenClient is withClient with a client that sends token.
func (g *clientFlags) withTokenClient(cmd *cobra.Command, token string, fn func(ctx context.Context, c *api.Client, format string) error) error {
	format, err := g.format()
	if err != nil {
		return err
	}
	c, err := g.tokenClient(token)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := g.call(cmd.Context())
	defer cancel()
	return fn(ctx, c, format)
}

// messageCmd completes a one-argument command (a task ID or a node name)
// that calls the API and prints its {"message"} answer.
func messageCmd(g *clientFlags, cmd *cobra.Command, call func(*api.Client, context.Context, string) (api.MessageResponse, error)) *cobra.Command {
	cmd.Args = cobra.ExactArgs(1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return g.withClient(cmd, func(ctx context.Context, c *api.Client, format string) error {
			resp, err := call(c, ctx, args[0])
			if err != nil {
				return err
			}
			return printMessage(cmd.OutOrStdout(), format, resp)
		})
	}
	return cmd
}

// savedToken returns the token `hakuriver auth login` saved for the cluster
// at hosts ("" when none). (auth.go)
func savedToken(hosts []string) string {
	t, _ := loadSavedToken(hosts)
	return t
}
