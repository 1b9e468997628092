package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestClusterIDChosenOnce checks that the first leader names the cluster,
// that every replica reports the same ID in GET /api/cluster and in the
// register answer, and that neither a new leader nor a second proposal
// changes it.
func TestClusterIDChosenOnce(t *testing.T) {
	hosts := startCluster(t, 3)
	var id string
	waitFor(t, 10*time.Second, func() bool {
		id = hosts[0].Machine().ClusterID()
		for _, h := range hosts {
			if h.Machine().ClusterID() == "" || h.Machine().ClusterID() != id {
				return false
			}
		}
		return true
	})
	for _, h := range hosts {
		resp, body := do(t, "GET", h.APIURL()+"/api/cluster", nil)
		var st api.ClusterStatus
		if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != http.StatusOK || st.ClusterID != id {
			t.Fatalf("GET /api/cluster on %s: %d %s, want cluster_id %s", h.NodeID(), resp.StatusCode, body, id)
		}
	}
	resp, body := do(t, "POST", hosts[1].APIURL()+"/api/register", api.RegisterRequest{
		Hostname: "r1", TotalCores: 1, TotalRAMBytes: 1 << 30, RunnerURL: "http://127.0.0.1:1"})
	var reg api.RegisterResponse
	if err := json.Unmarshal(body, &reg); err != nil || resp.StatusCode != http.StatusOK || reg.ClusterID != id || reg.Message == "" {
		t.Fatalf("register answer %d %s, want cluster_id %s", resp.StatusCode, body, id)
	}

	// A second proposal (a leader that raced the first) changes nothing.
	var leader *Host
	for _, h := range hosts {
		if h.IsLeader() {
			leader = h
		}
	}
	if v, err := leader.apply(context.Background(), &fsm.SetClusterID{ID: "ffffffffffff"}); err != nil || v != id {
		t.Fatalf("second SetClusterID = %v, %v; want %s kept", v, err, id)
	}
	// A new leader keeps it.
	if err := leader.raft.r.LeadershipTransfer().Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() bool {
		for _, h := range hosts {
			if h != leader && h.IsLeader() {
				return true
			}
		}
		return false
	})
	for _, h := range hosts {
		if got := h.Machine().ClusterID(); got != id {
			t.Fatalf("%s: cluster ID %q after a leader change, want %s", h.NodeID(), got, id)
		}
	}
}
