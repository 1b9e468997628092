// Package cluster is a HakuRiver host replica: Raft wiring over boltdb, the
// REST API served on every replica, write forwarding to the leader, gossip
// based bootstrap and membership, and the leader's work loop. It is the only
// package that imports hashicorp/raft.
package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/certs"
)

// Config configures a host replica. StartHost copies it; it is never mutated
// afterwards.
type Config struct {
	NodeID  string
	DataDir string
	// BindAddr is the address every listener binds; AdvertiseAddr is the one
	// other members use (defaults to BindAddr, which must then not be 0.0.0.0).
	BindAddr      string
	AdvertiseAddr string
	// Ports; 0 picks a free port.
	APIPort      int
	RaftPort     int
	GossipPort   int
	SSHProxyPort int
	// SSHJumpPort, when not 0, is an extra port that serves only the SSH
	// jump host. 0 (the default) opens none: the jump host is always
	// reachable on SSHProxyPort, which recognises SSH clients by their
	// first bytes ("ssh -J proxy@HOST:SSHProxyPort root@<task_id>").
	SSHJumpPort int
	// SSHAdminKeys are public keys (authorized_keys lines) that the SSH
	// jump host lets through to every VPS.
	SSHAdminKeys []string
	// BootstrapExpect hosts must see each other before the first Raft
	// configuration is written.
	BootstrapExpect int
	// Join lists gossip addresses of other members (may include self).
	Join      []string
	GossipKey []byte
	// ClusterToken authenticates internal calls (runner → host, replica →
	// replica, doctor) and membership changes. StartHost refuses an empty
	// one unless InsecureNoToken is set, which then accepts those calls
	// from anyone.
	ClusterToken    string
	InsecureNoToken bool
	// TLS, when set, is this replica's certificate and the cluster CA: the
	// API (and dashboard) is served over HTTPS only and advertised as
	// https://, every call to another replica or a runner verifies it
	// against the CA, and Raft runs over mutually authenticated TLS (a peer
	// without a certificate signed by the CA cannot connect). nil: plain
	// HTTP and TCP.
	TLS *certs.Bundle
	// AnonymousRole is what callers without a token may do: "" (nothing,
	// the default) or a role; "user" gives original HakuRiver clients their
	// open behaviour back.
	AnonymousRole fsm.Role
	// AuditKeep and AuditMaxAge bound the replicated audit log (0 = no
	// bound of that kind).
	AuditKeep   int
	AuditMaxAge time.Duration
	// VPSIdleStop stops a running VPS with no SSH session through any
	// replica's proxy for this long (0: never; vpsidle.go).
	VPSIdleStop time.Duration
	SharedDir   string
	// MaxListTasks caps GET /api/tasks without an explicit limit.
	MaxListTasks int
	// LeaderWait is how long a request waits for a leader before 503.
	LeaderWait time.Duration
	// MinFreeDisk is the space (bytes) the replica keeps free on DataDir's
	// filesystem: below it, it refuses to propose writes (507). 0 = no
	// limit.
	MinFreeDisk uint64
	// HeartbeatInterval and HeartbeatTimeoutFactor drive runner liveness.
	HeartbeatInterval      time.Duration
	HeartbeatTimeoutFactor int
	// RaftMultiplier scales Raft's timing: the heartbeat and election
	// timeouts are RaftMultiplier × 500 ms and the leader lease
	// RaftMultiplier × 250 ms (see raftTiming). 1 fails over fastest;
	// higher values keep a leader through longer stalls (slow fsync, CPU
	// shared with tasks, GC). Must be 1 to 10.
	RaftMultiplier int
	// RaftNoSync disables fsync of the Raft log (benchmarks only).
	RaftNoSync bool
	// raftCommitTimeout overrides raftCommitTimeout (tests).
	raftCommitTimeout time.Duration
	// snapshotBytesPerEntry overrides snapshotBytesPerEntry (tests).
	snapshotBytesPerEntry int64
	// BackupDir, when set, is where the leader writes a backup file (the
	// format of `cluster snapshot save`) every BackupInterval, keeping the
	// newest BackupKeep there (backup.go).
	BackupDir      string
	BackupInterval time.Duration
	BackupKeep     int
	// SnapshotThreshold is the number of log entries between snapshots.
	SnapshotThreshold uint64
	// SnapshotInterval is how often Raft checks whether a snapshot is due
	// (0: 15 s).
	SnapshotInterval time.Duration
	// HistoryKeep and HistoryKeepTasks are the retention of finished tasks
	// in memory: tasks completed longer than HistoryKeep ago, and the
	// finished tasks beyond the newest HistoryKeepTasks, move to the
	// on-disk archive (archive.go). 0 turns a rule off; both 0 archive
	// nothing. The leader looks every ArchiveInterval.
	HistoryKeep      time.Duration
	HistoryKeepTasks int
	ArchiveInterval  time.Duration
	// FastGossip shortens gossip intervals (loopback clusters, tests).
	FastGossip bool
	// DefaultContainer is the environment used when a submit names none.
	DefaultContainer string
	// TasksPrivileged and AdditionalMounts are the defaults of a submit's
	// privileged and additional_mounts when it gives none ([docker]).
	TasksPrivileged  bool
	AdditionalMounts []string
	// ContainerDir is the tarball directory inside SharedDir (GET
	// /api/docker/list).
	ContainerDir string
	// Docker is the environment containers of this replica's Docker Engine
	// (cmd/hakuriver wires runner/executor/docker in); nil disables them
	// here (environment calls answer 503).
	Docker Environments
	// Notify configures webhook notifications (notifier.go).
	Notify NotifyConfig
	// Version is reported in gossip and /api/cluster.
	Version string
	// OnHalt is called once, from Raft's apply goroutine, when this
	// replica's state machine stops on a log entry it cannot apply (a
	// corrupt entry, or a command of a newer version: fsm.ErrHalted). It
	// must not block; the process should shut down (hakuriver host exits
	// non-zero). The halted replica applies and snapshots nothing more.
	OnHalt func(error)
	// Logger receives all logs; nil discards them.
	Logger *slog.Logger
}

