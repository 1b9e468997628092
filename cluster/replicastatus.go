package cluster

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// replicaStatusTimeout bounds the question to each replica.
const replicaStatusTimeout = 2 * time.Second

// handleReplicas serves GET /api/cluster/replicas: every replica of the
// Raft configuration with its own term, indexes and lag, asked in parallel
// (with the cluster token, bounded by replicaStatusTimeout) by this replica,
// so that a dashboard served by any replica shows them all.
func (h *Host) handleReplicas(w http.ResponseWriter, r *http.Request) {
	self := h.Status()
	out := make([]api.ReplicaStatus, len(self.Replicas))
	var wg sync.WaitGroup
	for i, rep := range self.Replicas {
		out[i] = api.ReplicaStatus{ID: rep.ID, API: rep.API, Suffrage: rep.Suffrage, State: rep.State}
		if rep.ID == h.cfg.NodeID {
			out[i].Term, out[i].AppliedIndex, out[i].CommitIndex, out[i].LastIndex = self.Term, self.AppliedIndex, self.CommitIndex, self.LastIndex
			continue
		}
		base := h.replicaAPI(rep.ID)
		if base == "" {
			out[i].State, out[i].Error = "unreachable", "not alive in gossip"
			continue
		}
		wg.Add(1)
		go func(i int, base string) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(r.Context(), replicaStatusTimeout)
			defer cancel()
			st, err := h.replicas.Cluster(ctx, base)
			if err != nil {
				out[i].State, out[i].Error = "unreachable", err.Error()
				return
			}
			out[i].Term, out[i].AppliedIndex, out[i].CommitIndex, out[i].LastIndex = st.Term, st.AppliedIndex, st.CommitIndex, st.LastIndex
			if st.State != "" && out[i].State != "leader" {
				out[i].State = st.State
			}
		}(i, base)
	}
	wg.Wait()
	var commit uint64
	for _, s := range out {
		commit = max(commit, s.CommitIndex)
	}
	for i := range out {
		if out[i].Error == "" && commit > out[i].AppliedIndex {
			out[i].Lag = commit - out[i].AppliedIndex
		}
	}
	writeJSON(w, http.StatusOK, out)
}
