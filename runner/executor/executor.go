// Package executor defines how a runner starts, supervises and stops a task.
// Implementations live in sub-packages (native, docker).
package executor

import (
	"context"
	"errors"
	"time"
)

// ErrUnknownTask is returned for a task ID the executor does not track.
var ErrUnknownTask = errors.New("unknown task")

// ErrNotRunning is returned when a task must be running for an act
// (exec, forwarding a port, copying files) and is not (starting, paused
// or ended).
var ErrNotRunning = errors.New("task not running")

// ErrNoSuchPath is returned when a path to copy from a task does not
// exist.
var ErrNoSuchPath = errors.New("no such file or directory")

// TaskVPS is Spec.TaskType of a VPS task: a persistent container running
// sshd that its owner reaches with the key in Spec.PublicKey. Any other
// value ("", "command") is a command task.
const TaskVPS = "vps"

// Spec is everything needed to start one task.
type Spec struct {
	TaskID int64
	// Attempt is the task's attempt number (0 or 1: its first). A later
	// attempt gets resources of its own (a native task's cgroup), so that
	// an earlier attempt still running under another runner of the same
	// machine never shares them.
	Attempt int
	Command string
	Args    []string
	Env     map[string]string
	WorkDir string
	// Cores is the CPU quota in whole cores (0 = unlimited).
	Cores int
	// MemoryBytes is the memory limit (0 = unlimited).
	MemoryBytes int64
	// CPUs and Mems pin the task to a NUMA node's CPUs and memory (cpuset);
	// empty means no pinning.
	CPUs []int
	Mems []int
	// GPUs are the GPU IDs given to the task.
	GPUs []int
	// Stdout and Stderr are files the task's output is appended to.
	Stdout string
	Stderr string
	// User runs the task as this user when set.
	User string
	// Image, Privileged and Mounts are for container executors.
	Image      string
	Privileged bool
	Mounts     []string
	// TaskType is TaskVPS for a VPS task; only container executors run
	// those, and they need Image and PublicKey instead of Command.
	TaskType string
	// PublicKey is a VPS task's authorized_keys text (one OpenSSH public
	// key per line), installed for root.
	PublicKey string
	// ClusterID is the ID of the cluster the task belongs to; container
	// executors label what they create with it.
	ClusterID string
	// ImageVersion, ImageSHA256 and ImageSize are what the cluster
	// recorded for the newest tarball of the task's environment (zero when
	// none): the only tarball a container executor may load for it.
	ImageVersion int64
	ImageSHA256  string
	ImageSize    int64
	// Restart starts a stopped VPS's existing container again
	// (VPSKeeper.StopVPS); Start then never creates a container and fails
	// with ErrVPSGone when there is none.
	Restart bool
}

// Exit is how a task ended.
type Exit struct {
	// Code is the process exit code; -1 when killed by a signal.
	Code int
	// OOM is set when the memory limit killed the task.
	OOM bool
	// Killed is set when Kill (or a signal) ended the task.
	Killed bool
	// Message explains a failure to start or an abnormal end.
	Message   string
	StartedAt time.Time
	EndedAt   time.Time
	// Signal is the signal that ended the main process (0: none or
	// unknown).
	Signal int
	// Usage is what the task consumed, nil when it could not be measured.
	Usage *Usage
}

// Usage is what a task consumed, measured when it ended.
type Usage struct {
	UserNs, SystemNs int64
	// PeakBytes is the most memory it held at once (0: unknown).
	PeakBytes int64
	// Source is "cgroup" (the task's own cgroup) or "rusage" (the
	// resource usage of its processes as reaped; peak: the largest).
	Source string
}

// State is a tracked task's current state.
type State struct {
	TaskID  int64
	Running bool // false once it exited
	// Starting is true while the task is tracked but its process (or
	// container) has not started yet: it cannot be paused, and the runner
	// does not report it running before it is.
	Starting bool
	Paused   bool
	Exit     *Exit // set once it exited
	Started  time.Time
	// SSHPort is the runner-host port a VPS task's sshd (container port
	// 22) is published on while it runs; 0 for command tasks and while no
	// port is published (for example while its container restarts).
	SSHPort int
}

// Executor runs tasks. Implementations must be safe for concurrent use and
// must keep tasks running when the runner process exits, so that a
// restarted runner finds them again with List.
type Executor interface {
	// Start launches the task. Starting an ID that is already tracked is a
	// no-op returning nil (idempotent /run).
	Start(ctx context.Context, s Spec) error
	// Kill stops the task and everything it started.
	Kill(ctx context.Context, id int64) error
	// Pause freezes the task; Resume thaws it.
	Pause(ctx context.Context, id int64) error
	Resume(ctx context.Context, id int64) error
	// List returns every tracked task, running or exited but not yet
	// forgotten, including tasks started by a previous runner process.
	List(ctx context.Context) ([]State, error)
	// Forget drops an exited task's records once its end was reported.
	Forget(ctx context.Context, id int64) error
}

// VPSState is what a runner holds of a VPS's container (VPSKeeper).
type VPSState string

// VPS container states.
const (
	// VPSAbsent: no container of the task on this runner.
	VPSAbsent VPSState = "absent"
	// VPSStopped: the container is stopped and kept (StopVPS).
	VPSStopped VPSState = "stopped"
	// VPSActive: the container exists and is not stopped by StopVPS
	// (running, paused, restarting, or ended on its own).
	VPSActive VPSState = "active"
)

// ErrVPSGone is returned when a stopped VPS's container no longer exists,
// so it cannot be started (or snapshotted) again.
var ErrVPSGone = errors.New("the VPS container no longer exists")

// VPSKeeper is implemented by container executors that can stop a VPS and
// keep its container, start it again, and commit it to an image. A
// stopped VPS is not listed by List (it is not running, and it has not
// ended either); Start with Spec.Restart starts it again.
type VPSKeeper interface {
	// MarkVPSStopped marks the VPS stopped before its stop is committed:
	// from then on its container is never removed (not by Kill, not by
	// Forget), and once it no longer runs it is not listed. While it still
	// runs it is listed as before. UnmarkVPSStopped takes the mark back
	// (the stop was not committed).
	MarkVPSStopped(ctx context.Context, id int64) error
	UnmarkVPSStopped(ctx context.Context, id int64) error
	// StopVPS marks the VPS stopped and stops its container without
	// removing it.
	StopVPS(ctx context.Context, id int64) error
	// VPSState says what this runner holds of VPS id's container.
	VPSState(ctx context.Context, id int64) (VPSState, error)
	// RemoveStoppedVPS removes a stopped VPS's container (the task was
	// killed while stopped); a missing one is not an error.
	RemoveStoppedVPS(ctx context.Context, id int64) error
}

// TaskRoot is how a container task's files are reached on its runner as
// the task's own user (see the Docker executor's TaskRoot).
type TaskRoot struct {
	// PID is the container's init process on the host.
	PID int
	// User is the container's "UID[:GID]" ("" or a name: the image's user).
	User string
	// Groups are the supplementary groups added to the container.
	Groups []string
	// WorkDir is the container's working directory.
	WorkDir string
}
