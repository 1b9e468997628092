//go:build integration

package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// testNodeStates (last subtest of TestScheduler: it kills runner r1) checks
// the sinfo-like node states of GET /api/nodes and `node list` on two
// 2-core runners: idle, mixed (one core held), allocated (both held),
// drained (by operator olga through the CLI, who and when recorded) and
// offline (runner killed).
func testNodeStates(t *testing.T, c *harness.Cluster) {
	leader := c.WaitLeader(harness.LeaderTimeout)
	olga := createAccount(t, c, leader, "olga", fsm.RoleOperator)
	cli := func(args ...string) harness.CLIResult {
		t.Helper()
		r := harness.RunCLI(t.Context(), harness.CLICommand{Bin: c.Bin(), Timeout: 30 * time.Second,
			Args: append([]string{"--host", c.HostFlag(c.Running()...)}, args...),
			Env:  []string{"HAKURIVER_TOKEN=" + olga.Token, "HAKURIVER_CREDENTIALS=" + filepath.Join(t.TempDir(), "tokens.json")}})
		if r.Err != nil {
			t.Fatalf("hakuriver %s: %s", strings.Join(args, " "), r)
		}
		return r
	}
	waitState := func(name, want string) api.NodeView {
		t.Helper()
		var n api.NodeView
		c.Poll(hbTimeout+15*time.Second, "node "+name+" "+want, func() (bool, string) {
			var err error
			if n, err = c.Node(name); err != nil {
				return false, err.Error()
			}
			return n.State == want, n.State
		})
		return n
	}
	waitState("r1", api.NodeStateIdle)
	waitState("r2", api.NodeStateIdle)

	via := c.Followers()[0]
	one, two := 1, 2
	a := onTarget(native("sleep", "300"), "r1")
	a.RequiredCores = &one
	b := onTarget(native("sleep", "300"), "r2")
	b.RequiredCores = &two
	ids := []string{submitOne(t, c, via, a), submitOne(t, c, via, b)}
	killOnFailure(t, c, ids...)
	for _, id := range ids {
		c.WaitStatus(id, "running", taskTimeout)
	}
	waitState("r1", api.NodeStateMixed)
	waitState("r2", api.NodeStateAllocated)

	before := time.Now().Add(-time.Second)
	cli("node", "drain", "r2", "--reason", "disk swap")
	t.Cleanup(func() { c.Drain(c.WaitLeader(harness.LeaderTimeout), "r2", false) })
	n := waitState("r2", api.NodeStateDrained)
	if n.DrainReason != "disk swap" || n.DrainedBy != "olga" || n.DrainedAt == nil ||
		n.DrainedAt.Before(before) || n.DrainedAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("r2 drained by olga: reason %q by %q at %v (drain sent after %v)", n.DrainReason, n.DrainedBy, n.DrainedAt, before)
	}
	out := cli("node", "list").Stdout
	if !nodeLineHas(out, "r2", "drained") || !nodeLineHas(out, "r1", "mixed") ||
		!strings.Contains(out, "drained r2: disk swap (by olga at ") {
		t.Fatalf("node list:\n%s", out)
	}
	var views []map[string]any
	if err := json.Unmarshal([]byte(cli("-o", "json", "node", "list").Stdout), &views); err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		if v["hostname"] == "r2" && (v["state"] != "drained" || v["drained_by"] != "olga" || v["drained_at"] == nil) {
			t.Fatalf("node list -o json, r2: %v", v)
		}
	}

	for _, id := range ids {
		c.KillTask(via, id)
		c.WaitFinal(id, taskTimeout)
	}
	waitState("r1", api.NodeStateIdle)
	waitState("r2", api.NodeStateDrained)

	c.KillRunner("r1")
	waitState("r1", api.NodeStateOffline)
}
