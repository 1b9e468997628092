package api

import (
	"context"
	"net/http"
	"time"
)

// MarkVPSStopped asks the runner at runnerURL to mark VPS id stopped
// before the stop is committed (POST /vps/mark): its container is never
// removed from then on. UnmarkVPSStopped takes the mark back.
func (rc *RunnerClient) MarkVPSStopped(ctx context.Context, runnerURL string, id int64) error {
	return rc.c.call(ctx, runnerURL, http.MethodPost, "/vps/mark", TaskRef{TaskID: id}, nil)
}

// UnmarkVPSStopped asks the runner at runnerURL to take VPS id's stopped
// mark back (POST /vps/unmark): its stop was not committed.
func (rc *RunnerClient) UnmarkVPSStopped(ctx context.Context, runnerURL string, id int64) error {
	return rc.c.call(ctx, runnerURL, http.MethodPost, "/vps/unmark", TaskRef{TaskID: id}, nil)
}

// StopVPS asks the runner at runnerURL to stop VPS id's container and keep
// it (POST /vps/stop). A 410 *APIError says the container is gone.
func (rc *RunnerClient) StopVPS(ctx context.Context, runnerURL string, id int64) error {
	return rc.c.call(ctx, runnerURL, http.MethodPost, "/vps/stop", TaskRef{TaskID: id}, nil)
}

// VPSState asks the runner at runnerURL what it holds of VPS id's
// container (POST /vps/state): "absent", "stopped" or "active".
func (rc *RunnerClient) VPSState(ctx context.Context, runnerURL string, id int64) (string, error) {
	var out VPSStateResponse
	if err := rc.c.call(ctx, runnerURL, http.MethodPost, "/vps/state", TaskRef{TaskID: id}, &out); err != nil {
		return "", err
	}
	return out.State, nil
}

// RemoveStoppedVPS asks the runner at runnerURL to remove a stopped VPS's
// container (POST /vps/remove): its task was killed while stopped.
func (rc *RunnerClient) RemoveStoppedVPS(ctx context.Context, runnerURL string, id int64) error {
	return rc.c.call(ctx, runnerURL, http.MethodPost, "/vps/remove", TaskRef{TaskID: id}, nil)
}

// SnapshotVPS asks the runner at runnerURL to commit a VPS into a new
// tarball version of an environment (POST /vps/snapshot).
func (rc *RunnerClient) SnapshotVPS(ctx context.Context, runnerURL string, req VPSSnapshotRequest) (VPSSnapshotResponse, error) {
	var out VPSSnapshotResponse
	err := rc.c.call(ctx, runnerURL, http.MethodPost, "/vps/snapshot", req, &out)
	return out, err
}

// TunnelActivity is what one replica's SSH proxy saw of a VPS's tunnels:
// how many are open and when one last opened or closed.
type TunnelActivity struct {
	Open int       `json:"open"`
	Last time.Time `json:"last"`
}

// VPSActivity is a replica's answer to GET /api/cluster/vps-activity: its
// SSH proxy's tunnels per VPS task since Since (when the proxy started;
// nothing before it is known).
type VPSActivity struct {
	Since time.Time                `json:"since"`
	Tasks map[int64]TunnelActivity `json:"tasks"`
}

// VPSActivity reads the SSH proxy activity of the replica at base.
func (rc *ReplicaClient) VPSActivity(ctx context.Context, base string) (VPSActivity, error) {
	var out VPSActivity
	err := rc.c.call(ctx, base, http.MethodGet, "/api/cluster/vps-activity", nil, &out)
	return out, err
}
