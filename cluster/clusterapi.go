package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/hashicorp/raft"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// Status returns the replica's view of the cluster (served by GET
// /api/cluster).
func (h *Host) Status() api.ClusterStatus {
	st := h.raft.r.Stats()
	u := func(k string) uint64 { v, _ := strconv.ParseUint(st[k], 10, 64); return v }
	leaderID, leaderAPI := h.leaderInfo()
	out := api.ClusterStatus{
		NodeID:       h.cfg.NodeID,
		LeaderID:     leaderID,
		LeaderAPI:    leaderAPI,
		Term:         u("term"),
		AppliedIndex: h.machine.AppliedIndex(),
		CommitIndex:  u("commit_index"),
		LastIndex:    u("last_log_index"),
		State:        stateName(h.raft.r.State()),
		Replicas:     []api.Replica{},

		HeartbeatIntervalSeconds: h.cfg.HeartbeatInterval.Seconds(),
		ClusterID:                h.machine.ClusterID(),
	}
	members := map[string]string{}
	proxies := map[string]string{}
	for _, m := range h.aliveHosts() {
		members[m.Name] = m.Meta.API
		proxies[m.Name] = m.Meta.SSHProxy
	}
	cf := h.raft.r.GetConfiguration()
	if cf.Error() != nil {
		return out
	}
	for _, s := range cf.Configuration().Servers {
		rep := api.Replica{ID: string(s.ID), Raft: string(s.Address), Suffrage: s.Suffrage.String(), State: "unreachable", SSHProxy: proxies[string(s.ID)]}
		if a, ok := members[string(s.ID)]; ok {
			rep.API, rep.State = a, "follower"
		}
		if string(s.ID) == h.cfg.NodeID {
			rep.API = h.apiURL
			rep.SSHProxy = h.sshProxyMeta()
			rep.State = stateName(h.raft.r.State())
		}
		if string(s.ID) == leaderID {
			rep.State = "leader"
		}
		out.Replicas = append(out.Replicas, rep)
	}
	return out
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Candidate:
		return "candidate"
	case raft.Shutdown:
		return "shutdown"
	}
	return "follower"
}

func (h *Host) handleCluster(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.Status())
}

func (h *Host) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if err := decodeJSON(r, &req); err != nil {
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
	h.logMembership(r, "join", "id", req.ID, "raft", req.Raft)
	if err := h.raft.r.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Raft), 0, 10*time.Second).Error(); err != nil {
		writeError(w, fmt.Errorf("add voter %s: %w", req.ID, err))
		return
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("Replica %s (%s) added as a voter.", req.ID, req.Raft)})
}

// logMembership records, on the leader, a membership change about to be
// made: what, by whom (the caller's address, and the replica that forwarded
// it).
func (h *Host) logMembership(r *http.Request, op string, args ...any) {
	args = append([]any{"op", op, "remote", r.RemoteAddr, "forwarded_by", r.Header.Get(api.ForwardedHeader)}, args...)
	h.log.Info("membership change requested", args...)
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

func (h *Host) handleRemovePeer(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	cf := h.raft.r.GetConfiguration()
	if err := cf.Error(); err != nil {
		writeError(w, fmt.Errorf("read raft configuration: %w", err))
		return
	}
	found := false
	for _, s := range cf.Configuration().Servers {
		found = found || string(s.ID) == id
	}
	if !found {
		writeError(w, notFound("replica %q is not in the raft configuration", id))
		return
	}
	h.logMembership(r, "remove", "id", id)
	if err := h.raft.r.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		writeError(w, fmt.Errorf("remove replica %s: %w", id, err))
		return
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("Replica %s removed.", id)})
}

func (h *Host) handleTransfer(w http.ResponseWriter, r *http.Request) {
	var req api.TransferRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			writeError(w, err)
			return
		}
	}
	if req.ID == h.cfg.NodeID {
		writeJSON(w, http.StatusOK, api.MessageResponse{Message: fmt.Sprintf("Replica %s is already the leader.", req.ID)})
		return
	}
	h.logMembership(r, "leadership transfer", "to", req.ID)
	var f raft.Future
	if req.ID == "" {
		f = h.raft.r.LeadershipTransfer()
	} else {
		var addr raft.ServerAddress
		for _, s := range h.raft.r.GetConfiguration().Configuration().Servers {
			if string(s.ID) == req.ID {
				addr = s.Address
			}
		}
		if addr == "" {
			writeError(w, notFound("replica %q is not in the raft configuration", req.ID))
			return
		}
		f = h.raft.r.LeadershipTransferToServer(raft.ServerID(req.ID), addr)
	}
	if err := f.Error(); err != nil {
		writeError(w, fmt.Errorf("leadership transfer: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: "Leadership transferred."})
}
