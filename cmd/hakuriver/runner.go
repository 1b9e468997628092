package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hakuriver/hakuriver-ha/ops/config"
	"github.com/hakuriver/hakuriver-ha/runner"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
	"github.com/hakuriver/hakuriver-ha/runner/executor/native"
	"github.com/hakuriver/hakuriver-ha/runner/statedir"
)

func newRunnerCmd() *cobra.Command {
	var (
		sf       = serverFlags{configLogFile: func(c config.Config) string { return c.Paths.RunnerLogFile }}
		scratch  config.Config
		name     string
		cores    int
		memory   string
		hosts    []string
		noCgroup bool
		fast     bool
		noDocker bool
	)
	cmd := &cobra.Command{
		Use:   "runner",
		Short: "Run the agent of a compute node",
		Long: `Run the runner agent: it finds the host replicas through gossip (--join, any
host or runner), registers this machine's cores, memory, NUMA nodes and GPUs,
heartbeats, and runs the tasks the leader sends it. Native tasks run under a
per-task supervisor with cgroup limits and survive a restart of the runner.
Flags mirror the config keys ([network] runner_address/runner_port,
[paths] shared_dir/local_temp_dir/runner_state_dir, [cluster] gossip_port/join, ...).

The runner keeps its own state (native task records, the Docker executor's
log positions, tombstones of finished tasks, its installation ID) in
runner_state_dir (mode 0700, locked while the runner runs), never in
local_temp_dir, which every task sees: it refuses to start when the two
overlap, when runner_state_dir is inside shared_dir, or when another runner
holds it.`,
		Example: `  hakuriver runner --name node1 --join 10.0.0.1:7946 --runner-address 10.0.0.11 \
    --shared-dir /mnt/shared --local-temp-dir /var/lib/hakuriver/temp \
    --runner-state-dir /var/lib/hakuriver/runner --cluster-token-file /etc/hakuriver.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// What the runner inherited reaches none of the processes it
			// starts (supervisors, copy helpers, tasks).
			executor.CloseInheritedOnExec()
			c, log, err := sf.resolve(cmd)
			if err != nil {
				return err
			}
			defer sf.closeLog()
			rc, err := runnerConfig(c, log, name)
			if err != nil {
				return err
			}
			rc.Cores = cores
			if memory != "" {
				if rc.MemoryBytes, err = parseMemory(memory); err != nil {
					return fmt.Errorf("--memory: %w", err)
				}
			}
			rc.Hosts = hosts
			rc.FastGossip = fast
			sd, err := openStateDir(c.Paths.RunnerStateDir, rc, c.Docker.AdditionalMounts)
			if err != nil {
				return err
			}
			defer sd.Close() //nolint:errcheck // releasing the lock on the way out; exiting releases it too
			warnOldLayout(log, rc.LocalTempDir)
			if !noDocker {
				dockerEx, closeDocker, err := newDockerExecutor(cmd.Context(), rc, c.Docker, sd)
				if err != nil {
					return err
				}
				defer closeDocker()
				rc.Docker = dockerEx
			}
			a, stop, err := startRunner(cmd.Context(), rc, sd, noCgroup)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "runner %s: api %s gossip %s\n", a.Name(), a.URL(), a.GossipAddr())
			<-cmd.Context().Done()
			return stop()
		},
	}
	sf.bind(cmd)
	config.BindFlags(cmd.Flags(), &scratch)
	cmd.Flags().StringVar(&name, "name", "", "node name (default: hostname)")
	cmd.Flags().IntVar(&cores, "cores", 0, "cores to offer (default: detected)")
	cmd.Flags().StringVar(&memory, "memory", "", "memory to offer, e.g. 8G (default: detected)")
	cmd.Flags().StringSliceVar(&hosts, "host-api", nil, "host API URLs to use before gossip finds replicas (optional)")
	cmd.Flags().BoolVar(&noCgroup, "no-cgroups", false, "run native tasks without cgroup limits")
	bindDevFlags(cmd, &fast)
	cmd.Flags().BoolVar(&noDocker, "no-docker", false, "run without the Docker executor, as `hakuriver dev` runners do")
	cmd.Flags().MarkHidden("no-docker") //nolint:errcheck // the flag exists
	return cmd
}

// runnerConfig maps the file/flag config onto the agent's Config (without
// executors).
func runnerConfig(c config.Config, log *slog.Logger, name string) (runner.Config, error) {
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return runner.Config{}, fmt.Errorf("hostname: %w", err)
		}
		name = h
	}
	key, token, err := secrets(c)
	if err != nil {
		return runner.Config{}, err
	}
	rc := runner.DefaultConfig()
	rc.Name = name
	rc.BindAddr = c.Network.HostBindIP
	rc.AdvertiseAddr = c.Network.RunnerAddress
	if rc.AdvertiseAddr == "" {
		rc.AdvertiseAddr = c.Network.HostReachableAddress
	}
	rc.Port = c.Network.RunnerPort
	rc.GossipPort = c.Cluster.GossipPort
	rc.Join = c.Cluster.Join
	rc.GossipKey = key
	rc.Token, rc.InsecureNoToken = token, c.Cluster.InsecureNoToken
	if rc.TLS, err = tlsBundle(c); err != nil {
		return runner.Config{}, err
	}
	rc.SharedDir = c.Paths.SharedDir
	rc.LocalTempDir = c.Paths.LocalTempDir
	rc.HeartbeatInterval = c.Timing.HeartbeatPeriod()
	rc.RunnerUser = c.Environment.RunnerUser
	rc.Version = version
	rc.Logger = log
	return rc, nil
}

// openStateDir opens and locks the runner's private state directory,
// refusing one that overlaps a directory tasks can reach: local_temp_dir,
// shared_dir or the source of an additional_mounts entry.
func openStateDir(path string, rc runner.Config, additionalMounts []string) (*statedir.Dir, error) {
	areas := []statedir.Area{{Key: "local_temp_dir", Path: rc.LocalTempDir}, {Key: "shared_dir", Path: rc.SharedDir}}
	for _, m := range additionalMounts {
		if src, _, ok := strings.Cut(m, ":"); ok && filepath.IsAbs(src) {
			areas = append(areas, statedir.Area{Key: "docker.additional_mounts", Path: src})
		}
	}
	sd, err := statedir.Open(path, areas...)
	if err != nil {
		return nil, fmt.Errorf("runner state: %w", err)
	}
	return sd, nil
}

// warnOldLayout says so when local_temp_dir holds the state of a runner
// from before runner_state_dir: it is ignored, never trusted (a task could
// have written it), so that runner's tasks are not adopted.
func warnOldLayout(log *slog.Logger, localTemp string) {
	for _, name := range []string{"runner-id", statedir.NativeTasks, statedir.DockerTasks, statedir.Finished} {
		if _, err := os.Lstat(filepath.Join(localTemp, name)); err == nil && log != nil {
			log.Warn("local_temp_dir holds runner state of an older version; it is ignored (tasks can write there), see the README's upgrade note",
				"path", filepath.Join(localTemp, name))
		}
	}
}

// startRunner creates the native executor over the state directory sd and
// starts the agent; stop closes the agent (sd stays open: the caller
// closes it after).
func startRunner(ctx context.Context, rc runner.Config, sd *statedir.Dir, noCgroups bool) (*runner.Agent, func() error, error) {
	tmp, err := filepath.Abs(rc.LocalTempDir)
	if err != nil {
		return nil, nil, fmt.Errorf("local_temp_dir: %w", err)
	}
	rc.LocalTempDir = tmp
	if rc.SharedDir, err = filepath.Abs(rc.SharedDir); err != nil {
		return nil, nil, fmt.Errorf("shared_dir: %w", err)
	}
	rc.StateDir = sd.Path()
	nc := native.DefaultConfig()
	nc.StateDir = sd.Join(statedir.NativeTasks)
	nc.DisableCgroups = noCgroups
	nc.Logger = rc.Logger
	ex, err := native.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("native executor: %w", err)
	}
	rc.Native = ex
	rc.NativeLimited = ex.Limited()
	a, err := runner.Start(ctx, rc)
	if err != nil {
		ex.Close() //nolint:errcheck // the start error is the one to report
		return nil, nil, err
	}
	stop := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := a.Close(sctx)
		return errors.Join(err, ex.Close()) // idle warm supervisors only: tasks go on
	}
	return a, stop, nil
}
