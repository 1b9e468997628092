// Package config is the TOML configuration of HakuRiver HA: its schema, its
// defaults, loading with precise errors (file, line and key), validation, the
// command-line flags that override each key, and the commented default file.
//
// Only this package knows TOML. Composition roots (cmd, integration) load a
// Config here and map it onto the configs of the packages they start.
//
// Precedence: built-in defaults < the config file < flags the user set.
package config

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// Config is the whole configuration file of HakuRiver HA. It is a plain value:
// copying it copies everything except the backing arrays of its slices.
type Config struct {
	Network     Network     `toml:"network"`
	Paths       Paths       `toml:"paths"`
	Timing      Timing      `toml:"timing"`
	Environment Environment `toml:"environment"`
	Docker      Docker      `toml:"docker"`
	Cluster     Cluster     `toml:"cluster"`
	Auth        Auth        `toml:"auth"`
	TLS         TLS         `toml:"tls"`
	Notify      Notify      `toml:"notify"`
	VPS         VPS         `toml:"vps"`
}

// VPS is the [vps] section: the VPS lifecycle on host replicas.
type VPS struct {
	// IdleStopSeconds stops (and keeps) a running VPS once no SSH session
	// through any replica's SSH proxy has been open for this long (0 = off).
	IdleStopSeconds int `toml:"idle_stop"`
}

// Notify is the [notify] section: webhook notifications of task states,
// POSTed by the leader and signed with WebhookSecret.
type Notify struct {
	// WebhookURLs receive the events of every task (cluster-wide).
	WebhookURLs []string `toml:"webhook_urls"`
	// WebhookEvents is "final" (final states only, the default) or "all"
	// (every status change).
	WebhookEvents string `toml:"webhook_events"`
	// WebhookSecret signs every delivery (HMAC-SHA256); WebhookSecretFile
	// is a file holding it. One is required with WebhookURLs or
	// WebhookAllow.
	WebhookSecret     string `toml:"webhook_secret"`
	WebhookSecretFile string `toml:"webhook_secret_file"`
	// WebhookAllow lists the URL prefixes a task's own --notify URL may
	// start with; empty refuses per-task URLs.
	WebhookAllow []string `toml:"webhook_allow"`
	// WebhookMaxAttempts bounds the attempts of one delivery.
	WebhookMaxAttempts int `toml:"webhook_max_attempts"`
	// WebhookTimeout is the time limit of one attempt, in seconds.
	WebhookTimeout int `toml:"webhook_timeout"`
}

