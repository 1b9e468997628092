package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// Cluster serves GET /api/cluster: the replica's view of the cluster.
func (a *API) Cluster(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.d.Cluster.Status())
}

// Join serves POST /api/cluster/join: add a replica as a voter.
func (a *API) Join(w http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if err := DecodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.ID == "" || req.Raft == "" {
		writeError(w, badRequest("id and raft: both are required"))
		return
	}
	if err := checkRaftAddr(r.Context(), req.Raft); err != nil {
		writeError(w, badRequest("raft %q: %v", req.Raft, err))
		return
	}
	a.logMembership(r, "join", "id", req.ID, "raft", req.Raft)
	if err := a.d.Membership.AddVoter(r.Context(), req.ID, req.Raft); err != nil {
		writeError(w, fmt.Errorf("add voter %s: %w", req.ID, err))
		return
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("Replica %s (%s) added as a voter.", req.ID, req.Raft)})
}

// logMembership records, on the leader, a membership change about to be
// made: what, by whom (the caller's address, and the replica that forwarded
// it).
func (a *API) logMembership(r *http.Request, op string, args ...any) {
	args = append([]any{"op", op, "remote", r.RemoteAddr, "forwarded_by", r.Header.Get(api.ForwardedHeader)}, args...)
	a.log.Info("membership change requested", args...)
}

// joinDialTimeout bounds the TCP connect that proves a new voter's Raft
// address answers before it is added.
const joinDialTimeout = 3 * time.Second

// checkRaftAddr refuses a Raft address that is not HOST:PORT or that does
// not accept a TCP connection within joinDialTimeout: an unreachable voter
// would count towards the quorum without ever voting.
func checkRaftAddr(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return errors.New("not HOST:PORT")
	}
	ctx, cancel := context.WithTimeout(ctx, joinDialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("the new voter's Raft address does not answer a TCP connect within %s (start the replica first): %w", joinDialTimeout, err)
	}
	conn.Close() //nolint:errcheck // a probe connection
	return nil
}

// RemovePeer serves DELETE /api/cluster/peers/{id}.
func (a *API) RemovePeer(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	found, err := a.d.Membership.InConfiguration(id)
	if err != nil {
		writeError(w, err)
		return
	}
	if !found {
		writeError(w, notFound("replica %q is not in the raft configuration", id))
		return
	}
	a.logMembership(r, "remove", "id", id)
	if err := a.d.Membership.RemoveVoter(r.Context(), id); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("Replica %s removed.", id)})
}

// Transfer serves POST /api/cluster/leadership-transfer, to the replica
// the body names or (no body, or no id) to any.
func (a *API) Transfer(w http.ResponseWriter, r *http.Request) {
	var req api.TransferRequest
	if r.ContentLength != 0 {
		if err := DecodeJSON(r, &req); err != nil {
			writeError(w, err)
			return
		}
	}
	if req.ID == a.cfg.NodeID {
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("Replica %s is already the leader.", req.ID)})
		return
	}
	a.logMembership(r, "leadership transfer", "to", req.ID)
	if err := a.d.Membership.TransferLeadership(r.Context(), req.ID); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: "Leadership transferred."})
}
