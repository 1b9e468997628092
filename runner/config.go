// Package runner is the agent on a compute node: it finds the host replicas
// through gossip, registers, heartbeats, serves the runner API (/run, /kill,
// /pause, /resume) and supervises tasks through an executor.
package runner

import (
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/hakuriver/hakuriver-ha/ops/certs"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// Config configures an Agent. Start copies it; it is never mutated after.
type Config struct {
	// Name is the node's identity (hostname by default).
	Name string
	// BindAddr/AdvertiseAddr/Port: the runner API. Port 0 picks one.
	BindAddr      string
	AdvertiseAddr string
	Port          int
	// GossipPort (0 picks one), Join (gossip addresses of any host or
	// runner) and GossipKey join the pool.
	GossipPort int
	Join       []string
	GossipKey  []byte
	// Hosts optionally lists host API URLs to use before gossip finds any.
	Hosts []string
	// Token is the cluster token carried by every internal call and
	// required on every call to the runner API. Start refuses an empty one
	// unless InsecureNoToken is set, which then accepts calls from anyone.
	Token           string
	InsecureNoToken bool
	// TLS, when set, is the runner's certificate and the cluster CA: the
	// runner API is served over HTTPS only (advertised as https://) and
	// the hosts are called over HTTPS, verified against the CA. nil: HTTP.
	TLS          *certs.Bundle
	SharedDir    string
	LocalTempDir string
	// StateDir is the runner's private state directory (runner_state_dir,
	// see package statedir), opened and locked by the caller: the agent
	// keeps the tombstones of finished tasks in it. Required, absolute.
	StateDir string
	// Cores and MemoryBytes override detection when > 0.
	Cores       int
	MemoryBytes int64
	// HeartbeatInterval is the period of heartbeats.
	HeartbeatInterval time.Duration
	// RunnerUser runs native tasks as this user when set; it is also who
	// tasks without an owner's unix_user and without root allowed run
	// as, native or in Docker, unless it is root (then nobody).
	RunnerUser string
	// Native runs tasks as processes; Docker runs container tasks (nil
	// until available: container tasks then run natively too).
	Native executor.Executor
	Docker executor.Executor
	// NativeLimited reports whether the native executor enforces cgroup
	// limits (shown in node list).
	NativeLimited bool
	// CopyMaxBytes caps the files of one `hakuriver cp` into a task
	// (0: filecopy.DefaultMaxBytes).
	CopyMaxBytes int64
	// CopyHelper is the argv prefix of the helper that copies files into
	// and out of native tasks as their user; empty means
	// [os.Executable(), filecopy.HelperCommand].
	CopyHelper []string
	// NvidiaSMI is the nvidia-smi path ("" = look it up).
	NvidiaSMI string
	// SysRoot and ProcRoot point resource detection elsewhere (tests).
	SysRoot  string
	ProcRoot string
	// FastGossip shortens gossip intervals (loopback clusters, tests).
	FastGossip bool
	Version    string
	Logger     *slog.Logger
}

// ErrNoToken is the error of a Config without a cluster token that does not
// opt into InsecureNoToken.
var ErrNoToken = errors.New("cluster_token: empty: set cluster_token or cluster_token_file " +
	"(--cluster-token-file), or pass --insecure-no-token to accept unauthenticated calls to the runner API")

// DefaultConfig returns the defaults of a LAN deployment.
func DefaultConfig() Config {
	return Config{
		BindAddr:          "0.0.0.0",
		AdvertiseAddr:     "127.0.0.1",
		Port:              8001,
		GossipPort:        7947,
		SharedDir:         "/var/lib/hakuriver/shared",
		LocalTempDir:      "/var/lib/hakuriver/temp",
		HeartbeatInterval: 5 * time.Second,
		Version:           "dev",
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("runner name: must not be empty"))
	}
	if c.SharedDir == "" || c.LocalTempDir == "" {
		errs = append(errs, errors.New("shared_dir and local_temp_dir: must not be empty"))
	}
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		errs = append(errs, errors.New("runner_state_dir: must be an absolute path"))
	}
	if c.HeartbeatInterval <= 0 {
		errs = append(errs, errors.New("heartbeat_interval: must be positive"))
	}
	if c.Token == "" && !c.InsecureNoToken {
		errs = append(errs, ErrNoToken)
	}
	if c.Native == nil {
		errs = append(errs, errors.New("native executor: required"))
	}
	if len(c.Join) == 0 && len(c.Hosts) == 0 {
		errs = append(errs, errors.New("join: name at least one gossip address of a host or runner"))
	}
	return errors.Join(errs...)
}
