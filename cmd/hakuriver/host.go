package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/cluster"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/certs"
	"github.com/hakuriver/hakuriver-ha/ops/config"
	"github.com/hakuriver/hakuriver-ha/runner/executor/docker"
)

// version is the binary's version, reported in gossip and /api/cluster.
const version = "0.1.0"

// configEnv names the environment variable that selects the config file.
const configEnv = "HAKURIVER_CONFIG"

// serverFlags are the flags shared by long-running server commands.
type serverFlags struct {
	configPath string
	log        logFlags
	// configLogFile is the config's log file of this command
	// (paths.host_log_file or runner_log_file), used without --log-file;
	// nil for a command that is not a service (it also keeps SIGHUP's
	// default then).
	configLogFile func(config.Config) string
	// closeLog stops the log file's SIGHUP handling and closes it (set by
	// resolve; the command defers it).
	closeLog func()
}

func (s *serverFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&s.configPath, "config", "c", "", "TOML config file (default $"+configEnv+"); flags override its keys")
	s.log.bind(cmd.Flags(), "info")
}

// resolve loads the config file, applies the changed flags on top and
// opens the logger; the caller defers s.closeLog.
func (s *serverFlags) resolve(cmd *cobra.Command) (config.Config, *slog.Logger, error) {
	s.closeLog = func() {}
	path := s.configPath
	if path == "" {
		path = os.Getenv(configEnv)
	}
	c, err := config.Resolve(cmd.Flags(), path)
	if err != nil {
		return config.Config{}, nil, err
	}
	if s.log.file == "" && s.configLogFile != nil {
		s.log.file = s.configLogFile(c)
	}
	log, closeLog, err := s.log.open(cmd.Context())
	if err != nil {
		return config.Config{}, nil, err
	}
	s.closeLog = closeLog
	if s.log.file == "" && s.configLogFile != nil {
		// A service's SIGHUP means "reopen your log" (logrotate sends
		// it to both services); without a file there is nothing to
		// reopen, and it must not stop the process.
		s.closeLog = ignoreHangup(cmd.Context(), log, closeLog)
	}
	return c, log, nil
}

