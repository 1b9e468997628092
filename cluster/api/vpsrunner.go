package api

import (
	"context"
	"net/http"
)

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
