package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// EnvironmentEngine is what a replica needs of its Docker Engine to serve
// the environment API (/api/docker): the environment containers of one
// cluster at a time. The host never imports an implementation; the
// composition root (cmd/hakuriver) wires the runner's Docker package in
// through a small adapter. Errors wrap the sentinels of ops/environment,
// which the handlers map to HTTP statuses with errors.Is.
type EnvironmentEngine interface {
	// Scoped returns the environments of cluster clusterID: those labelled
	// with it, plus unlabelled ones (made before clusters had IDs) for
	// which adopt says yes. What the scope creates carries the label.
	Scoped(clusterID string, adopt func(name string) bool) EnvironmentScope
}

// EnvironmentScope is one cluster's environment containers on this
// replica's engine. Operations on one environment are serialised; all are
// safe for concurrent use.
type EnvironmentScope interface {
	// Environments lists the environment containers by name.
	Environments(ctx context.Context) ([]environment.Container, error)
	// CreateEnvironment creates and starts container name from image;
	// created is false when it already existed.
	CreateEnvironment(ctx context.Context, image, name string) (created bool, err error)
	// StartEnvironment, StopEnvironment and DeleteEnvironment change one
	// environment container (start and stop are no-ops when already so).
	StartEnvironment(ctx context.Context, name string) error
	StopEnvironment(ctx context.Context, name string) error
	DeleteEnvironment(ctx context.Context, name string) error
	// CreateTarball commits environment name and saves it as a tarball in
	// shared storage with a version newer than after; progress (may be nil)
	// is called from the calling goroutine.
	CreateTarball(ctx context.Context, name string, after int64, progress func(environment.Progress)) (environment.Tarball, error)
	// Shell opens a TTY shell in the running environment container name
	// (rows×cols, 0 for the default size). environment.ErrNoShell when it
	// has no shell, ErrConflict when it is not running.
	Shell(ctx context.Context, name string, rows, cols uint) (EnvShell, error)
}

// EnvShell is an interactive shell in an environment container: Read its
// output, Write keystrokes; Close hangs it up.
type EnvShell interface {
	io.ReadWriteCloser
	// ShellPath is the shell that runs.
	ShellPath() string
	// Resize sets the TTY size.
	Resize(ctx context.Context, rows, cols uint) error
	// ExitCode waits (bounded by ctx) for the ended shell's exit code.
	ExitCode(ctx context.Context) (int, error)
}

// EnvReader is a read-only view of the replica's committed environment
// records and cluster ID (*fsm.Machine is one).
type EnvReader interface {
	ClusterID() string
	Environment(name string) (fsm.Environment, bool)
	Environments() []fsm.Environment
	Tarball(name string) (fsm.TarballRecord, bool)
}

// Leadership tells where the leader is.
type Leadership interface {
	// IsLeader reports whether this replica leads.
	IsLeader() bool
	// Leader returns the leader's ID and API base URL ("" when unknown).
	Leader() (id, apiURL string)
}

// ReplicaDirectory finds other host replicas.
type ReplicaDirectory interface {
	// ReplicaAPI returns the API base URL of replica id ("" when gossip
	// does not see it alive); this replica's own for its own ID.
	ReplicaAPI(id string) string
}

// ReplicaCalls are one replica's internal calls to another
// (*api.ReplicaClient is one).
type ReplicaCalls interface {
	// RecordEnvironment asks the leader at base to commit rec.
	RecordEnvironment(ctx context.Context, base string, rec *fsm.SetEnvironment) error
	// Environments lists the environment containers of the replica at
	// base itself.
	Environments(ctx context.Context, base string) ([]api.DockerContainer, error)
}

// EnvConfig is what the environment handlers read of the replica's
// configuration.
type EnvConfig struct {
	// NodeID is this replica's Raft server ID.
	NodeID string
	// TarballDir is the tarball directory in shared storage.
	TarballDir string
	// LeaderWait bounds the waits for a leader and for the cluster ID.
	LeaderWait time.Duration
	// ProxyTransport carries the requests proxied to the replica that
	// holds an environment (nil: http.DefaultTransport).
	ProxyTransport http.RoundTripper
	// Logger receives the handlers' logs (nil: discarded).
	Logger *slog.Logger
}

// EnvDeps are the roles the environment handlers use. Engine is nil when
// Docker is disabled on this replica; every other one must be set.
type EnvDeps struct {
	Engine   EnvironmentEngine
	State    EnvReader
	Proposer Proposer
	Leader   Leadership
	Replicas ReplicaDirectory
	Calls    ReplicaCalls
}

// EnvAPI holds the environment handlers (the original's /docker router).
// An environment container lives in the Docker Engine of the replica that
// created it; the FSM records which (fsm.SetEnvironment). Any replica
// answers: an operation on an environment that lives elsewhere is proxied
// to that replica's API (found through gossip), WebSocket terminal
// included. Tarballs live in shared storage, so any replica lists them
// itself. Its methods are safe for concurrent use.
type EnvAPI struct {
	cfg EnvConfig
	d   EnvDeps
	log *slog.Logger
}

// NewEnvironments returns the environment handlers over d.
func NewEnvironments(cfg EnvConfig, d EnvDeps) *EnvAPI {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.ProxyTransport == nil {
		cfg.ProxyTransport = http.DefaultTransport
	}
	return &EnvAPI{cfg: cfg, d: d, log: log}
}
