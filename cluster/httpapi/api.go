// Package httpapi serves the client-facing REST API of a host replica:
// submit, task status, listing, kill, pause/resume and logs, nodes, drain,
// health, the queue, the VPS listings, the cluster status, the Raft
// membership endpoints and the Docker environments (EnvAPI: containers,
// tarballs, the WebSocket terminal, proxying to the replica that holds an
// environment); and the runners' calls to the leader: register, heartbeat
// and task status updates. Its handlers reach the replica only through the
// small role interfaces declared here (a proposer, read-only state views,
// the runners, the environments, membership), as rqlite's http.New(store,
// cluster, creds) does, so that they can be tested with fakes and no Raft.
//
// The route table stays in package cluster (routes.go), which wraps these
// handlers in its middlewares: forwarding to the leader, consistent reads,
// the cluster token. Errors map to HTTP statuses in one place, StatusOf.
package httpapi

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Proposer applies commands through the replicated log. It is called on
// the leader only (the route table forwards writes there).
type Proposer interface {
	// Propose applies c and returns the state machine's result; business
	// rejections wrap fsm's sentinels.
	Propose(ctx context.Context, c fsm.Command) (any, error)
	// Submit applies a submit; the leader may place the new tasks in the
	// same entry and then starts their dispatch (or else schedules them).
	Submit(ctx context.Context, c *fsm.SubmitTasks) (fsm.SubmitResult, error)
	// NextTaskID issues a fresh task ID, greater than every committed one.
	NextTaskID() int64
	// KickScheduler asks for a scheduling pass now (new work or capacity).
	KickScheduler()
	// UpdateTasks applies runner reports, in one entry when every replica
	// knows fsm.UpdateTasks, else one entry each. The result holds each
	// report's business outcome (nil: applied); err is set when the batch
	// could not be committed (it may have been in part: retrying it is
	// harmless, as a report applied already changes nothing).
	UpdateTasks(ctx context.Context, us []fsm.UpdateTask) (fsm.UpdateResults, error)
}

// TaskReader is a read-only view of the replica's committed tasks
// (*fsm.Machine is one).
type TaskReader interface {
	Task(id int64) (*fsm.Task, bool)
	Tasks(f fsm.Filter, after int64, limit int) ([]*fsm.Task, bool)
	Active() []*fsm.Task
	RequestTasks(requestID string) ([]int64, bool)
}

// NodeReader is a read-only view of the replica's committed runner nodes
// (*fsm.Machine is one).
type NodeReader interface {
	Node(hostname string) (*fsm.Node, bool)
	Nodes() []*fsm.Node
}

// NodeViewer gives the runner nodes as clients see them: committed state
// joined with accounting and, on the leader, the live heartbeat figures.
type NodeViewer interface {
	NodeViews() []api.NodeView
	// Health is the leader's recent health samples of every node.
	Health() api.HealthResponse
}

// Runners reaches the runner that holds a task.
type Runners interface {
	// NotifyKill asks the task's runner, in the background, to kill it.
	NotifyKill(t *fsm.Task)
	Pause(ctx context.Context, runnerURL string, taskID int64) error
	Resume(ctx context.Context, runnerURL string, taskID int64) error
}

// Environments checks a submit's container_name against the environments
// the cluster knows.
type Environments interface {
	// CheckEnvironment is nil for a usable environment name (or the native
	// marker), else an error naming it (a 400 through StatusOf).
	CheckEnvironment(name string) error
}

// ClusterViewer reports the replica's view of the cluster.
type ClusterViewer interface {
	Status() api.ClusterStatus
}

// Membership changes the Raft configuration (on the leader).
type Membership interface {
	// AddVoter adds replica id at Raft address addr as a voter.
	AddVoter(ctx context.Context, id, addr string) error
	// InConfiguration reports whether replica id is in the Raft
	// configuration.
	InConfiguration(id string) (bool, error)
	// RemoveVoter removes replica id; an error mapping to 404 when it is
	// not in the configuration.
	RemoveVoter(ctx context.Context, id string) error
	// TransferLeadership hands leadership to replica id ("" for any).
	TransferLeadership(ctx context.Context, id string) error
}

// Config is what the handlers read of the replica's configuration.
type Config struct {
	// NodeID is this replica's Raft server ID.
	NodeID string
	// SharedDir holds the task logs (task_outputs, task_errors).
	SharedDir string
	// MaxListTasks caps GET /api/tasks without an explicit limit.
	MaxListTasks int
	// DefaultContainer is the environment used when a submit names none.
	DefaultContainer string
	// TasksPrivileged and AdditionalMounts are a submit's defaults.
	TasksPrivileged  bool
	AdditionalMounts []string
	// Logger receives the handlers' logs (nil: discarded).
	Logger *slog.Logger
	// CheckSSHKey, when set, rejects an authorized_keys line that does
	// not parse.
	CheckSSHKey func(line string) error
	// CheckNotify, when set, is nil for a task notify URL the cluster may
	// POST to, else a 400 naming the "notify" field (or another error,
	// e.g. a replica too old to record deliveries). nil refuses every
	// per-task URL.
	CheckNotify func(url string) error
	// TarballDir is where environment (and VPS snapshot) tarballs lie.
	TarballDir string
	// Now is the replica's wall clock, which the handlers stamp commands
	// and judge token expiry with (time.Now when nil; cluster/clock).
	Now func() time.Time
}

// Deps are the roles the handlers use; every one must be set.
type Deps struct {
	Proposer     Proposer
	Tasks        TaskReader
	Nodes        NodeReader
	NodeViews    NodeViewer
	Runners      Runners
	Environments Environments
	Cluster      ClusterViewer
	Membership   Membership
	// RunnerBook and ClusterID serve the runners' own calls (runners.go).
	RunnerBook RunnerBook
	ClusterID  ClusterIDReader
	// Accounts serves the account calls (accounts.go).
	Accounts AccountReader
	// VPS reaches runners for the VPS lifecycle (vps.go); Snapshots and
	// Snapshotter serve VPS snapshots (vpssnap.go).
	VPS         VPSRunners
	Snapshots   VPSSnapshots
	Snapshotter VPSSnapshotter
	// Usage serves GET /api/usage (usage.go).
	Usage UsageReader
	// Applied wakes a GET /api/status that waits for a change (nil: it
	// answers at once).
	Applied AppliedWatcher
}

// AppliedWatcher tells when the replica's state moved on, and bounds the
// queries waiting for that.
type AppliedWatcher interface {
	// NextApplied returns a channel closed once entries are applied
	// after the call.
	NextApplied() <-chan struct{}
	// HoldWaiter takes one of the replica's places for a waiting query of
	// caller (waiterKey); false when every one, or every one caller may
	// take, is taken. ReleaseWaiter gives it back.
	HoldWaiter(caller string) bool
	ReleaseWaiter(caller string)
	// Stopping is closed when the replica's API shuts down: waiting
	// queries answer then, so that the shutdown does not wait for them.
	Stopping() <-chan struct{}
}

// API holds the client-facing handlers. Its methods are safe for
// concurrent use.
type API struct {
	cfg Config
	d   Deps
	log *slog.Logger
	// logins paces each user's dashboard logins (Login).
	logins loginPacer
}

// New returns the handlers over d.
func New(cfg Config, d Deps) *API {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &API{cfg: cfg, d: d, log: log}
}

// now reads the replica's wall clock.
func (a *API) now() time.Time { return a.cfg.Now() }
