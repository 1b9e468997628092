package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hakuriver/hakuriver-ha/cluster"
	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/config"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
	"github.com/hakuriver/hakuriver-ha/ops/systemd"
	"github.com/hakuriver/hakuriver-ha/runner/statedir"
)

// tokenFlags name the cluster token and the config file that may hold it:
// doctor and the membership commands read the token alike (resolveToken).
type tokenFlags struct {
	token      string
	tokenFile  string
	configPath string
}

// bind registers --token, --token-file and --config (-c); what says what the
// token is needed for.
func (f *tokenFlags) bind(fl *pflag.FlagSet, what string) {
	fl.StringVar(&f.token, "token", "", "cluster token for "+what)
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the cluster token (default $"+tokenFileEnv+")")
	fl.StringVarP(&f.configPath, "config", "c", "", "config file: token, host address and paths (default $"+configEnv+")")
}

// doctorFlags are the flags of "hakuriver doctor".
type doctorFlags struct {
	tokenFlags
	local        bool
	role         string
	probeTimeout time.Duration
}

func newDoctorCmd(g *clientFlags) *cobra.Command {
	var f doctorFlags
	cmd := &cobra.Command{
		Use:   "doctor [--token T | --token-file F] [--config F] | doctor --local [--config F] [--role host|runner]",
		Short: "Diagnose the cluster from every member's point of view (or, with --local, this machine)",
		Long: `Gather every member's view and print one report: addresses and ports,
reachability of every path from the side that opens it (runner→host API,
host→runner API, replica↔replica Raft and API, gossip, client→host API and
SSH proxy, host→VPS ports) with DNS and connect times, permissions of every
directory as the user each process runs as, the Docker socket, cgroups,
runner_user, executables, free disk, shared storage proven by a probe file
one replica writes and every other member reads back, and health: Raft
leader and lag, runner heartbeats, versions and clock skew.

Internal endpoints need the cluster token: --token, --token-file,
$HAKURIVER_TOKEN_FILE, or the cluster_token(_file) of --config. Exits 1 when any check fails.

--local checks only this machine from its config file, without any cluster:
for a node that will not even start.`,
		Example: `  hakuriver doctor --host http://10.0.0.1:8000 --token-file /etc/hakuriver/token
  hakuriver doctor --config /etc/hakuriver/config.toml -o json
  hakuriver doctor --local --config /etc/hakuriver/config.toml --role runner`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			if f.local {
				return runLocalDoctor(cmd, f, format)
			}
			return runClusterDoctor(cmd, g, f)
		},
	}
	fl := cmd.Flags()
	f.bind(fl, "the internal doctor endpoints")
	fl.BoolVar(&f.local, "local", false, "check only this machine from its config, no cluster needed")
	fl.StringVar(&f.role, "role", "", "with --local: host or runner (default: host when data_dir holds raft.db)")
	fl.DurationVar(&f.probeTimeout, "probe-timeout", doctor.DefaultProbeTimeout, "time limit of each reachability probe")
	return cmd
}

// loadConfig loads --config (or $HAKURIVER_CONFIG); it returns the defaults
// and "" when neither names a file.
func (f tokenFlags) loadConfig() (config.Config, string, error) {
	path := f.configPath
	if path == "" {
		path = os.Getenv(configEnv)
	}
	c, err := config.LoadOptional(path)
	return c, path, err
}

// tokenFileEnv names the environment variable that points at a file holding
// the cluster token (hakuriver dev prints it).
const tokenFileEnv = "HAKURIVER_TOKEN_FILE"

