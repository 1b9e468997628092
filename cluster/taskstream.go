package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Finding a task's runner and opening an authenticated stream to it: the
// one place the replica's task access (forward, cp; exec later) reaches
// runners. Everything comes from this replica's own state, never from
// the leader, so that a stream keeps working, and new ones open, while
// the leader changes.

// errRunnerUnreachable marks a runner that could not be reached (502).
var errRunnerUnreachable = errors.New("runner unreachable")

// taskRunner returns the base URL of the runner that runs t, which must
// be running or paused.
func (h *Host) taskRunner(t *fsm.Task) (string, error) {
	if !runningStatus(t.Status) {
		return "", &httpError{status: http.StatusConflict, msg: fmt.Sprintf("task %d is %s, not running", t.TaskID, t.Status)}
	}
	n, ok := h.machine.Node(t.AssignedNode)
	if !ok || n.URL == "" {
		return "", &httpError{status: http.StatusConflict, msg: fmt.Sprintf("task %d: its node %q is not known", t.TaskID, t.AssignedNode)}
	}
	return n.URL, nil
}

// dialTaskStream opens a raw byte stream (api.StreamProtocol) to path on
// t's runner, with the cluster token. A runner's refusal comes back as an
// error carrying its status (runnerError).
func (h *Host) dialTaskStream(ctx context.Context, t *fsm.Task, pathQuery string) (net.Conn, error) {
	base, err := h.taskRunner(t)
	if err != nil {
		return nil, err
	}
	d := api.StreamDialer{Token: h.cfg.ClusterToken}
	if h.cfg.TLS != nil {
		d.TLS = h.cfg.TLS.Client()
	}
	conn, err := d.DialStream(ctx, base, pathQuery)
	if err != nil {
		return nil, runnerError(t, err)
	}
	return conn, nil
}

// taskRunnerRequest sends method path (with body, streamed) to t's runner
// with the cluster token and returns its 2xx answer, whose body the
// caller reads and closes; there is no overall deadline, only ctx.
func (h *Host) taskRunnerRequest(ctx context.Context, t *fsm.Task, method, pathQuery string, body io.Reader) (*http.Response, error) {
	base, err := h.taskRunner(t)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+pathQuery, body)
	if err != nil {
		return nil, fmt.Errorf("runner request: %w", err)
	}
	req.Header.Set(api.TokenHeader, h.cfg.ClusterToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-tar")
	}
	resp, err := (&http.Client{Transport: h.fwd.Transport}).Do(req)
	if err != nil {
		return nil, runnerError(t, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16)) //nolint:errcheck // a partial body still has the message
		return nil, runnerError(t, &api.APIError{StatusCode: resp.StatusCode, Message: api.ErrorMessage(b), Host: req.URL.Host})
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
