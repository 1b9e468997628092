//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// membershipTimeout bounds a configuration change to take effect everywhere.
const membershipTimeout = 30 * time.Second

// call sends one request to replica i and fails the test on a transport
// error or on a status other than want.
func call(t *testing.T, c *harness.Cluster, i int, method, path string, body any, want int) harness.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	a, err := c.Call(ctx, i, method, path, body)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, c.Replica(i).ID, err)
	}
	if a.Status != want {
		t.Fatalf("%s %s on %s: want %d, got %s", method, path, c.Replica(i).ID, want, a)
	}
	return a
}

// callAdmin is call with the cluster token, as membership changes need.
func callAdmin(t *testing.T, c *harness.Cluster, i int, method, path string, body any, want int) harness.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	a, err := c.CallInternal(ctx, i, method, path, body)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, c.Replica(i).ID, err)
	}
	if a.Status != want {
		t.Fatalf("%s %s on %s: want %d, got %s", method, path, c.Replica(i).ID, want, a)
	}
	return a
}

// checkReplicas reports whether st lists exactly the replicas idxs as
// voters, with the Raft and API addresses they were started with, and one
// leader among them.
func checkReplicas(c *harness.Cluster, st api.ClusterStatus, idxs ...int) (bool, string) {
	msg := fmt.Sprintf("%s lists %+v", st.NodeID, st.Replicas)
	if len(st.Replicas) != len(idxs) {
		return false, msg
	}
	byID := map[string]api.Replica{}
	leaders := 0
	for _, r := range st.Replicas {
		byID[r.ID] = r
		if r.State == "leader" {
			leaders++
		}
	}
	for _, i := range idxs {
		want := c.Replica(i)
		r, ok := byID[want.ID]
		if !ok || r.Suffrage != "Voter" || r.Raft != want.Raft || r.API != want.API {
			return false, msg
		}
	}
	return leaders == 1 && byID[st.LeaderID].State == "leader", msg
}

// transfer asks, through one follower, to move leadership to the other
// follower, and returns the leader at the time and the target. An election
// between choosing the target and the request (the target already leads,
// which the leader refuses) is retried a bounded number of times.
func transfer(t *testing.T, c *harness.Cluster) (leader, target int) {
	t.Helper()
	var last harness.Answer
	for range 3 {
		leader = c.WaitLeader(harness.LeaderTimeout)
		fs := c.Followers()
		target, via := fs[0], fs[1]
		ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
		a, err := c.CallInternal(ctx, via, http.MethodPost, "/api/cluster/leadership-transfer", api.TransferRequest{ID: c.Replica(target).ID})
		cancel()
		if err != nil {
			t.Fatalf("leadership transfer through %s: %v", c.Replica(via).ID, err)
		}
		if a.Status == http.StatusOK {
			return leader, target
		}
		last = a
		if now, _, ok := c.Leader(); ok && now == leader {
			break // no election in between: the refusal is real
		}
	}
	t.Fatalf("leadership transfer: want 200, got %s", last)
	return -1, -1
}

