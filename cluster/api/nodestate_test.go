package api_test

import (
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// TestNodeState checks the rules the API's state field and the dashboard
// share: offline first, then drained, allocated, mixed, idle.
func TestNodeState(t *testing.T) {
	on := func(mod func(*api.NodeView)) *api.NodeView {
		v := &api.NodeView{Node: fsm.Node{Hostname: "n", Status: fsm.NodeOnline, TotalCores: 4}}
		mod(v)
		return v
	}
	for _, tc := range []struct {
		v    *api.NodeView
		want string
	}{
		{on(func(*api.NodeView) {}), api.NodeStateIdle},
		{on(func(v *api.NodeView) { v.CoresInUse, v.TasksInUse = 1, 1 }), api.NodeStateMixed},
		{on(func(v *api.NodeView) { v.TasksInUse = 1 }), api.NodeStateMixed},
		{on(func(v *api.NodeView) { v.GPUsInUse = []int{0} }), api.NodeStateMixed},
		{on(func(v *api.NodeView) { v.CoresInUse = 4 }), api.NodeStateAllocated},
		{on(func(v *api.NodeView) { v.CoresInUse, v.Drained = 4, true }), api.NodeStateDrained},
		{on(func(v *api.NodeView) { v.Status, v.Drained = fsm.NodeOffline, true }), api.NodeStateOffline},
		{on(func(v *api.NodeView) { v.TotalCores = 0 }), api.NodeStateIdle},
	} {
		if got := api.NodeState(tc.v); got != tc.want {
			t.Errorf("NodeState(%+v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
