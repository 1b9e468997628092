package cluster

import (
	"context"
	"fmt"
	"strconv"
	"time"

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

// AddVoter adds replica id at Raft address addr as a voter (leader only).
func (h *Host) AddVoter(ctx context.Context, id, addr string) error {
	if err := h.raft.r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 10*time.Second).Error(); err != nil {
		return err
	}
	h.recordAct(ctx, "add_voter", "replica "+id+" at "+addr)
	return nil
}

// InConfiguration reports whether replica id is in the Raft configuration.
func (h *Host) InConfiguration(id string) (bool, error) {
	cf := h.raft.r.GetConfiguration()
	if err := cf.Error(); err != nil {
		return false, fmt.Errorf("read raft configuration: %w", err)
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) == id {
			return true, nil
		}
	}
	return false, nil
}

// RemoveVoter removes replica id from the Raft configuration (leader only);
// a 404 error when it is not in it.
func (h *Host) RemoveVoter(ctx context.Context, id string) error {
	found, err := h.InConfiguration(id)
	if err != nil {
		return err
	}
	if !found {
		return notFound("replica %q is not in the raft configuration", id)
	}
	if err := h.raft.r.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		return fmt.Errorf("remove replica %s: %w", id, err)
	}
	h.recordAct(ctx, "remove_voter", "replica "+id)
	return nil
}

// TransferLeadership hands leadership to replica id, or to any replica
// when id is "" (leader only); a 404 error when id is not in the Raft
// configuration.
func (h *Host) TransferLeadership(ctx context.Context, id string) error {
	var addr raft.ServerAddress
	if id != "" {
		for _, s := range h.raft.r.GetConfiguration().Configuration().Servers {
			if string(s.ID) == id {
				addr = s.Address
			}
		}
		if addr == "" {
			return notFound("replica %q is not in the raft configuration", id)
		}
	}
	// Recorded before: this replica is no longer the leader afterwards.
	target := "to any replica"
	if id != "" {
		target = "to replica " + id
	}
	h.recordAct(ctx, "leadership_transfer", target)
	var f raft.Future
	if id == "" {
		f = h.raft.r.LeadershipTransfer()
	} else {
		f = h.raft.r.LeadershipTransferToServer(raft.ServerID(id), addr)
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("leadership transfer: %w", err)
	}
	return nil
}
