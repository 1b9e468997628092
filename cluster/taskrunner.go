package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/taskstream"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Finding a task's runner and reaching it: the replica's task access
// (exec, forward, cp) finds the task in this replica's own state (asking
// the leader only for a task not yet seen running here) and its runner in
// the local node table (taskstream.RunnerURL); every connection to the
// runner goes through one taskstream.Client (cluster token, TLS). The
// stream itself never involves the leader, so that it keeps working, and
// new ones open, while the leader changes.

// errRunnerUnreachable marks a runner that could not be reached (502).
var errRunnerUnreachable = errors.New("runner unreachable")

// leaderLookupBound bounds asking the leader for a task.
const leaderLookupBound = 3 * time.Second

func runningStatus(s fsm.Status) bool { return s == fsm.StatusRunning || s == fsm.StatusPaused }

// runnerClient reaches runners with the cluster token (and TLS).
func (h *Host) runnerClient() taskstream.Client {
	c := taskstream.Client{Token: h.cfg.ClusterToken, HTTP: &http.Client{Transport: h.fwd.Transport}}
	if h.cfg.TLS != nil {
		c.TLS = h.cfg.TLS.Client()
	}
	return c
}

// FindTask returns task id from this replica's state, or, when it is not
// here or not running yet (a replica lagging behind the leader, a task
// just started), from the leader's view when there is a leader to ask.
func (h *Host) FindTask(ctx context.Context, id int64) (*fsm.Task, bool) {
	t, ok := h.machine.Task(id)
	if !ok || !runningStatus(t.Status) {
		if lt, err := h.leaderTask(ctx, id); err == nil {
			t, ok = lt, true
		}
	}
	return t, ok
}

// leaderTask reads task id from the leader (after its Barrier); an error
// when this replica leads (its own state is the answer), when no leader
// is known or it does not answer within leaderLookupBound.
func (h *Host) leaderTask(ctx context.Context, id int64) (*fsm.Task, error) {
	lid, base := h.leaderInfo()
	if lid == "" || base == "" || lid == h.cfg.NodeID {
		return nil, ErrNoLeader
	}
	ctx, cancel := context.WithTimeout(ctx, leaderLookupBound)
	defer cancel()
	t, err := h.replicas.Task(ctx, base, id)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// taskRunner returns the base URL of the runner of t for a forward or a
// copy: t must be running or paused (409 otherwise), on a runner this
// replica may still reach whatever the leader thinks of it.
func (h *Host) taskRunner(t *fsm.Task) (string, error) {
	return taskstream.RunnerURL(h.machine, t, taskstream.Reach{Paused: true, OfflineRunner: true})
}

// dialTaskStream opens a raw byte stream (api.StreamProtocol) to path on
// t's runner. A runner's refusal comes back as an error carrying its
// status (runnerError).
func (h *Host) dialTaskStream(ctx context.Context, t *fsm.Task, pathQuery string) (net.Conn, error) {
	base, err := h.taskRunner(t)
	if err != nil {
		return nil, err
	}
	conn, err := h.runnerClient().DialStream(ctx, base, pathQuery)
	if err != nil {
		return nil, runnerError(t, err)
	}
	return conn, nil
}

// taskRunnerRequest sends method path (with a tar body, streamed) to t's
// runner and returns its 2xx answer, whose body the caller reads and
// closes; there is no overall deadline, only ctx.
func (h *Host) taskRunnerRequest(ctx context.Context, t *fsm.Task, method, pathQuery string, body io.Reader) (*http.Response, error) {
	base, err := h.taskRunner(t)
	if err != nil {
		return nil, err
	}
	resp, err := h.runnerClient().Do(ctx, method, base, pathQuery, body, "application/x-tar")
	if err != nil {
		return nil, runnerError(t, err)
	}
	return resp, nil
}

// runnerError maps a runner's answer to the caller's: the runner's own
// 4xx (the task or path unknown there, a refused archive) with its
// message, anything else 502.
func runnerError(t *fsm.Task, err error) error {
	var ae *api.APIError
	if errors.As(err, &ae) && ae.StatusCode >= 400 && ae.StatusCode < 500 && ae.StatusCode != http.StatusUnauthorized {
		return &httpError{status: ae.StatusCode, msg: ae.Message}
	}
	if errors.As(err, &ae) && ae.StatusCode == http.StatusBadGateway {
		return &httpError{status: http.StatusBadGateway, msg: ae.Message}
	}
	return &httpError{status: http.StatusBadGateway, msg: fmt.Sprintf("task %d: runner %s: %v: %v", t.TaskID, t.AssignedNode, errRunnerUnreachable, err)}
}
