package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// VPSSnapshots is the committed record of VPS snapshots (*fsm.Machine is
// one).
type VPSSnapshots interface {
	VPSSnapshots() []fsm.VPSSnapshot
	VPSSnapshotNamed(name string) (fsm.VPSSnapshot, bool)
	CheckVPSSnapshot(c *fsm.SetVPSSnapshot) error
	ClusterID() string
}

// VPSSnapshotter is the leader's way to commit a VPS on its runner.
type VPSSnapshotter interface {
	SnapshotVPS(ctx context.Context, runnerURL string, req api.VPSSnapshotRequest) (api.VPSSnapshotResponse, error)
}

// DefaultSnapshotKeep is how many versions of a snapshot are kept when
// the request names no ?keep.
const DefaultSnapshotKeep = 3

// snapshotTimeout bounds the runner's commit and save of one snapshot.
const snapshotTimeout = 20 * time.Minute

// defaultSnapshotName names a VPS's snapshot when the caller gives none.
func defaultSnapshotName(t *fsm.Task) string {
	if t.Name != "" {
		if n := "snap-" + lower(t.Name); environment.CheckName(n) == nil {
			return n
		}
	}
	return fmt.Sprintf("snap-vps-%d", t.TaskID)
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// snapshotParams reads ?name and ?keep of a snapshot request.
func snapshotParams(r *http.Request, t *fsm.Task) (name string, keep int, err error) {
	q := r.URL.Query()
	name, keep = q.Get("name"), DefaultSnapshotKeep
	if name == "" {
		name = defaultSnapshotName(t)
	}
	if err := environment.CheckName(name); err != nil {
		return "", 0, badRequest("name: %s", environment.Reason(err, environment.ErrInvalid))
	}
	if k := q.Get("keep"); k != "" {
		n, err := strconv.Atoi(k)
		if err != nil || n < 1 || n > 100 {
			return "", 0, badRequest("keep %q: must be an integer between 1 and 100", k)
		}
		keep = n
	}
	return name, keep, nil
}

// VPSSnapshot serves POST /api/vps/{id}/snapshot?name=NAME&keep=N on the
// leader: the VPS's runner commits its container (running, paused or
// stopped) into a new tarball version of the environment NAME, keeping the
// newest N, and the leader records it (fsm.SetVPSSnapshot). A VPS created
// with container_name NAME starts from it. NAME defaults to snap-<VPS
// name>, or snap-vps-<ID>.
func (a *API) VPSSnapshot(w http.ResponseWriter, r *http.Request) {
	t, n, ok := a.lifecycleVPS(w, r, "snapshot")
	if !ok {
		return
	}
	name, keep, err := snapshotParams(r, t)
	if err != nil {
		writeError(w, err)
		return
	}
	s, err := a.snapshot(r, t, n, name, keep)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

// snapshot commits VPS t on node n into snapshot name and records it.
func (a *API) snapshot(r *http.Request, t *fsm.Task, n *fsm.Node, name string, keep int) (fsm.VPSSnapshot, error) {
	id := t.TaskID
	switch {
	case t.Status != fsm.StatusRunning && t.Status != fsm.StatusPaused && t.Status != fsm.StatusStopped:
		return fsm.VPSSnapshot{}, conflict("VPS %d cannot be snapshotted: it is %s", id, t.Status)
	case n == nil || n.Status != fsm.NodeOnline:
		return fsm.VPSSnapshot{}, conflict("VPS %d cannot be snapshotted: its node %s is not online", id, t.AssignedNode)
	case a.d.Snapshots == nil || a.d.Snapshotter == nil:
		return fsm.VPSSnapshot{}, errors.New("VPS snapshots are not wired on this replica")
	}
	if name == a.cfg.DefaultContainer && !principal(r).Can(fsm.RoleOperator) {
		// Not yet an environment (its tarball comes later), the default
		// would otherwise become this VPS's image for every task that
		// names no environment, whoever submits it.
		return fsm.VPSSnapshot{}, forbidden(fmt.Sprintf("forbidden: name: %s is the cluster's default environment; only an operator may snapshot into it", name))
	}
	old, exists := a.d.Snapshots.VPSSnapshotNamed(name)
	if exists && old.Owner != t.Owner && !principal(r).Can(fsm.RoleOperator) {
		return fsm.VPSSnapshot{}, forbidden(fmt.Sprintf("forbidden: snapshot %s belongs to %s", name, old.Owner))
	}
	// The name must be free or a snapshot already (checked again on apply).
	probe := &fsm.SetVPSSnapshot{Snapshot: &fsm.VPSSnapshot{Name: name, TaskID: id, Version: max(old.Version, 0) + 1, SHA256: zeroSHA}}
	if err := a.d.Snapshots.CheckVPSSnapshot(probe); err != nil {
		return fsm.VPSSnapshot{}, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), snapshotTimeout)
	defer cancel()
	tb, err := a.d.Snapshotter.SnapshotVPS(ctx, n.URL, api.VPSSnapshotRequest{TaskID: id, Name: name,
		ClusterID: a.d.Snapshots.ClusterID(), After: old.Version, Keep: keep})
	if err != nil {
		return fsm.VPSSnapshot{}, runnerFailure(id, n.Hostname, "snapshot", err)
	}
	s := fsm.VPSSnapshot{Name: name, Owner: t.Owner, TaskID: id, Version: tb.Version, SHA256: tb.SHA256, Size: tb.Size, At: time.Now().UTC()}
	pctx, pcancel := ApplyContext(r)
	defer pcancel()
	if _, err := a.d.Proposer.Propose(pctx, &fsm.SetVPSSnapshot{Snapshot: &s}); err != nil {
		return fsm.VPSSnapshot{}, err
	}
	return s, nil
}

// zeroSHA is a well-formed hash for the pre-check of a snapshot's name.
var zeroSHA = fmt.Sprintf("%064d", 0)

// VPSSnapshotList serves GET /api/vps/snapshots: every VPS snapshot by
// name, from the local FSM.
func (a *API) VPSSnapshotList(w http.ResponseWriter, r *http.Request) {
	out := []fsm.VPSSnapshot{}
	if a.d.Snapshots != nil {
		out = append(out, a.d.Snapshots.VPSSnapshots()...)
	}
	writeJSON(w, http.StatusOK, out)
}

// VPSSnapshotDelete serves DELETE /api/vps/snapshots/{name} on the leader
// (its owner or an operator): the record goes, so no VPS can be created
// from it any more, then its tarballs are removed from shared storage.
func (a *API) VPSSnapshotDelete(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if err := environment.CheckName(name); err != nil {
		writeError(w, badRequest("name: %s", environment.Reason(err, environment.ErrInvalid)))
		return
	}
	if err := noBody(r); err != nil {
		writeError(w, err)
		return
	}
	if a.d.Snapshots == nil {
		writeError(w, errors.New("VPS snapshots are not wired on this replica"))
		return
	}
	s, ok := a.d.Snapshots.VPSSnapshotNamed(name)
	if !ok {
		writeError(w, notFound("VPS snapshot %s not found", name))
		return
	}
	if p := principal(r); !p.Can(fsm.RoleOperator) && !(p.Can(fsm.RoleUser) && p.Owns(s.Owner)) {
		writeError(w, forbidden(fmt.Sprintf("forbidden: snapshot %s belongs to %s; only its owner or an operator may delete it", name, orAnon(s.Owner))))
		return
	}
	ctx, cancel := ApplyContext(r)
	defer cancel()
	if _, err := a.d.Proposer.Propose(ctx, &fsm.SetVPSSnapshot{Delete: name}); err != nil {
		writeError(w, err)
		return
	}
	removed := 0
	if a.cfg.TarballDir != "" {
		all, err := environment.ListTarballs(a.cfg.TarballDir)
		if err != nil {
			a.log.Warn("list the tarballs of a deleted snapshot", "snapshot", name, "err", err)
		}
		for _, tb := range all[name] {
			if err := os.Remove(tb.Path); err != nil && !os.IsNotExist(err) {
				a.log.Warn("remove a tarball of a deleted snapshot", "snapshot", name, "path", tb.Path, "err", err)
				continue
			}
			removed++
		}
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("VPS snapshot %s deleted (%d tarballs removed).", name, removed)})
}

func orAnon(owner string) string {
	if owner == "" {
		return "nobody"
	}
	return owner
}
