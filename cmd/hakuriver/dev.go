package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/certs"
)

func newDevCmd(g *clientFlags) *cobra.Command {
	var (
		replicas  int
		runners   int
		dataDir   string
		apiPort   int
		logs      logFlags
		useTLS    bool
		withEnvs  bool
		keepTasks bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Start a local cluster of host and runner processes on loopback",
		Long: `Start N host replicas and M runners on 127.0.0.1, each its own process
("hakuriver host|runner --config <data-dir>/config/<member>.toml", output in
<data-dir>/logs/<member>.log and on stderr), with data in a temporary
directory (removed on exit) or in --data-dir (created when missing, kept
across runs). Replica i serves its API on --api-port + i and its SSH proxy on
--api-port + 100 + i; the Raft, gossip and runner ports are chosen once and
kept in <data-dir>/dev.json, so dev started again with the same --data-dir
gets the same cluster back, every task included. Prints each member's PID,
bootstraps the accounts and prints a ready
"export HAKURIVER_HOST=... HAKURIVER_TOKEN=..." line for the client
commands: HAKURIVER_TOKEN is the API token of the admin account, kept in
<data-dir>/admin-token.

Break it while it runs: "hakuriver dev kill|restart|pause|resume <member>"
(host-N, runner-N or leader), or signals to the printed PIDs: kill -9 (crash),
kill -STOP / kill -CONT (freeze, thaw). A member that ends stays down until
"hakuriver dev restart <member>". "hakuriver dev status" lists the members.

Ctrl-C (SIGINT or SIGTERM) stops the runners, kills their tasks (unless
--keep-tasks: they then run on and the runners adopt them on the next start),
stops the replicas, and leaves no process behind. If dev itself is killed,
its members die with it (their tasks do not).`,
		Example: `  hakuriver dev                 # one replica on :8000, one runner
  hakuriver dev --replicas 3 --data-dir ~/hr-dev
  hakuriver dev kill leader     # in another shell: the others elect a new one
  hakuriver dev restart host-1  # start it again (it catches up)
  hakuriver dev pause runner-1  # SIGSTOP; resume sends SIGCONT`,
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
			temp := dataDir == ""
			if temp && keepTasks {
				return errors.New("--keep-tasks needs --data-dir: a temporary data dir, and the tasks' state with it, is removed on exit")
			}
			if temp {
				if dataDir, err = os.MkdirTemp("", "hakuriver-dev-"); err != nil {
					return fmt.Errorf("create temp data dir: %w", err)
				}
			} else {
				if dataDir, err = filepath.Abs(dataDir); err != nil {
					return fmt.Errorf("--data-dir: %w", err)
				}
				if err := os.MkdirAll(dataDir, 0o700); err != nil {
					return fmt.Errorf("create --data-dir: %w", err)
				}
			}
			ctx := cmd.Context()
			return runDev(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), log, devOptions{
				dir: dataDir, temp: temp, replicas: replicas, runners: runners, apiPort: apiPort,
				apiChanged: cmd.Flags().Changed("api-port"), logLevel: logs.level, logFormat: logs.format, tls: useTLS,
				withEnvs: withEnvs, keepTasks: keepTasks,
			})
		},
	}
	cmd.Flags().IntVar(&replicas, "replicas", 1, "number of host replicas (fixed for a --data-dir by its first run)")
	cmd.Flags().IntVar(&runners, "runners", 1, "number of runner agents (native executor)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep state here (created when missing) instead of a temporary directory")
	cmd.Flags().IntVar(&apiPort, "api-port", 8000, "API port of the first replica; replica i uses this + i (a kept --data-dir keeps its ports unless this is given)")
	logs.bind(cmd.Flags(), "warn")
	cmd.Flags().BoolVar(&useTLS, "tls", false, "serve the APIs over HTTPS and Raft over TLS, with certificates of a CA made in <data-dir>/tls (the export line names it)")
	cmd.Flags().BoolVar(&withEnvs, "docker-environments", true, "serve Docker environments (containers, tarballs, terminal) from this machine's Docker Engine; without Docker their calls answer 503")
	cmd.Flags().BoolVar(&keepTasks, "keep-tasks", false, "on Ctrl-C leave the native tasks running (the runners adopt them when dev starts again on this --data-dir)")
	restart := "Stop the member (SIGTERM, SIGKILL after 15s) if it runs, start it again with\nthe same config and data, and wait until it serves its port."
	cmd.AddCommand(
		newDevStatusCmd(g),
		newDevMemberCmd(g, "kill", "SIGKILL a member of the running dev cluster (a crash)", "SIGKILL the member's process, as a crash would. It stays down until\n`hakuriver dev restart <member>`. Same as kill -9 <pid>."),
		newDevMemberCmd(g, "restart", "Start a member of the running dev cluster again (stopping it first if it runs)", restart),
		newDevMemberCmd(g, "pause", "SIGSTOP a member of the running dev cluster (a frozen process)", "Freeze the member's process with SIGSTOP: it holds its ports but answers\nnothing, as a hung machine. Same as kill -STOP <pid>."),
		newDevMemberCmd(g, "resume", "SIGCONT a paused member of the running dev cluster", "Thaw a paused member with SIGCONT. Same as kill -CONT <pid>."),
	)
	return cmd
}

// devOptions are the settings of one dev run.
type devOptions struct {
	dir        string
	temp       bool
	replicas   int
	runners    int
	apiPort    int
	apiChanged bool
	logLevel   string
	logFormat  string
	tls        bool
	withEnvs   bool
	keepTasks  bool
}

