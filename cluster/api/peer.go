package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Internal endpoints the host's peer clients call.
const (
	// EnvRecordPath is the leader's internal endpoint (cluster token) that
	// commits a replica's environment record.
	EnvRecordPath = "/api/docker/internal/environments"
	// localEnvPath lists one replica's own environment containers.
	localEnvPath = "/api/docker/host/containers?local=1"
)

// Defaults of the peer clients, for zero fields of their configs.
const (
	DefaultRunnerClientTimeout     = 60 * time.Second
	DefaultRunnerMaxAnswerBytes    = 1 << 20
	DefaultReplicaClientTimeout    = 30 * time.Second
	DefaultReplicaMaxAnswerBytes   = maxResponseBytes
	defaultPeerMaxIdleConnsPerHost = 64
)

// PeerConfig configures a RunnerClient or a ReplicaClient. Zero fields take
// the client's defaults.
type PeerConfig struct {
	// Token is the cluster token, sent in TokenHeader on every call.
	Token string
	// Timeout bounds one exchange, body included; ctx may bound it further.
	Timeout time.Duration
	// MaxAnswerBytes bounds a 2xx answer's body: a larger one is refused
	// with ErrAnswerTooLarge.
	MaxAnswerBytes int64
	// Transport carries the calls (nil: a transport of the client's own).
	Transport http.RoundTripper
	// From is the calling replica's node ID (ReplicaClient only), sent in
	// ForwardedHeader: a replica that is no longer the leader then answers
	// 503 at once instead of forwarding the call again.
	From string
}

// newCaller builds the caller of a peer client from cfg and its defaults.
func newCaller(cfg PeerConfig, timeout time.Duration, maxBytes int64) caller {
	if cfg.Timeout > 0 {
		timeout = cfg.Timeout
	}
	if cfg.MaxAnswerBytes > 0 {
		maxBytes = cfg.MaxAnswerBytes
	}
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{MaxIdleConnsPerHost: defaultPeerMaxIdleConnsPerHost, IdleConnTimeout: 30 * time.Second}
	}
	return caller{hc: &http.Client{Timeout: timeout, Transport: tr}, token: cfg.Token, maxBytes: maxBytes}
}

// RunnerClient makes the leader's calls to runners (POST /run, /kill,
// /pause, /resume), each to the runner whose base URL it is given, without
// retries: the leader's loops decide when to call again. A non-2xx answer
// is an *APIError with the runner's status and message. Safe for
// concurrent use.
type RunnerClient struct{ c caller }

// NewRunnerClient returns a RunnerClient for cfg (From is ignored).
func NewRunnerClient(cfg PeerConfig) *RunnerClient {
	return &RunnerClient{c: newCaller(cfg, DefaultRunnerClientTimeout, DefaultRunnerMaxAnswerBytes)}
}

// Run asks the runner at runnerURL to start a task; it is idempotent by
// task ID on the runner.
func (rc *RunnerClient) Run(ctx context.Context, runnerURL string, req RunRequest) error {
	return rc.c.call(ctx, runnerURL, http.MethodPost, "/run", req, nil)
}

// Kill asks the runner at runnerURL to kill a task.
func (rc *RunnerClient) Kill(ctx context.Context, runnerURL string, ref TaskRef) error {
	return rc.c.call(ctx, runnerURL, http.MethodPost, "/kill", ref, nil)
}

// Pause asks the runner at runnerURL to pause task id.
func (rc *RunnerClient) Pause(ctx context.Context, runnerURL string, id int64) error {
	return rc.c.call(ctx, runnerURL, http.MethodPost, "/pause", TaskRef{TaskID: id}, nil)
}

// Resume asks the runner at runnerURL to resume task id.
func (rc *RunnerClient) Resume(ctx context.Context, runnerURL string, id int64) error {
	return rc.c.call(ctx, runnerURL, http.MethodPost, "/resume", TaskRef{TaskID: id}, nil)
}

// ReplicaClient makes one host replica's internal calls to another (the
// leader, or the replica that holds an environment), each to the replica
// whose API base URL it is given. Unlike Client it neither fails over nor
// waits out 503s: the caller follows Raft's view of the leader and decides.
// A non-2xx answer is an *APIError. Safe for concurrent use.
type ReplicaClient struct{ c caller }

// NewReplicaClient returns a ReplicaClient for cfg.
func NewReplicaClient(cfg PeerConfig) *ReplicaClient {
	c := newCaller(cfg, DefaultReplicaClientTimeout, DefaultReplicaMaxAnswerBytes)
	if cfg.From != "" {
		c.header = http.Header{ForwardedHeader: {cfg.From}}
	}
	return &ReplicaClient{c: c}
}

// RecordEnvironment asks the leader at base to commit rec (POST
// EnvRecordPath).
func (rc *ReplicaClient) RecordEnvironment(ctx context.Context, base string, rec *fsm.SetEnvironment) error {
	return rc.c.call(ctx, base, http.MethodPost, EnvRecordPath, rec, nil)
}

// Environments lists the environment containers of the replica at base
// itself (GET /api/docker/host/containers?local=1).
func (rc *ReplicaClient) Environments(ctx context.Context, base string) ([]DockerContainer, error) {
	var out []DockerContainer
	if err := rc.c.call(ctx, base, http.MethodGet, localEnvPath, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Task reads task id from the leader at base after a Barrier
// (GET /api/status/{id}?consistent=1); an unknown task is an *APIError with
// StatusCode 404.
func (rc *ReplicaClient) Task(ctx context.Context, base string, id int64) (fsm.Task, error) {
	var out fsm.Task
	path := "/api/status/" + url.PathEscape(strconv.FormatInt(id, 10)) + "?consistent=1"
	if err := rc.c.call(ctx, base, http.MethodGet, path, nil, &out); err != nil {
		return fsm.Task{}, err
	}
	return out, nil
}

// Nodes lists the runner nodes as the replica at base knows them
// (GET /api/nodes, served by that replica itself).
func (rc *ReplicaClient) Nodes(ctx context.Context, base string) ([]NodeView, error) {
	var out []NodeView
	if err := rc.c.call(ctx, base, http.MethodGet, "/api/nodes", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Cluster reads the status of the replica at base itself (GET /api/cluster).
func (rc *ReplicaClient) Cluster(ctx context.Context, base string) (ClusterStatus, error) {
	var out ClusterStatus
	if err := rc.c.call(ctx, base, http.MethodGet, "/api/cluster", nil, &out); err != nil {
		return ClusterStatus{}, err
	}
	return out, nil
}