// TestClusterMembershipEndpoints drives the HA endpoints: GET /api/cluster,
// leadership transfer (to a named replica and to Raft's choice), removal of
// a follower and its return through POST /api/cluster/join.
func TestClusterMembershipEndpoints(t *testing.T) {
	c := startCluster(t, harness.Options{})
	for i := range c.N() {
		c.Poll(membershipTimeout, "3 voters in the view of "+c.Replica(i).ID, func() (bool, string) {
			st, err := c.Status(i)
			if err != nil {
				return false, err.Error()
			}
			return checkReplicas(c, st, 0, 1, 2)
		})
	}

	// Transfer to a named follower, asked through the other follower.
	leader, target := transfer(t, c)
	c.Poll(harness.LeaderTimeout, "leadership to move to "+c.Replica(target).ID, func() (bool, string) {
		i, st, ok := c.Leader()
		return ok && i == target, fmt.Sprintf("leader %q term %d", st.NodeID, st.Term)
	})
	if got := c.WaitLeader(harness.LeaderTimeout); got != target {
		t.Fatalf("after transfer to %s: leader is %s", c.Replica(target).ID, c.Replica(got).ID)
	}

	// Transfer without a body: Raft picks the successor.
	callAdmin(t, c, target, http.MethodPost, "/api/cluster/leadership-transfer", nil, http.StatusOK)
	c.Poll(harness.LeaderTimeout, "leadership to leave "+c.Replica(target).ID, func() (bool, string) {
		i, st, ok := c.Leader()
		return ok && i != target, fmt.Sprintf("leader %q term %d", st.NodeID, st.Term)
	})
	callAdmin(t, c, leader, http.MethodPost, "/api/cluster/leadership-transfer", api.TransferRequest{ID: "nope"}, http.StatusNotFound)

	// Remove a follower, asked through a replica that is not the leader.
	leader = c.WaitLeader(harness.LeaderTimeout)
	fs := c.Followers()
	gone, via := fs[0], fs[1]
	goneID := c.Replica(gone).ID
	callAdmin(t, c, via, http.MethodDelete, "/api/cluster/peers/"+goneID, nil, http.StatusOK)
	c.Poll(membershipTimeout, goneID+" to leave the configuration", func() (bool, string) {
		st, err := c.Status(leader)
		if err != nil {
			return false, err.Error()
		}
		return checkReplicas(c, st, leader, via)
	})
	callAdmin(t, c, leader, http.MethodDelete, "/api/cluster/peers/"+goneID, nil, http.StatusNotFound)
	// Two voters still make a quorum.
	id := c.SubmitOK(via, echo("two voters"))[0]

	// Bad joins change nothing.
	a := callAdmin(t, c, via, http.MethodPost, "/api/cluster/join", api.JoinRequest{ID: goneID}, http.StatusBadRequest)
	if !strings.Contains(string(a.Body), "raft") {
		t.Errorf("join without raft address: the error should name the field: %s", a)
	}

	// Re-add it; it catches up with what was written meanwhile.
	callAdmin(t, c, via, http.MethodPost, "/api/cluster/join", api.JoinRequest{ID: goneID, Raft: c.Replica(gone).Raft}, http.StatusOK)
	c.Poll(membershipTimeout, goneID+" to be a voter again", func() (bool, string) {
		// Any leader will do: re-adding a replica may cause an election.
		_, st, ok := c.Leader()
		if !ok {
			return false, "no leader"
		}
		return checkReplicas(c, st, 0, 1, 2)
	})
	l := c.WaitLeader(harness.LeaderTimeout)
	c.SubmitOK(gone, echo("rejoined"))
	c.WaitSameApplied(catchUpTimeout, l, 0, 1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
	defer cancel()
	if a, err := c.Call(ctx, gone, http.MethodGet, "/api/status/"+id, nil); err != nil || a.Status != http.StatusOK {
		t.Errorf("task %s written while %s was out: on %s: %v %v", id, goneID, goneID, a, err)
	}
}

// TestLateJoinerBecomesVoter starts a fourth host with the same
// --bootstrap-expect 3 after the cluster formed: the leader adds it as a
// voter on its own, and it serves reads and writes like the others.
func TestLateJoinerBecomesVoter(t *testing.T) {
	c := startCluster(t, harness.Options{})
	want := map[string]bool{}
	for _, id := range c.SubmitOK(0, echo("early")) {
		want[id] = true
	}
	late := c.AddReplica()
	c.Poll(membershipTimeout, "4 voters", func() (bool, string) {
		_, st, ok := c.Leader()
		if !ok {
			return false, "no leader"
		}
		return checkReplicas(c, st, 0, 1, 2, late)
	})
	for _, id := range c.SubmitOK(late, echo("late")) {
		want[id] = true
	}
	l := c.WaitLeader(harness.LeaderTimeout)
	c.WaitSameApplied(catchUpTimeout, l, 0, 1, 2, late)
	for i := range c.N() {
		waitTaskSet(t, c, i, want)
	}
	st, err := c.Status(late)
	if err != nil {
		t.Fatal(err)
	}
	if ok, msg := checkReplicas(c, st, 0, 1, 2, late); !ok {
		t.Errorf("late joiner's view: %s", msg)
	}
}