// resolveToken returns --token, else --token-file's (or
// $HAKURIVER_TOKEN_FILE's) content, else the config's token.
func (f tokenFlags) resolveToken(c config.Config) (string, error) {
	switch {
	case f.token != "" && f.tokenFile != "":
		return "", errors.New("--token and --token-file: give only one")
	case f.token != "":
		return f.token, nil
	case f.tokenFile == "" && os.Getenv(tokenFileEnv) != "":
		f.tokenFile = os.Getenv(tokenFileEnv)
		return f.resolveToken(c)
	case f.tokenFile != "":
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return "", fmt.Errorf("read --token-file: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("--token-file %s: empty", f.tokenFile)
	}
	return c.ClusterToken()
}

func runClusterDoctor(cmd *cobra.Command, g *clientFlags, f doctorFlags) error {
	c, path, err := f.loadConfig()
	if err != nil {
		return err
	}
	token, err := f.resolveToken(c)
	if err != nil {
		return err
	}
	if f.probeTimeout <= 0 {
		return fmt.Errorf("invalid --probe-timeout %s: must be positive", f.probeTimeout)
	}
	gg := *g
	scheme := "http://"
	if c.TLS.Enabled() {
		// The config's CA verifies the cluster unless --ca-file names one.
		scheme = "https://"
		if gg.caFile == "" && os.Getenv(caFileEnv) == "" {
			gg.caFile = c.TLS.CAFile
		}
	}
	if len(gg.hosts) == 0 && os.Getenv(hostEnv) == "" && path != "" {
		gg.hosts = []string{scheme + net.JoinHostPort(c.Network.HostReachableAddress, strconv.Itoa(c.Network.HostPort))}
	}
	tlsConfig, err := gg.tlsConfig()
	if err != nil {
		return err
	}
	return gg.withClient(cmd, func(ctx context.Context, client *api.Client, format string) error {
		d := &doctorRun{
			client:       client,
			hosts:        client.Hosts(),
			tls:          tlsConfig,
			token:        token,
			bearer:       g.accountToken(),
			probeTimeout: f.probeTimeout,
			heartbeat:    c.Timing.HeartbeatPeriod(),
		}
		if d.heartbeat <= 0 {
			d.heartbeat = config.Default().Timing.HeartbeatPeriod()
		}
		return renderDoctor(cmd.OutOrStdout(), d.run(ctx), format)
	})
}

// renderDoctor prints out in format and turns failed checks into exit code 1.
func renderDoctor(w io.Writer, out doctor.ClusterReport, format string) error {
	var err error
	if format == outputJSON {
		err = printJSON(w, out)
	} else {
		err = printDoctor(w, out)
	}
	if err != nil {
		return err
	}
	if out.Summary.Fail > 0 {
		total := out.Summary.OK + out.Summary.Warn + out.Summary.Fail
		return &exitCodeError{code: 1, msg: fmt.Sprintf("doctor: %d of %d checks failed", out.Summary.Fail, total)}
	}
	return nil
}

// printDoctor writes the NODE CHECK STATUS MEASURED CAUSE table, grouped by
// member, and a summary line.
func printDoctor(w io.Writer, out doctor.ClusterReport) error {
	tw := newTable(w)
	row(tw, "NODE", "CHECK", "STATUS", "MEASURED", "CAUSE")
	for _, m := range out.Members {
		for _, c := range m.Checks {
			cause := ""
			if c.Status != doctor.StatusOK {
				cause = c.Cause
			}
			row(tw, m.Node, c.Name, string(c.Status), orDash(c.Measured), orDash(cause))
		}
	}
	if err := flushTable(tw); err != nil {
		return err
	}
	noun := "members"
	if len(out.Members) == 1 {
		noun = "member"
	}
	_, err := fmt.Fprintf(w, "\n%d %s: %s (%.1fs)\n", len(out.Members), noun, out.Summary, out.ElapsedMS/1000)
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// runLocalDoctor runs the local checks of this machine from its config.
func runLocalDoctor(cmd *cobra.Command, f doctorFlags, format string) error {
	start := time.Now()
	c, path, err := f.loadConfig()
	if err != nil {
		rep := doctor.Report{Node: "local", Role: f.role, Version: version, Time: time.Now(),
			Checks: []doctor.Check{{Name: "config", Status: doctor.StatusFail, Measured: err.Error(),
				Cause: "the node cannot start with this config: fix the keys named above (hakuriver config check)"}}}
		return renderDoctor(cmd.OutOrStdout(), doctor.Summarise([]doctor.Report{rep}, start, time.Now()), format)
	}
	role := f.role
	switch role {
	case "":
		role = "runner"
		if _, err := os.Stat(filepath.Join(c.Cluster.DataDir, "raft.db")); err == nil {
			role = "host"
		}
	case "host", "runner":
	default:
		return fmt.Errorf("invalid --role %q: want host or runner", role)
	}
	id, err := c.NodeID()
	if err != nil {
		id = "local"
	}
	token, _ := c.ClusterToken() //nolint:errcheck // an unreadable token file is reported by its path check
	l := localFromConfig(c, role, path)
	l.Token = token
	rep := doctor.Report{Node: id, Role: role, Version: version, SharedDir: c.Paths.SharedDir,
		Checks: []doctor.Check{doctor.TokenCheck(token, c.Cluster.InsecureNoToken)}}
	if c.TLS.Enabled() {
		if b, err := tlsBundle(c); err != nil {
			rep.Checks = append(rep.Checks, doctor.Check{Name: "tls certificate", Status: doctor.StatusFail, Measured: err.Error(),
				Cause: "the [tls] files cannot be used: fix the path or mode, or make them with hakuriver tls init"})
		} else {
			l.TLSVerify = b.Verify
		}
	}
	if role == "host" {
		minFree, err := c.Cluster.MinFreeDiskBytes()
		if err != nil {
			minFree = 0 // config.Load already refused a malformed value
		}
		rep.Checks = append(rep.Checks, cluster.StoreCheck(c.Cluster.DataDir, uint64(minFree)))
	}
	if role == "runner" {
		rep.Checks = append(rep.Checks, statedir.Doctor(c.Paths.RunnerStateDir, false,
			statedir.Area{Key: "local_temp_dir", Path: c.Paths.LocalTempDir}, statedir.Area{Key: "shared_dir", Path: c.Paths.SharedDir}))
	}
	rep = doctor.Run(cmd.Context(), l, doctor.Request{}, rep)
	return renderDoctor(cmd.OutOrStdout(), doctor.Summarise([]doctor.Report{rep}, start, time.Now()), format)
}

// localFromConfig maps the config file onto what the local checks of role
// look at, before the process starts (its ports must be free).
func localFromConfig(c config.Config, role, configPath string) doctor.Local {
	shared := c.Paths.SharedDir
	l := doctor.Local{BindAddr: c.Network.HostBindIP, ServiceUnit: systemd.UnitName(systemd.Role(role))}
	for _, j := range c.Cluster.Join {
		if h, _, err := net.SplitHostPort(j); err == nil && net.ParseIP(h) == nil {
			l.Hostnames = append(l.Hostnames, h)
		}
	}
	files := []doctor.Path{
		{Name: "config", Path: configPath},
		{Name: "cluster_token_file", Path: c.Cluster.TokenFile},
	}
	subdirs := func(write bool) []doctor.Path {
		return []doctor.Path{
			{Name: "shared_dir", Path: shared, Dir: true, Write: true, Disk: true},
			{Name: "task_outputs", Path: filepath.Join(shared, "task_outputs"), Dir: true, Write: write, Created: true},
			{Name: "task_errors", Path: filepath.Join(shared, "task_errors"), Dir: true, Write: write, Created: true},
			{Name: "container_dir", Path: filepath.Join(shared, c.Docker.ContainerDir), Dir: true, Write: true, Created: true},
		}
	}
	if role == "host" {
		l.AdvertiseAddr = c.Network.HostReachableAddress
		l.Ports = []doctor.Port{
			{Name: "api", Proto: "tcp", Port: c.Network.HostPort},
			{Name: "ssh proxy", Proto: "tcp", Port: c.Network.HostSSHProxyPort},
			{Name: "raft", Proto: "tcp", Port: c.Cluster.RaftPort},
			{Name: "gossip", Proto: "tcp", Port: c.Cluster.GossipPort},
			{Name: "gossip", Proto: "udp", Port: c.Cluster.GossipPort},
		}
		l.Paths = append(files, doctor.Path{Name: "data_dir", Path: c.Cluster.DataDir, Dir: true, Write: true, Created: true, Disk: true})
		l.Paths = append(l.Paths, subdirs(false)...)
		l.Paths = append(l.Paths, doctor.Path{Name: "host_log_file", Path: c.Paths.HostLogFile, Write: true})
		return l
	}
	l.AdvertiseAddr = c.Network.RunnerAddress
	if l.AdvertiseAddr == "" {
		l.AdvertiseAddr = c.Network.HostReachableAddress
	}
	l.Ports = []doctor.Port{
		{Name: "api", Proto: "tcp", Port: c.Network.RunnerPort},
		{Name: "gossip", Proto: "tcp", Port: c.Cluster.GossipPort},
		{Name: "gossip", Proto: "udp", Port: c.Cluster.GossipPort},
	}
	l.Paths = append(files, subdirs(true)...)
	l.Paths = append(l.Paths,
		doctor.Path{Name: "shared_data", Path: filepath.Join(shared, "shared_data"), Dir: true, Write: true, Created: true},
		doctor.Path{Name: "local_temp_dir", Path: c.Paths.LocalTempDir, Dir: true, Write: true, Created: true, Disk: true},
		doctor.Path{Name: "runner_log_file", Path: c.Paths.RunnerLogFile, Write: true})
	l.RunnerUser, l.CheckRunnerUser = c.Environment.RunnerUser, true
	l.DockerSocket = "/var/run/docker.sock"
	l.CgroupRoot, l.CgroupParent = "/sys/fs/cgroup", "hakuriver"
	l.Executables = []doctor.Executable{{Name: "docker", Why: "Docker tasks (debugging by hand)"}}
	if c.Paths.NumactlPath != "" {
		l.Executables = append(l.Executables, doctor.Executable{Name: "numactl", Path: c.Paths.NumactlPath, Required: true, Why: "NUMA binding (paths.numactl_path)"})
	}
	if gpuDriverPresent() {
		l.Executables = append(l.Executables, doctor.Executable{Name: "nvidia-smi", Required: true, Why: "GPU detection"})
	}
	return l
}

// gpuDriverPresent reports whether an NVIDIA driver is loaded here, so that
// GPUs are expected.
func gpuDriverPresent() bool {
	for _, p := range []string{"/proc/driver/nvidia", "/dev/nvidia0"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}