func newHostCmd() *cobra.Command {
	sf := serverFlags{configLogFile: func(c config.Config) string { return c.Paths.HostLogFile }}
	var scratch config.Config
	var fastGossip, noEnvs bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Run a host replica (Raft member, REST API, SSH proxy)",
		Long: `Run one host replica. Replicas find each other through gossip (--join, which
may list this replica itself so all replicas can share one config) and
bootstrap the Raft group once --bootstrap-expect of them see each other. A
replica started later with --join is added to the running cluster as a voter.
A restarted replica rejoins from its --data-dir without any flag changing.

A replica refuses to start without the cluster token (cluster_token or
cluster_token_file, --cluster-token-file) unless --insecure-no-token is
given, which accepts internal calls and membership changes from anyone.`,
		Example: `  # three replicas on one machine, sharing one cluster token
  head -c 32 /dev/urandom | base64 > /tmp/hakuriver.token
  hakuriver host --node-id h1 --data-dir /tmp/h1 --bind 127.0.0.1 --api-port 8000 --raft-port 8300 --gossip-port 7946 --bootstrap-expect 3 --join 127.0.0.1:7946 --cluster-token-file /tmp/hakuriver.token
  hakuriver host --node-id h2 --data-dir /tmp/h2 --bind 127.0.0.1 --api-port 8001 --raft-port 8301 --gossip-port 7947 --bootstrap-expect 3 --join 127.0.0.1:7946 --cluster-token-file /tmp/hakuriver.token
  hakuriver host --node-id h3 --data-dir /tmp/h3 --bind 127.0.0.1 --api-port 8002 --raft-port 8302 --gossip-port 7948 --bootstrap-expect 3 --join 127.0.0.1:7946 --cluster-token-file /tmp/hakuriver.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, log, err := sf.resolve(cmd)
			if err != nil {
				return err
			}
			defer sf.closeLog()
			hc, envs, err := hostConfig(c, log)
			if err != nil {
				return err
			}
			defer envs.Close() //nolint:errcheck // closing on the way out
			hc.FastGossip = fastGossip
			if noEnvs {
				hc.Docker = nil
			}
			// A replica whose state machine halts (a log entry it cannot
			// apply) shuts down and exits non-zero.
			halt := make(chan error, 1)
			hc.OnHalt = func(err error) { halt <- err }
			if cpuProfile != "" {
				stop, err := startCPUProfile(filepath.Join(cpuProfile, hc.NodeID+".cpu.pprof"))
				if err != nil {
					return err
				}
				defer stop()
			}
			h, err := cluster.StartHost(cmd.Context(), hc)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "host %s: api %s raft %s gossip %s\n", h.NodeID(), h.APIURL(), h.RaftAddr(), h.GossipAddr())
			var haltErr error
			select {
			case <-cmd.Context().Done():
			case haltErr = <-halt:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := h.Close(ctx); err != nil && haltErr == nil {
				return err
			}
			if haltErr != nil {
				return fmt.Errorf("replica %s stopped: %w", h.NodeID(), haltErr)
			}
			return nil
		},
	}
	sf.bind(cmd)
	config.BindFlags(cmd.Flags(), &scratch)
	bindDevFlags(cmd, &fastGossip)
	cmd.Flags().BoolVar(&noEnvs, "no-docker-environments", false, "answer 503 to Docker environment calls instead of serving them (dev)")
	cmd.Flags().MarkHidden("no-docker-environments") //nolint:errcheck // the flag exists
	cmd.Flags().StringVar(&cpuProfile, "cpu-profile-dir", "", "write a Go CPU profile of this replica to `DIR`/<node-id>.cpu.pprof until it stops (for `go tool pprof`)")
	cmd.Flags().MarkHidden("cpu-profile-dir") //nolint:errcheck // the flag exists
	cmd.AddCommand(newHostCompactCmd())
	return cmd
}

// bindDevFlags adds the hidden --fast-gossip flag `hakuriver dev` starts
// its members with.
func bindDevFlags(cmd *cobra.Command, fast *bool) {
	cmd.Flags().BoolVar(fast, "fast-gossip", false, "shorten gossip intervals (loopback clusters of `hakuriver dev`)")
	cmd.Flags().MarkHidden("fast-gossip") //nolint:errcheck // the flag exists
}

// hostConfig maps the file/flag config onto the replica's own Config,
// with the Docker environment manager it wires in (the caller closes it).
func hostConfig(c config.Config, log *slog.Logger) (cluster.Config, *docker.Manager, error) {
	id, err := c.NodeID()
	if err != nil {
		return cluster.Config{}, nil, err
	}
	key, token, err := secrets(c)
	if err != nil {
		return cluster.Config{}, nil, err
	}
	hc := cluster.DefaultConfig()
	hc.NodeID = id
	hc.DataDir = c.Cluster.DataDir
	hc.BindAddr = c.Network.HostBindIP
	hc.AdvertiseAddr = c.Network.HostReachableAddress
	hc.APIPort = c.Network.HostPort
	hc.RaftPort = c.Cluster.RaftPort
	hc.GossipPort = c.Cluster.GossipPort
	hc.SSHProxyPort = c.Network.HostSSHProxyPort
	hc.BootstrapExpect = c.Cluster.BootstrapExpect
	hc.Join = c.Cluster.Join
	hc.GossipKey = key
	hc.ClusterToken = token
	hc.InsecureNoToken = c.Cluster.InsecureNoToken
	if hc.TLS, err = tlsBundle(c); err != nil {
		return cluster.Config{}, nil, err
	}
	if r := c.Auth.AnonymousRole; r != "none" {
		hc.AnonymousRole = fsm.Role(r)
	}
	hc.AuditKeep = c.Auth.AuditKeep
	hc.AuditMaxAge = time.Duration(c.Auth.AuditMaxAgeDays) * 24 * time.Hour
	hc.VPSIdleStop = time.Duration(c.VPS.IdleStopSeconds) * time.Second
	hc.SharedDir = c.Paths.SharedDir
	hc.MaxListTasks = c.Cluster.MaxListTasks
	hc.LeaderWait = c.Cluster.LeaderWait()
	hc.BackupDir = c.Cluster.BackupDir
	hc.BackupInterval = time.Duration(c.Cluster.BackupInterval) * time.Second
	hc.BackupKeep = c.Cluster.BackupKeep
	minFree, err := c.Cluster.MinFreeDiskBytes()
	if err != nil {
		return cluster.Config{}, nil, err
	}
	hc.MinFreeDisk = uint64(minFree)
	hc.RaftMultiplier = c.Cluster.RaftMultiplier
	hc.HistoryKeep = time.Duration(c.Cluster.HistoryKeepDays) * 24 * time.Hour
	hc.HistoryKeepTasks = c.Cluster.HistoryKeepTasks
	hc.ArchiveInterval = time.Duration(c.Cluster.HistoryArchiveInterval) * time.Second
	hc.SnapshotThreshold = uint64(c.Cluster.RaftSnapshotThreshold)
	hc.SnapshotInterval = time.Duration(c.Cluster.RaftSnapshotInterval) * time.Second
	hc.HeartbeatInterval = c.Timing.HeartbeatPeriod()
	hc.HeartbeatTimeoutFactor = c.Timing.HeartbeatTimeoutFactor
	hc.DefaultContainer = c.Docker.DefaultContainerName
	hc.TasksPrivileged = c.Docker.TasksPrivileged
	hc.AdditionalMounts = c.Docker.AdditionalMounts
	hc.ContainerDir = c.Docker.ContainerDir
	if hc.Notify, err = notifyConfig(c.Notify); err != nil {
		return cluster.Config{}, nil, err
	}
	envs, err := newEnvManager(c, log)
	if err != nil {
		return cluster.Config{}, nil, err
	}
	hc.Docker = dockerEnvironments{envs}
	hc.Version = version
	hc.Logger = log
	return hc, envs, nil
}

// tlsBundle loads the [tls] files, or returns nil when none is set.
func tlsBundle(c config.Config) (*certs.Bundle, error) {
	if !c.TLS.Enabled() {
		return nil, nil
	}
	return certs.Load(c.TLS.CertFile, c.TLS.KeyFile, c.TLS.CAFile)
}

// errNoToken is the error of a host or runner started without a cluster
// token and without --insecure-no-token.
var errNoToken = errors.New("no cluster token: set cluster_token or cluster_token_file in the config " +
	"(flags --cluster-token, --cluster-token-file), or pass --insecure-no-token (config insecure_no_token) " +
	"to accept unauthenticated internal calls and membership changes")

// secrets reads the gossip key and the cluster token that hosts and runners
// both need. A missing token is an error unless insecure_no_token is set.
func secrets(c config.Config) (gossipKey []byte, token string, err error) {
	if gossipKey, err = c.GossipKey(); err != nil {
		return nil, "", err
	}
	if token, err = c.ClusterToken(); err != nil {
		return nil, "", err
	}
	if token == "" && !c.Cluster.InsecureNoToken {
		return nil, "", errNoToken
	}
	return gossipKey, token, nil
}

// notifyConfig maps the [notify] section (webhooks) onto the replica's.
func notifyConfig(n config.Notify) (cluster.NotifyConfig, error) {
	secret, err := n.Secret()
	if err != nil {
		return cluster.NotifyConfig{}, err
	}
	return cluster.NotifyConfig{
		Webhooks:    n.WebhookURLs,
		AllEvents:   n.WebhookEvents == "all",
		Secret:      []byte(secret),
		Allow:       n.WebhookAllow,
		MaxAttempts: n.WebhookMaxAttempts,
		Timeout:     time.Duration(n.WebhookTimeout) * time.Second,
	}, nil
}

// startCPUProfile writes a CPU profile to path until the returned function
// is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