// Secret returns notify.webhook_secret, or else the trimmed contents of
// notify.webhook_secret_file ("" when neither is set).
func (n Notify) Secret() (string, error) {
	if n.WebhookSecret != "" || n.WebhookSecretFile == "" {
		return n.WebhookSecret, nil
	}
	b, err := os.ReadFile(n.WebhookSecretFile)
	if err != nil {
		return "", fmt.Errorf("read notify.webhook_secret_file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("notify.webhook_secret_file: %s: %w", n.WebhookSecretFile, ErrEmptyToken)
	}
	return s, nil
}

// TLS is the [tls] section: the node's certificate and the cluster CA. When
// set, a host serves its API over HTTPS only, a runner serves its API over
// HTTPS, Raft runs over mutually authenticated TLS, and every internal
// call verifies its peer against the CA. All three files or none.
type TLS struct {
	// CertFile is this node's certificate (PEM), signed by the CA.
	CertFile string `toml:"cert_file"`
	// KeyFile is the private key of CertFile (PEM).
	KeyFile string `toml:"key_file"`
	// CAFile is the cluster CA certificate (PEM) peers are verified against.
	CAFile string `toml:"ca_file"`
}

// Enabled reports whether TLS is configured (any of its files set).
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" }

// Auth is the [auth] section: accounts and the audit log.
type Auth struct {
	// AnonymousRole is what callers without a token may do: "none" (the
	// default), "viewer", "user" or "operator". "user" gives original
	// HakuRiver clients their open behaviour back.
	AnonymousRole string `toml:"anonymous_role"`
	// AuditKeep is how many audit records the cluster keeps (0 = no cap).
	AuditKeep int `toml:"audit_keep"`
	// AuditMaxAgeDays drops audit records older than this (0 = never).
	AuditMaxAgeDays int `toml:"audit_max_age_days"`
}

// Network is the [network] section: listen addresses and ports.
type Network struct {
	// HostBindIP is the address a host replica's HTTP API and SSH proxy listen on.
	HostBindIP string `toml:"host_bind_ip"`
	// HostPort is the host replica's HTTP API port; 0 picks a free port.
	HostPort int `toml:"host_port"`
	// HostSSHProxyPort is the host replica's SSH proxy port; 0 picks a free port.
	HostSSHProxyPort int `toml:"host_ssh_proxy_port"`
	// HostReachableAddress is the address runners and clients use to reach a host.
	HostReachableAddress string `toml:"host_reachable_address"`
	// RunnerAddress is the address a runner advertises; empty means detect it.
	RunnerAddress string `toml:"runner_address"`
	// RunnerPort is the runner API port; 0 picks a free port.
	RunnerPort int `toml:"runner_port"`
}

// Paths is the [paths] section: directories and files on disk.
type Paths struct {
	// SharedDir is the root of the storage shared by all nodes.
	SharedDir string `toml:"shared_dir"`
	// LocalTempDir is node-local scratch space, mounted into tasks.
	LocalTempDir string `toml:"local_temp_dir"`
	// RunnerStateDir is the runner's private state (task records, the lock):
	// mode 0700, never mounted into a task, outside LocalTempDir and SharedDir.
	RunnerStateDir string `toml:"runner_state_dir"`
	// NumactlPath is the numactl binary; empty means "numactl" from PATH.
	NumactlPath string `toml:"numactl_path"`
	// HostLogFile is the host's log file; empty means standard error.
	HostLogFile string `toml:"host_log_file"`
	// RunnerLogFile is the runner's log file; empty means standard error.
	RunnerLogFile string `toml:"runner_log_file"`
}

// Timing is the [timing] section. All values are whole seconds or factors.
type Timing struct {
	// HeartbeatInterval is the period of runner heartbeats, in seconds.
	HeartbeatInterval int `toml:"heartbeat_interval"`
	// HeartbeatTimeoutFactor: a runner is offline after
	// HeartbeatInterval × HeartbeatTimeoutFactor seconds without a heartbeat.
	HeartbeatTimeoutFactor int `toml:"heartbeat_timeout_factor"`
	// CleanupCheckInterval is the period of the dead-runner scan, in seconds.
	CleanupCheckInterval int `toml:"cleanup_check_interval"`
}

// Environment is the [environment] section.
type Environment struct {
	// RunnerUser is the user native tasks run as; empty means the runner's user.
	RunnerUser string `toml:"runner_user"`
}

// Docker is the [docker] section: container environments.
type Docker struct {
	// ContainerDir is the tarball directory, relative to Paths.SharedDir.
	ContainerDir string `toml:"container_dir"`
	// DefaultContainerName is the environment of a task that names none.
	DefaultContainerName string `toml:"default_container_name"`
	// InitialBaseImage bootstraps the default environment when it has no
	// tarball yet; empty means do not bootstrap.
	InitialBaseImage string `toml:"initial_base_image"`
	// TasksPrivileged is the default of a task's privileged option.
	TasksPrivileged bool `toml:"tasks_privileged"`
	// AdditionalMounts are extra "host:container[:options]" mounts for every task.
	AdditionalMounts []string `toml:"additional_mounts"`
	// KeepTarballs is how many tarball versions of each environment to keep.
	KeepTarballs int `toml:"keep_tarballs"`
}

// Cluster is the [cluster] section: Raft, gossip and cluster security.
type Cluster struct {
	// NodeID names this node in Raft and gossip; empty means the hostname
	// (see Config.NodeID).
	NodeID string `toml:"node_id"`
	// DataDir holds a host replica's Raft log, stable store and snapshots.
	DataDir string `toml:"data_dir"`
	// RaftPort is the Raft transport port; 0 picks a free port.
	RaftPort int `toml:"raft_port"`
	// GossipPort is the memberlist port; 0 picks a free port.
	GossipPort int `toml:"gossip_port"`
	// BootstrapExpect is how many host replicas to wait for before bootstrapping Raft.
	BootstrapExpect int `toml:"bootstrap_expect"`
	// Join lists gossip addresses ("host:port") of members to join at start.
	Join []string `toml:"join"`
	// GossipKey is the base64 of a 16, 24 or 32 byte gossip encryption key;
	// empty means gossip is not encrypted.
	GossipKey string `toml:"gossip_key"`
	// Token is the shared secret of internal calls (cluster_token).
	Token string `toml:"cluster_token"`
	// TokenFile is a file holding the cluster token (cluster_token_file).
	TokenFile string `toml:"cluster_token_file"`
	// InsecureNoToken lets a host or runner start without a cluster token
	// (insecure_no_token, --insecure-no-token): internal calls and
	// membership changes are then accepted from anyone.
	InsecureNoToken bool `toml:"insecure_no_token"`
	// MaxListTasks caps the number of tasks one list request returns.
	MaxListTasks int `toml:"max_list_tasks"`
	// LeaderWaitSeconds is how long a replica waits for a leader before it
	// answers 503.
	LeaderWaitSeconds int `toml:"leader_wait_seconds"`
	// BackupDir, when set, is where the leader writes a snapshot file
	// every BackupInterval seconds, keeping the newest BackupKeep.
	BackupDir      string `toml:"backup_dir"`
	BackupInterval int    `toml:"backup_interval"`
	BackupKeep     int    `toml:"backup_keep"`
	// MinFreeDisk is the free space ("512M", "2G") a host keeps on its
	// data_dir's filesystem: below it, writes are refused. "0" = no limit.
	MinFreeDisk string `toml:"min_free_disk"`
	// RaftMultiplier scales Raft's timing (heartbeat, election and leader
	// lease timeouts), as Consul's performance.raft_multiplier does: 1 is
	// the fastest failover, higher values tolerate slow disks and loaded
	// machines. Every replica should use the same value.
	RaftMultiplier int `toml:"raft_multiplier"`
	// HistoryKeepDays and HistoryKeepTasks are the retention of finished
	// tasks in a replica's memory: older (completed more than
	// HistoryKeepDays ago) or beyond the newest HistoryKeepTasks finished
	// ones, they move to the on-disk archive (<data_dir>/archive.db), where
	// every read still finds them. 0 turns a rule off; both 0: no archiving.
	HistoryKeepDays  int `toml:"history_keep_days"`
	HistoryKeepTasks int `toml:"history_keep_tasks"`
	// HistoryArchiveInterval is how often (seconds) the leader looks for
	// tasks to archive.
	HistoryArchiveInterval int `toml:"history_archive_interval"`
	// RaftSnapshotThreshold is the number of log entries between Raft
	// snapshots (and the entries kept after one); RaftSnapshotInterval
	// (seconds) how often a replica checks whether one is due.
	RaftSnapshotThreshold int `toml:"raft_snapshot_threshold"`
	RaftSnapshotInterval  int `toml:"raft_snapshot_interval"`
}

// DefaultRaftMultiplier is the default of cluster.raft_multiplier: Raft
// notices a dead leader after 1-2 s and a leader keeps its lease through
// stalls of up to 0.5 s (busy disks, CPU shared with tasks).
const DefaultRaftMultiplier = 2

// MaxRaftMultiplier is the largest cluster.raft_multiplier (as Consul's).
const MaxRaftMultiplier = 10

// Default returns the built-in configuration. Each call returns fresh slices,
// so callers may modify the result freely.
func Default() Config {
	return Config{
		Auth: Auth{AnonymousRole: "none", AuditKeep: 10000, AuditMaxAgeDays: 90},
		Notify: Notify{WebhookURLs: []string{}, WebhookEvents: "final", WebhookAllow: []string{},
			WebhookMaxAttempts: 8, WebhookTimeout: 10},
		Network: Network{
			HostBindIP:           "0.0.0.0",
			HostPort:             8000,
			HostSSHProxyPort:     8002,
			HostReachableAddress: "127.0.0.1",
			RunnerAddress:        "",
			RunnerPort:           8001,
		},
		Paths: Paths{
			SharedDir:      "/var/lib/hakuriver/shared",
			LocalTempDir:   "/var/lib/hakuriver/temp",
			RunnerStateDir: "/var/lib/hakuriver/runner",
		},
		Timing: Timing{
			HeartbeatInterval:      5,
			HeartbeatTimeoutFactor: 6,
			CleanupCheckInterval:   10,
		},
		Docker: Docker{
			ContainerDir:         "hakuriver-containers",
			DefaultContainerName: "hakuriver-base",
			AdditionalMounts:     []string{},
			KeepTarballs:         1,
		},
		Cluster: Cluster{
			DataDir:                "/var/lib/hakuriver/data",
			RaftPort:               8300,
			GossipPort:             7946,
			BootstrapExpect:        1,
			Join:                   []string{},
			MaxListTasks:           1000,
			LeaderWaitSeconds:      5,
			BackupInterval:         3600,
			BackupKeep:             24,
			MinFreeDisk:            "512Mi",
			RaftMultiplier:         DefaultRaftMultiplier,
			HistoryKeepDays:        7,
			HistoryKeepTasks:       50000,
			HistoryArchiveInterval: 60,
			RaftSnapshotThreshold:  8192,
			RaftSnapshotInterval:   15,
		},
	}
}

// HeartbeatPeriod returns heartbeat_interval as a duration.
func (t Timing) HeartbeatPeriod() time.Duration {
	return time.Duration(t.HeartbeatInterval) * time.Second
}

// HeartbeatTimeout returns how long a runner may stay silent before it is
// considered offline: heartbeat_interval × heartbeat_timeout_factor.
func (t Timing) HeartbeatTimeout() time.Duration {
	return time.Duration(t.HeartbeatInterval*t.HeartbeatTimeoutFactor) * time.Second
}

// CleanupPeriod returns cleanup_check_interval as a duration.
func (t Timing) CleanupPeriod() time.Duration {
	return time.Duration(t.CleanupCheckInterval) * time.Second
}

// MinFreeDiskBytes returns min_free_disk in bytes (0 when unset).
func (c Cluster) MinFreeDiskBytes() (int64, error) {
	if strings.TrimSpace(c.MinFreeDisk) == "" {
		return 0, nil
	}
	n, err := api.ParseMemory(c.MinFreeDisk)
	if err != nil {
		return 0, fmt.Errorf("cluster.min_free_disk %q: %w", c.MinFreeDisk, err)
	}
	return n, nil
}

// LeaderWait returns leader_wait_seconds as a duration.
func (c Cluster) LeaderWait() time.Duration {
	return time.Duration(c.LeaderWaitSeconds) * time.Second
}

// NodeID returns cluster.node_id, or the hostname when it is empty. It fails
// only when node_id is empty and the hostname cannot be read.
func (c Config) NodeID() (string, error) {
	if c.Cluster.NodeID != "" {
		return c.Cluster.NodeID, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("cluster.node_id is empty and the hostname is unknown: %w", err)
	}
	return h, nil
}

// GossipKey returns the decoded cluster.gossip_key, or nil when it is empty
// (gossip unencrypted). It fails when the key is not base64 of 16, 24 or 32 bytes.
func (c Config) GossipKey() ([]byte, error) {
	if c.Cluster.GossipKey == "" {
		return nil, nil
	}
	b, err := decodeGossipKey(c.Cluster.GossipKey)
	if err != nil {
		return nil, fmt.Errorf("cluster.gossip_key: %w", err)
	}
	return b, nil
}

// ClusterToken returns cluster.cluster_token, or else the trimmed contents of
// cluster.cluster_token_file. It returns "" and no error when neither is set.
// It reads the file on every call and fails when it cannot be read or is empty.
func (c Config) ClusterToken() (string, error) {
	if c.Cluster.Token != "" {
		return c.Cluster.Token, nil
	}
	if c.Cluster.TokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.Cluster.TokenFile)
	if err != nil {
		return "", fmt.Errorf("read cluster.cluster_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("cluster.cluster_token_file: %s: %w", c.Cluster.TokenFile, ErrEmptyToken)
	}
	return tok, nil
}

func decodeGossipKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode base64: %w", err)
	}
	switch len(b) {
	case 16, 24, 32:
		return b, nil
	}
	return nil, fmt.Errorf("decodes to %d bytes, want 16, 24 or 32", len(b))
}
