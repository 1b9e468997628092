package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster"
	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/certs"
	"github.com/hakuriver/hakuriver-ha/ops/config"
	"github.com/hakuriver/hakuriver-ha/runner"
)

func newDevCmd() *cobra.Command {
	var (
		replicas int
		runners  int
		dataDir  string
		apiPort  int
		logs     logFlags
		useTLS   bool
		withEnvs bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Start an embedded cluster in one process on loopback",
		Long: `Start N host replicas in this process on 127.0.0.1, with data in a
temporary directory (or --data-dir, which keeps state across runs). Replica i
serves its API on --api-port + i and its SSH proxy on --api-port + 100 + i. Bootstraps the accounts and prints the addresses and a ready
"export HAKURIVER_HOST=... HAKURIVER_TOKEN=..." line for the client
commands: HAKURIVER_TOKEN is the API token of the admin account, kept in
<data-dir>/admin-token. Stop with Ctrl-C.`,
		Example: `  hakuriver dev                 # one replica on :8000
  hakuriver dev --replicas 3    # HA on one laptop: kill any one, keep working`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if replicas < 1 || replicas > 9 {
				return fmt.Errorf("--replicas %d: must be between 1 and 9", replicas)
			}
			if runners < 0 || runners > 16 {
				return fmt.Errorf("--runners %d: must be between 0 and 16", runners)
			}
			log, closeLog, err := logs.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeLog()
			if dataDir == "" {
				d, err := os.MkdirTemp("", "hakuriver-dev-")
				if err != nil {
					return fmt.Errorf("create temp data dir: %w", err)
				}
				defer os.RemoveAll(d)
				dataDir = d
			}
			ctx := cmd.Context()
			token := newToken()
			tokenFile := filepath.Join(dataDir, "cluster-token")
			if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
				return fmt.Errorf("write cluster token: %w", err)
			}
			var hosts []*cluster.Host
			var stops []func() error
			var envClosers []func() error
			defer func() { // after the replicas closed (deferred below)
				for _, c := range envClosers {
					c() //nolint:errcheck // closing on the way out
				}
			}()
			defer func() {
				for _, stop := range stops {
					if err := stop(); err != nil {
						log.Warn("stop runner", "err", err)
					}
				}
			}()
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				for _, h := range hosts {
					if err := h.Close(sctx); err != nil {
						log.Warn("close replica", "node_id", h.NodeID(), "err", err)
					}
				}
			}()
			// With --tls every node gets a certificate of a CA kept in
			// <data-dir>/tls (made once, reused on a kept --data-dir).
			tlsDir := filepath.Join(dataDir, "tls")
			bundle := func(string) (*certs.Bundle, error) { return nil, nil }
			var clientTLS *tls.Config
			if useTLS {
				var nodes []string
				for i := 0; i < replicas; i++ {
					nodes = append(nodes, fmt.Sprintf("dev-%d", i+1))
				}
				for i := 0; i < runners; i++ {
					nodes = append(nodes, fmt.Sprintf("dev-runner-%d", i+1))
				}
				if _, err := certs.Init(tlsDir, certs.InitOptions{Nodes: nodes}); err != nil {
					return err
				}
				bundle = func(node string) (*certs.Bundle, error) {
					return certs.Load(filepath.Join(tlsDir, certs.CertFile(node)), filepath.Join(tlsDir, certs.KeyFile(node)), filepath.Join(tlsDir, certs.CAFile))
				}
				if clientTLS, err = certs.ClientTLS(filepath.Join(tlsDir, certs.CAFile)); err != nil {
					return err
				}
			}
			var join []string
			for i := 0; i < replicas; i++ {
				hc := cluster.DefaultConfig()
				hc.NodeID = fmt.Sprintf("dev-%d", i+1)
				hc.DataDir = filepath.Join(dataDir, hc.NodeID)
				hc.SharedDir = filepath.Join(dataDir, "shared")
				hc.BindAddr = "127.0.0.1"
				hc.APIPort = apiPort + i
				hc.SSHProxyPort = apiPort + 100 + i
				hc.RaftPort, hc.GossipPort = 0, 0
				hc.BootstrapExpect = replicas
				hc.Join = join
				hc.FastGossip = true
				hc.ClusterToken = token
				hc.HeartbeatInterval = time.Second
				hc.Version = version
				hc.Logger = log.With("replica", hc.NodeID)
				if hc.TLS, err = bundle(hc.NodeID); err != nil {
					return err
				}
				if withEnvs {
					ec := config.Default()
					ec.Paths.SharedDir = hc.SharedDir
					envs, err := newEnvManager(ec, hc.Logger)
					if err != nil {
						return err
					}
					envClosers = append(envClosers, envs.Close)
					hc.Docker = dockerEnvironments{envs}
				}
				h, err := cluster.StartHost(ctx, hc)
				if err != nil {
					return err
				}
				hosts = append(hosts, h)
				join = []string{hosts[0].GossipAddr()}
			}
			if err := waitLeader(ctx, hosts); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for i := 0; i < runners; i++ {
				rc := runner.DefaultConfig()
				rc.Name = fmt.Sprintf("dev-runner-%d", i+1)
				rc.BindAddr, rc.AdvertiseAddr = "127.0.0.1", "127.0.0.1"
				rc.Port, rc.GossipPort = 0, 0
				rc.Join = join
				rc.Token = token
				rc.SharedDir = filepath.Join(dataDir, "shared")
				rc.LocalTempDir = filepath.Join(dataDir, rc.Name)
				rc.HeartbeatInterval = time.Second
				rc.FastGossip = true
				rc.Version = version
				rc.Logger = log.With("runner", rc.Name)
				if rc.TLS, err = bundle(rc.Name); err != nil {
					return err
				}
				// The runner's private state, next to (never inside) its
				// scratch directory.
				sd, err := openStateDir(filepath.Join(dataDir, rc.Name+"-state"), rc, nil)
				if err != nil {
					return err
				}
				a, stop, err := startRunner(ctx, rc, sd, false)
				if err != nil {
					sd.Close() //nolint:errcheck // the start error is the one to report
					return err
				}
				stops = append(stops, func() error { return errors.Join(stop(), sd.Close()) })
				fmt.Fprintf(out, "runner  %s  api %s  gossip %s\n", a.Name(), a.URL(), a.GossipAddr())
			}
			urls := make([]string, len(hosts))
			for i, h := range hosts {
				urls[i] = h.APIURL()
				role := "follower"
				if h.IsLeader() {
					role = "leader"
				}
				fmt.Fprintf(out, "replica %s  api %s  raft %s  gossip %s  ssh-proxy %s  (%s)\n", h.NodeID(), h.APIURL(), h.RaftAddr(), h.GossipAddr(), h.SSHProxyAddr(), role)
			}
			admin, err := devAdminToken(ctx, urls, token, filepath.Join(dataDir, "admin-token"), clientTLS)
			if err != nil {
				return err
			}
			caExport := ""
			if useTLS {
				caExport = " HAKURIVER_CA_FILE=" + filepath.Join(tlsDir, certs.CAFile)
			}
			fmt.Fprintf(out, "data in %s\n\nReady. In another shell:\n  export HAKURIVER_HOST=%s HAKURIVER_TOKEN_FILE=%s HAKURIVER_TOKEN=%s%s\n  hakuriver cluster status\n",
				dataDir, strings.Join(urls, ","), tokenFile, admin, caExport)
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().IntVar(&replicas, "replicas", 1, "number of host replicas")
	cmd.Flags().IntVar(&runners, "runners", 1, "number of runner agents (native executor)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep state here instead of a temporary directory")
	cmd.Flags().IntVar(&apiPort, "api-port", 8000, "API port of the first replica; replica i uses this + i")
	logs.bind(cmd.Flags(), "warn")
	cmd.Flags().BoolVar(&useTLS, "tls", false, "serve the APIs over HTTPS and Raft over TLS, with certificates of a CA made in <data-dir>/tls (the export line names it)")
	cmd.Flags().BoolVar(&withEnvs, "docker-environments", true, "serve Docker environments (containers, tarballs, terminal) from this machine's Docker Engine; without Docker their calls answer 503")
	return cmd
}

