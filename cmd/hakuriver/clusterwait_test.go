package main

import (
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

func TestJudgeHealth(t *testing.T) {
	hb := func(s string) *string { return &s }
	up := []api.ReplicaStatus{
		{ID: "h1", State: "leader", Term: 4, AppliedIndex: 100, CommitIndex: 100},
		{ID: "h2", State: "follower", Term: 4, AppliedIndex: 98, CommitIndex: 100, Lag: 2},
		{ID: "h3", State: "follower", Term: 4, AppliedIndex: 100, CommitIndex: 100},
	}
	with := func(i int, f func(*api.ReplicaStatus)) []api.ReplicaStatus {
		out := append([]api.ReplicaStatus(nil), up...)
		f(&out[i])
		return out
	}
	node := func(name string, st fsm.NodeStatus, beat string) api.NodeView {
		n := api.NodeView{Node: fsm.Node{Hostname: name, Status: st}}
		if beat != "" {
			n.LastHeartbeat = hb(beat)
		}
		return n
	}
	tests := []struct {
		name    string
		reps    []api.ReplicaStatus
		nodes   []api.NodeView
		runners []string
		maxLag  uint64
		floor   uint64
		first   map[string]string
		want    string // "" healthy, else a part of the reason
	}{
		{"all caught up", up, nil, nil, 50, 0, nil, ""},
		{"lag within bound", up, nil, nil, 2, 0, nil, ""},
		{"lag over bound", up, nil, nil, 1, 0, nil, "replica h2 2 entries behind (at most 1)"},
		{"no leader", with(0, func(r *api.ReplicaStatus) { r.State = "follower" }), nil, nil, 50, 0, nil, "no leader"},
		{"unreachable", with(2, func(r *api.ReplicaStatus) { r.State, r.Error = "unreachable", "not alive in gossip" }), nil, nil, 50, 0, nil, "replica h3 unreachable (not alive in gossip)"},
		{"old term", with(1, func(r *api.ReplicaStatus) { r.Term = 3 }), nil, nil, 50, 0, nil, "replica h2 in term 3"},
		{"no replicas", nil, nil, nil, 50, 0, nil, "no replica"},
		{"runner first look", up, []api.NodeView{node("r1", fsm.NodeOnline, "t1")}, []string{"r1"}, 50, 0, nil, "runner r1: no new heartbeat yet"},
		{"runner same heartbeat", up, []api.NodeView{node("r1", fsm.NodeOnline, "t1")}, []string{"r1"}, 50, 0, map[string]string{"r1": "t1"}, "no new heartbeat"},
		{"runner new heartbeat", up, []api.NodeView{node("r1", fsm.NodeOnline, "t2")}, []string{"r1"}, 50, 0, map[string]string{"r1": "t1"}, ""},
		{"runner first heartbeat of a new leader", up, []api.NodeView{node("r1", fsm.NodeOnline, "t2")}, []string{"r1"}, 50, 0, map[string]string{"r1": ""}, ""},
		{"runner offline", up, []api.NodeView{node("r1", fsm.NodeOffline, "t2")}, []string{"r1"}, 50, 0, map[string]string{"r1": "t1"}, "runner r1 offline"},
		{"runner unknown", up, nil, []string{"r9"}, 50, 0, map[string]string{}, "runner r9 not registered"},
		{"restarted replica short of the first commit index", with(2, func(r *api.ReplicaStatus) { r.AppliedIndex, r.CommitIndex, r.Lag = 0, 0, 34 }), nil, nil, 50, 100, nil, "replica h3 applied up to 0, short of 100"},
		{"every replica at the first commit index", up, nil, nil, 50, 98, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := judgeHealth(tt.reps, tt.nodes, tt.runners, tt.maxLag, tt.floor, tt.first)
			if tt.want == "" {
				if !rep.Healthy || rep.Reason != "" {
					t.Fatalf("want healthy, got %+v", rep)
				}
				return
			}
			if rep.Healthy || !strings.Contains(rep.Reason, tt.want) {
				t.Fatalf("want unhealthy with %q, got %+v", tt.want, rep)
			}
		})
	}
}