// runDev runs the dev cluster in o.dir until ctx ends, then stops it.
func runDev(ctx context.Context, out, errOut io.Writer, log *slog.Logger, o devOptions) (err error) {
	if o.temp {
		defer os.RemoveAll(o.dir) // after the members stopped (deferred below)
	}
	old, err := loadDevState(o.dir)
	if err != nil {
		return err
	}
	if old != nil && old.PID != 0 && old.Control != "" {
		if c, derr := net.DialTimeout("unix", old.Control, time.Second); derr == nil {
			c.Close()
			return fmt.Errorf("a dev cluster already runs in %s (pid %d): stop it first, or use another --data-dir", o.dir, old.PID)
		}
	}
	st, err := planDev(o.dir, old, o.replicas, o.runners, o.apiPort, o.apiChanged, o.tls)
	if err != nil {
		return err
	}
	for _, sub := range []string{"config", "logs", "shared"} {
		if err := os.MkdirAll(filepath.Join(o.dir, sub), 0o700); err != nil {
			return fmt.Errorf("create %s: %w", sub, err)
		}
	}
	tokenFile := filepath.Join(o.dir, "cluster-token")
	if b, rerr := os.ReadFile(tokenFile); rerr != nil || strings.TrimSpace(string(b)) == "" {
		if err := os.WriteFile(tokenFile, []byte(newToken()+"\n"), 0o600); err != nil {
			return fmt.Errorf("write cluster token: %w", err)
		}
	}
	// With TLS every node gets a certificate of a CA kept in
	// <data-dir>/tls (made once, reused on a kept --data-dir).
	tlsDir := filepath.Join(o.dir, "tls")
	var clientTLS *tls.Config
	if st.TLS {
		var nodes []string
		for _, m := range st.Members {
			nodes = append(nodes, m.NodeID)
		}
		if _, err := certs.Init(tlsDir, certs.InitOptions{Nodes: nodes}); err != nil {
			return err
		}
		if clientTLS, err = certs.ClientTLS(filepath.Join(tlsDir, certs.CAFile)); err != nil {
			return err
		}
	}
	bin := os.Getenv(devBinEnv)
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("find the hakuriver binary: %w", err)
		}
	}
	s := &devSupervisor{
		bin: bin, logLevel: o.logLevel, logFormat: o.logFormat, withEnvs: o.withEnvs, tokenFile: tokenFile, tlsDir: tlsDir,
		clientTLS: clientTLS, stderr: errOut, log: log, state: st, procs: map[string]*devProc{},
	}
	if err := s.writeConfigs(); err != nil {
		return err
	}
	st.PID, st.Control = os.Getpid(), controlPath(o.dir)
	stopControl, err := s.serveControl(ctx, st.Control)
	if err != nil {
		return err
	}
	defer func() {
		stopControl()
		s.shutdown(o.keepTasks)
		s.mu.Lock()
		st.PID, st.Control = 0, ""
		if !o.temp {
			s.saveLocked()
		}
		s.mu.Unlock()
	}()
	rememberDevDir(o.dir)
	// startAll starts every member of kind, in order, and records them.
	startAll := func(kind string) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		var err error
		for _, m := range st.Members {
			if m.Kind == kind {
				if err = s.start(m); err != nil {
					break
				}
			}
		}
		s.saveLocked()
		return err
	}
	if err = startAll(kindHost); err != nil {
		return err
	}
	leader, err := s.waitLeader(ctx, 60*time.Second)
	if ctx.Err() != nil {
		return nil // stopped while starting
	}
	if err != nil {
		return err
	}
	if err = startAll(kindRunner); err != nil {
		return err
	}
	var urls []string
	for _, m := range st.replicas() {
		urls = append(urls, m.url(st.TLS))
	}
	admin, err := devAdminToken(ctx, urls, strings.TrimSpace(readFileString(tokenFile)), filepath.Join(o.dir, "admin-token"), clientTLS)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, m := range st.Members {
		if m.Kind == kindHost {
			role := "follower"
			if m.NodeID == leader {
				role = "leader"
			}
			fmt.Fprintf(out, "replica %s  api %s  raft %s  gossip %s  ssh-proxy %s  pid %d  member %s  (%s)\n",
				m.NodeID, m.url(st.TLS), addr(m.RaftPort), addr(m.GossipPort), addr(m.SSHProxyPort), m.PID, m.Name, role)
		} else {
			fmt.Fprintf(out, "runner  %s  api %s  gossip %s  pid %d  member %s\n",
				m.NodeID, m.url(st.TLS), addr(m.GossipPort), m.PID, m.Name)
		}
	}
	s.mu.Unlock()
	caExport := ""
	if st.TLS {
		caExport = " HAKURIVER_CA_FILE=" + filepath.Join(tlsDir, certs.CAFile)
	}
	where := "data in " + o.dir
	if o.temp {
		where += " (temporary: removed on exit; --data-dir keeps it)"
	}
	fmt.Fprintf(out, "dev pid %d; %s\n%s\n\nReady. In another shell:\n  export HAKURIVER_HOST=%s HAKURIVER_TOKEN_FILE=%s HAKURIVER_TOKEN=%s%s %s=%s\n  hakuriver cluster status\n  hakuriver dev kill leader   # then: hakuriver dev restart <member>\nCtrl-C stops every member.\n",
		os.Getpid(), "state in "+filepath.Join(o.dir, devStateFile), where, strings.Join(urls, ","), tokenFile, admin, caExport, devDirEnv, o.dir)
	<-ctx.Done()
	return nil
}

// devBinEnv overrides the binary dev runs its members with (default: its
// own executable).
const devBinEnv = "HAKURIVER_DEV_BIN"

// readFileString returns the file's content, "" when unreadable.
func readFileString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
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
