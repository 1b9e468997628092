//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// catchUpTimeout bounds how long a replica may take to hold what the
// leader holds.
const catchUpTimeout = 30 * time.Second

// clients is the number of concurrent submitters in the fault tests.
const clients = 4

// TestLeaderKillFailover checks invariant 4: SIGKILL of the leader loses no
// accepted task, the survivors elect a leader and take writes through both
// of them, and the killed replica, restarted from its data dir, catches up.
// Clients with request_ids keep submitting throughout (invariant 3).
func TestLeaderKillFailover(t *testing.T) {
	c := startCluster(t, harness.Options{})
	plain := map[string]bool{}
	accept := func(ids []string) {
		t.Helper()
		for _, id := range ids {
			if plain[id] {
				t.Fatalf("task ID %s was returned by two different submits", id)
			}
			plain[id] = true
		}
	}
	const k = 30
	for n := range k {
		accept(c.SubmitOK(n%c.N(), echo("before", fmt.Sprint(n))))
	}
	f := startFleet(t, c, clients)
	f.waitAcks(10, "before the kill")

	old := c.WaitLeader(harness.LeaderTimeout)
	killedAt := time.Now()
	c.Kill(old)
	leader := c.WaitNewLeader(old, harness.LeaderTimeout)
	t.Logf("killed leader %s; %s leads after %s", c.Replica(old).ID, c.Replica(leader).ID, time.Since(killedAt).Round(time.Millisecond))

	survivors := c.Running()
	if len(survivors) != 2 {
		t.Fatalf("want 2 survivors, got %v", survivors)
	}
	for _, i := range survivors {
		for n := range 5 {
			accept(c.SubmitOK(i, echo("after", c.Replica(i).ID, fmt.Sprint(n))))
		}
	}
	f.waitEachProgress(3, "after the kill")

	c.Restart(old)
	all := append(slices.Clone(survivors), old)
	c.WaitSameApplied(catchUpTimeout, all...)
	l := c.WaitLeader(harness.LeaderTimeout)
	st, err := c.Status(old)
	if err != nil {
		t.Fatal(err)
	}
	if st.LeaderID != c.Replica(l).ID {
		t.Errorf("restarted %s follows %q, want the leader %q", c.Replica(old).ID, st.LeaderID, c.Replica(l).ID)
	}
	// The restarted replica takes writes again.
	accept(c.SubmitOK(old, echo("restarted")))
	f.waitAcks(10, "after the restart")
	checkTasks(t, c, f.result(), plain, all...)
}

// TestLeaderPartitionSIGSTOP freezes the leader (it is cut off from the
// other two, which keep quorum) while clients keep submitting with
// request_ids and retry through the other replicas. It checks invariants 3,
// 4 and 6: the survivors elect a leader and take writes, even one sent at
// the moment of the freeze, the old leader steps down and catches up after
// SIGCONT, and every acknowledged request_id maps to exactly one task on
// every replica, with no task beyond those.
func TestLeaderPartitionSIGSTOP(t *testing.T) {
	c := startCluster(t, harness.Options{})
	old := c.WaitLeader(harness.LeaderTimeout)
	oldStatus, err := c.Status(old)
	if err != nil {
		t.Fatal(err)
	}
	f := startFleet(t, c, clients)
	f.waitAcks(20, "before the freeze")

	survivor := c.Followers()[0]
	c.Stop(old)
	frozenAt := time.Now()

	// A write through a survivor at the moment of the freeze: the survivor
	// still forwards to the frozen leader, must give up on it and reach the
	// new one within its leader wait (5 s by default), not hang.
	const bound = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	a, out, err := c.Submit(ctx, survivor, api.SubmitRequest{Command: "echo", Arguments: []string{"at-freeze"}, RequestID: "at-freeze"})
	cancel()
	switch {
	case err != nil:
		t.Errorf("write through %s at the freeze: %v", c.Replica(survivor).ID, err)
	case a.Status != http.StatusAccepted:
		t.Errorf("write through %s at the freeze: want 202, got %s", c.Replica(survivor).ID, a)
	case a.Elapsed > bound:
		t.Errorf("write through %s at the freeze: 202 after %s, want within %s", c.Replica(survivor).ID, a.Elapsed, bound)
	}
	if err == nil && a.Status == http.StatusAccepted {
		if err := f.acks.add("at-freeze", out.TaskIDs); err != nil {
			t.Error(err)
		}
		t.Logf("write through %s at the freeze: 202 after %s", c.Replica(survivor).ID, a.Elapsed.Round(time.Millisecond))
	}

	leader := c.WaitNewLeader(old, harness.LeaderTimeout)
	t.Logf("froze leader %s; %s leads after %s", c.Replica(old).ID, c.Replica(leader).ID, time.Since(frozenAt).Round(time.Millisecond))

	// Direct writes through both survivors while the old leader is frozen,
	// each repeated with the same request_id through both: one task each.
	for _, i := range c.Running() {
		reqID := "direct-" + c.Replica(i).ID
		ids := c.SubmitOK(i, api.SubmitRequest{Command: "echo", Arguments: []string{reqID}, RequestID: reqID})
		if err := f.acks.add(reqID, ids); err != nil {
			t.Fatal(err)
		}
		for _, j := range c.Running() {
			again := c.SubmitOK(j, api.SubmitRequest{Command: "echo", Arguments: []string{reqID}, RequestID: reqID})
			if !slices.Equal(again, ids) {
				t.Errorf("request %s repeated through %s: tasks %v, first answer %v", reqID, c.Replica(j).ID, again, ids)
			}
		}
	}
	// Every client, also those that were talking to the frozen replica,
	// gets requests acknowledged while it is frozen.
	f.waitEachProgress(5, "while the old leader is frozen")

	c.Cont(old)
	c.Poll(harness.LeaderTimeout, "the old leader to step down and follow", func() (bool, string) {
		_, lst, ok := c.Leader()
		if !ok {
			return false, "no leader"
		}
		st, err := c.Status(old)
		if err != nil {
			return false, err.Error()
		}
		msg := fmt.Sprintf("leader %s term %d; old leader says state %s, leader %q, term %d", lst.NodeID, lst.Term, st.State, st.LeaderID, st.Term)
		return st.Term > oldStatus.Term && st.LeaderID == lst.NodeID && st.Term == lst.Term, msg
	})
	f.waitEachProgress(3, "after SIGCONT")
	checkTasks(t, c, f.result(), nil, 0, 1, 2)
}
