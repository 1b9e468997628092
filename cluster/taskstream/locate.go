// Package taskstream reaches into running tasks through their runners,
// for whatever streams into a task through any replica (exec, port
// forwarding, file copy): it finds a task's runner in the replica's local
// state (locate.go), opens authenticated connections to it with the
// cluster token and, when the cluster has it, TLS (client.go: WebSockets,
// raw byte streams, plain requests), and relays a client's WebSocket to
// the runner's frame by frame (relay.go). Nothing here asks the leader: a
// stream keeps working while leadership changes.
package taskstream

import (
	"fmt"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Errors of Locate and RunnerURL; each wraps a sentinel the API maps to
// an HTTP status.
var (
	// ErrNotFound: no such task in the local state (404).
	ErrNotFound = fsm.ErrNotFound
	// ErrNotRunning: the task is not running, or its runner is unknown
	// or offline (409).
	ErrNotRunning = fsm.ErrConflict
)

// Tasks and Nodes are the read-only state Locate uses (*fsm.Machine is
// both).
type Tasks interface {
	Task(id int64) (*fsm.Task, bool)
}

// Nodes gives the committed runner nodes.
type Nodes interface {
	Node(hostname string) (*fsm.Node, bool)
}

// Target is a running task and its runner's API base URL.
type Target struct {
	Task      *fsm.Task
	RunnerURL string
}

// Reach says which tasks and runners a kind of stream accepts.
type Reach struct {
	// Paused accepts a paused task too (a forward or a copy reaches its
	// files and sockets; exec needs its processes to run).
	Paused bool
	// OfflineRunner accepts a runner the committed state calls offline
	// (a runner cut off from the leader may still be reachable from this
	// replica: the dial decides).
	OfflineRunner bool
}

// Locate finds running task id and its runner, online, in the local
// state (Reach{}).
func Locate(tasks Tasks, nodes Nodes, id int64) (Target, error) {
	t, ok := tasks.Task(id)
	if !ok {
		return Target{}, fmt.Errorf("%w: task %d", ErrNotFound, id)
	}
	u, err := RunnerURL(nodes, t, Reach{})
	return Target{Task: t, RunnerURL: u}, err
}

// RunnerURL returns the API base URL of the runner of t (from the local
// state, or the leader's view of a task this replica has not yet seen
// start) if reach accepts t and its runner.
func RunnerURL(nodes Nodes, t *fsm.Task, reach Reach) (string, error) {
	if t.Status != fsm.StatusRunning && (!reach.Paused || t.Status != fsm.StatusPaused) {
		return "", fmt.Errorf("%w: task %d is %s, not running", ErrNotRunning, t.TaskID, t.Status)
	}
	n, ok := nodes.Node(t.AssignedNode)
	if !ok || n.URL == "" {
		return "", fmt.Errorf("%w: task %d: its runner %q is unknown", ErrNotRunning, t.TaskID, t.AssignedNode)
	}
	if n.Status != fsm.NodeOnline && !reach.OfflineRunner {
		return "", fmt.Errorf("%w: task %d: its runner %s is %s", ErrNotRunning, t.TaskID, n.Hostname, n.Status)
	}
	return n.URL, nil
}
