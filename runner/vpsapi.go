package runner

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
	"github.com/hakuriver/hakuriver-ha/runner/executor"
)

// handleVPSOp serves the VPS lifecycle calls of the leader (cluster token
// only, as every runner route): POST /vps/mark marks a VPS stopped before
// the leader commits the stop (/vps/unmark takes it back), /vps/stop stops
// its container and keeps it, /vps/state says what this runner holds of
// it, /vps/remove removes a stopped one (its task was killed). The body is
// an api.TaskRef.
func (a *Agent) handleVPSOp(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var ref api.TaskRef
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&ref); err != nil || ref.TaskID <= 0 {
			writeErr(w, http.StatusBadRequest, "task_id: required, a positive task ID")
			return
		}
		k, ok := a.cfg.Docker.(executor.VPSKeeper)
		if a.cfg.Docker == nil || !ok {
			writeErr(w, http.StatusBadRequest, "runner %s has no Docker executor: it holds no VPS", a.cfg.Name)
			return
		}
		var err error
		switch op {
		case "mark":
			err = k.MarkVPSStopped(r.Context(), ref.TaskID)
		case "unmark":
			err = k.UnmarkVPSStopped(r.Context(), ref.TaskID)
		case "stop":
			err = k.StopVPS(r.Context(), ref.TaskID)
		case "remove":
			err = k.RemoveStoppedVPS(r.Context(), ref.TaskID)
		case "state":
			var st executor.VPSState
			if st, err = k.VPSState(r.Context(), ref.TaskID); err == nil {
				api.WriteJSON(w, http.StatusOK, api.VPSStateResponse{TaskID: ref.TaskID, State: string(st)})
				return
			}
		}
		switch {
		case errors.Is(err, executor.ErrVPSGone):
			writeErr(w, http.StatusGone, "VPS %d: its container no longer exists on %s", ref.TaskID, a.cfg.Name)
			return
		case errors.Is(err, environment.ErrConflict):
			writeErr(w, http.StatusConflict, "VPS %d: %v", ref.TaskID, err)
			return
		case err != nil:
			a.log.Error("VPS "+op, "task_id", ref.TaskID, "err", err)
			writeErr(w, http.StatusInternalServerError, "VPS %s %d: %v", op, ref.TaskID, err)
			return
		}
		a.log.Info("VPS "+op, "task_id", ref.TaskID)
		a.kickFor(nil)
		api.WriteJSON(w, http.StatusOK, api.MessageResponse{Message: "VPS " + op + " done"})
	}
}

// vpsSnapshotter is implemented by the Docker executor (SnapshotVPS).
type vpsSnapshotter interface {
	SnapshotVPS(ctx context.Context, id int64, env, cluster string, after int64, keep int) (environment.Tarball, error)
}

// snapshotBound bounds one snapshot: a commit and a save of the whole
// image to shared storage.
const snapshotBound = 20 * time.Minute

// handleVPSSnapshot serves POST /vps/snapshot (api.VPSSnapshotRequest):
// the VPS's container is committed and saved as a new tarball version of
// the snapshot's environment; the answer is that tarball, which the leader
// records.
func (a *Agent) handleVPSSnapshot(w http.ResponseWriter, r *http.Request) {
	var req api.VPSSnapshotRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.TaskID <= 0 {
		writeErr(w, http.StatusBadRequest, "task_id: required, a positive task ID")
		return
	}
	if err := environment.CheckName(req.Name); err != nil {
		writeErr(w, http.StatusBadRequest, "name %q: %v", req.Name, err)
		return
	}
	k, ok := a.cfg.Docker.(vpsSnapshotter)
	if a.cfg.Docker == nil || !ok {
		writeErr(w, http.StatusBadRequest, "runner %s has no Docker executor: it holds no VPS", a.cfg.Name)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), snapshotBound)
	defer cancel()
	tb, err := k.SnapshotVPS(ctx, req.TaskID, req.Name, req.ClusterID, req.After, req.Keep)
	switch {
	case errors.Is(err, executor.ErrVPSGone):
		writeErr(w, http.StatusGone, "VPS %d: its container no longer exists on %s", req.TaskID, a.cfg.Name)
		return
	case errors.Is(err, environment.ErrConflict), errors.Is(err, environment.ErrInvalid):
		writeErr(w, http.StatusConflict, "VPS %d: %v", req.TaskID, err)
		return
	case err != nil:
		a.log.Error("VPS snapshot", "task_id", req.TaskID, "err", err)
		writeErr(w, http.StatusInternalServerError, "snapshot VPS %d: %v", req.TaskID, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, api.VPSSnapshotResponse{Name: tb.Env, Version: tb.Version, Path: tb.Path, Size: tb.Size, SHA256: tb.SHA256})
}