// ErrNoToken is the error of a Config without a cluster token that does not
// opt into InsecureNoToken.
var ErrNoToken = errors.New("cluster_token: empty: set cluster_token or cluster_token_file " +
	"(--cluster-token-file), or pass --insecure-no-token to accept unauthenticated internal calls and membership changes")

// DefaultConfig returns a Config with the defaults of a LAN deployment.
func DefaultConfig() Config {
	return Config{
		BindAddr:               "127.0.0.1",
		APIPort:                8000,
		RaftPort:               8300,
		GossipPort:             7946,
		SSHProxyPort:           0, // hakuriver host sets host_ssh_proxy_port (8002)
		BootstrapExpect:        1,
		SharedDir:              "/var/lib/hakuriver/shared",
		MaxListTasks:           1000,
		LeaderWait:             5 * time.Second,
		HeartbeatInterval:      5 * time.Second,
		HeartbeatTimeoutFactor: 6,
		RaftMultiplier:         2,
		SnapshotThreshold:      8192,
		DefaultContainer:       "hakuriver-base",
		ContainerDir:           "hakuriver-containers",
		Version:                "dev",
		AuditKeep:              10000,
		AuditMaxAge:            90 * 24 * time.Hour,
		HistoryKeep:            7 * 24 * time.Hour,
		HistoryKeepTasks:       50000,
		ArchiveInterval:        time.Minute,
	}
}

// Validate checks fields against each other.
func (c Config) Validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("node_id: must not be empty"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: must not be empty"))
	}
	if c.ClusterToken == "" && !c.InsecureNoToken {
		errs = append(errs, ErrNoToken)
	}
	if c.BootstrapExpect < 1 {
		errs = append(errs, errors.New("bootstrap_expect: must be at least 1"))
	}
	if c.advertise() == "0.0.0.0" || c.advertise() == "" {
		errs = append(errs, fmt.Errorf("advertise address: %q is not reachable by others; set --advertise", c.advertise()))
	}
	if c.SSHJumpPort < 0 || c.SSHJumpPort > 65535 || c.SSHJumpPort != 0 && c.SSHJumpPort == c.SSHProxyPort {
		errs = append(errs, fmt.Errorf("ssh_jump_port: %d must be 0 (none) or a port other than the ssh proxy port", c.SSHJumpPort))
	}
	if c.AnonymousRole != "" && !c.AnonymousRole.Valid() || c.AnonymousRole == fsm.RoleAdmin {
		errs = append(errs, fmt.Errorf("anonymous_role: %q: want none, viewer, user or operator", c.AnonymousRole))
	}
	if c.AuditKeep < 0 || c.AuditMaxAge < 0 {
		errs = append(errs, errors.New("audit_keep, audit_max_age: must not be negative"))
	}
	if c.MaxListTasks < 1 {
		errs = append(errs, errors.New("max_list_tasks: must be at least 1"))
	}
	if c.LeaderWait < 0 {
		errs = append(errs, errors.New("leader_wait_seconds: must not be negative (0 answers 503 at once)"))
	}
	if c.HeartbeatInterval <= 0 {
		errs = append(errs, errors.New("heartbeat_interval: must be positive"))
	}
	if c.BackupDir != "" && (c.BackupInterval < time.Second || c.BackupKeep < 1) {
		errs = append(errs, errors.New("backup_interval, backup_keep: with backup_dir, at least 1 second and 1 file"))
	}
	if c.RaftMultiplier < 1 || c.RaftMultiplier > 10 {
		errs = append(errs, fmt.Errorf("raft_multiplier: %d: must be between 1 and 10", c.RaftMultiplier))
	}
	if c.HistoryKeep < 0 || c.HistoryKeepTasks < 0 {
		errs = append(errs, errors.New("history_keep_days, history_keep_tasks: must not be negative"))
	}
	if c.ArchiveInterval <= 0 && (c.HistoryKeep > 0 || c.HistoryKeepTasks > 0) {
		errs = append(errs, errors.New("history_archive_interval: must be positive"))
	}
	if c.HeartbeatTimeoutFactor < 2 {
		errs = append(errs, errors.New("heartbeat_timeout_factor: must be at least 2"))
	}
	errs = append(errs, c.Notify.validate()...)
	return errors.Join(errs...)
}

func (c Config) advertise() string {
	if c.AdvertiseAddr != "" {
		return c.AdvertiseAddr
	}
	return c.BindAddr
}