// waitLeader waits until one of hosts is a ready leader.
func waitLeader(ctx context.Context, hosts []*cluster.Host) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		for _, h := range hosts {
			if h.IsLeader() {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no leader elected: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// devAdminToken bootstraps the accounts of the embedded cluster with the
// cluster token (verifying https replicas with tlsCfg) and returns the admin's API token, kept in file (mode
// 0600). A cluster of a kept --data-dir was bootstrapped by an earlier run:
// its token is read back from file.
func devAdminToken(ctx context.Context, urls []string, clusterToken, file string, tlsCfg *tls.Config) (string, error) {
	cfg := api.DefaultClientConfig()
	cfg.TLS = tlsCfg
	cfg.Hosts = urls
	cfg.Token = clusterToken
	cfg.UserAgent = "hakuriver-dev"
	c, err := api.NewClient(cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.Bootstrap(ctx, "admin")
	var ae *api.APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusConflict {
		b, rerr := os.ReadFile(file)
		if t := strings.TrimSpace(string(b)); rerr == nil && t != "" {
			return t, nil
		}
		return "", fmt.Errorf("the accounts of this --data-dir were bootstrapped before and %s is gone: "+
			"use a token of an admin (hakuriver token create), or start over with a new --data-dir", file)
	}
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(file, []byte(resp.Token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep the admin token: %w", err)
	}
	return resp.Token, nil
}

// newToken returns a random cluster token for the embedded cluster.
func newToken() string {
	b := make([]byte, 24)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
