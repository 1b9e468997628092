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

func echo(args ...string) api.SubmitRequest {
	return api.SubmitRequest{Command: "echo", Arguments: args}
}

// TestSubmitThroughFollower checks write forwarding: a submit to a follower
// is proxied to the leader, answered 202, and the task is replicated to every
// replica; every answer names the leader (invariant 6).
func TestSubmitThroughFollower(t *testing.T) {
	c := startCluster(t, harness.Options{})
	leader := c.WaitLeader(harness.LeaderTimeout)
	leaderID := c.Replica(leader).ID
	f := c.Followers()[0]

	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	a, out, err := c.Submit(ctx, f, echo("hi"))
	if err != nil {
		t.Fatalf("submit through follower %s: %v", c.Replica(f).ID, err)
	}
	if a.Status != http.StatusAccepted {
		t.Fatalf("submit through follower %s: want 202, got %s", c.Replica(f).ID, a)
	}
	if got := a.Header.Get(api.LeaderHeader); got != leaderID {
		t.Errorf("submit answer: %s = %q, want the leader %q", api.LeaderHeader, got, leaderID)
	}
	if len(out.TaskIDs) != 1 {
		t.Fatalf("submit answer: want 1 task ID, got %v", out.TaskIDs)
	}
	id := out.TaskIDs[0]

	for i := range c.N() {
		r := c.Replica(i)
		c.Poll(10*time.Second, fmt.Sprintf("task %s on %s", id, r.ID), func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
			defer cancel()
			a, err := c.Call(ctx, i, http.MethodGet, "/api/status/"+id, nil)
			if err != nil {
				return false, err.Error()
			}
			if a.Status != http.StatusOK {
				return false, a.String()
			}
			if got := a.Header.Get(api.LeaderHeader); got != leaderID {
				return false, fmt.Sprintf("%s = %q, want %q", api.LeaderHeader, got, leaderID)
			}
			var task harness.TaskRef
			if err := a.Decode(&task); err != nil {
				return false, err.Error()
			}
			return task.TaskID == id && task.Status == "pending", fmt.Sprintf("task %+v", task)
		})
	}

	// Bad input through a follower gets the leader's 400, naming the field,
	// and creates nothing (invariant 7).
	a, _, err = c.Submit(ctx, f, api.SubmitRequest{Command: " "})
	if err != nil {
		t.Fatalf("bad submit through follower: %v", err)
	}
	if a.Status != http.StatusBadRequest || !strings.Contains(string(a.Body), "command") {
		t.Errorf("empty command through follower: want 400 naming \"command\", got %s", a)
	}
	tasks, err := c.TaskIDSet(leader)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 {
		t.Errorf("leader holds %d tasks after one good and one bad submit, want 1", len(tasks))
	}
}

// TestNoLeader503 checks invariant 6's bounded wait: with 2 of 3 replicas
// frozen, a write to the third answers 503 with Retry-After after about
// leader_wait_seconds, reads keep answering from the local FSM, and a leader
// returns once the others resume.
func TestNoLeader503(t *testing.T) {
	const leaderWait = 1 * time.Second
	c := startCluster(t, harness.Options{LeaderWaitSeconds: int(leaderWait / time.Second)})
	leader := c.WaitLeader(harness.LeaderTimeout)
	id := c.SubmitOK(leader, echo("before"))[0]
	followers := c.Followers()
	keep, other := followers[0], followers[1]
	c.WaitSameApplied(10*time.Second, leader, keep, other)

	// Freeze the leader and a follower: the remaining follower still
	// believes in the frozen leader for a moment, then in no leader at all.
	c.Stop(leader)
	c.Stop(other)

	// The server's own bound is leader_wait; allow the election timeout
	// and a loaded 2-core machine on top.
	const bound = 10 * time.Second
	for attempt := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		a, _, err := c.Submit(ctx, keep, echo("no-leader"))
		cancel()
		if err != nil {
			t.Fatalf("write %d with no quorum: %v", attempt, err)
		}
		if a.Status != http.StatusServiceUnavailable {
			t.Fatalf("write %d with no quorum: want 503, got %s", attempt, a)
		}
		if a.Header.Get("Retry-After") == "" {
			t.Errorf("write %d with no quorum: 503 without Retry-After", attempt)
		}
		if a.Elapsed > bound {
			t.Errorf("write %d with no quorum: 503 after %s, want within %s (leader wait %s)", attempt, a.Elapsed, bound, leaderWait)
		}
		t.Logf("write %d with no quorum: %s", attempt, a)
	}

	// Reads are served from the local FSM without a leader.
	for _, path := range []string{"/api/status/" + id, "/api/tasks", "/api/cluster"} {
		ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
		a, err := c.Call(ctx, keep, http.MethodGet, path, nil)
		cancel()
		if err != nil {
			t.Fatalf("GET %s with no quorum: %v", path, err)
		}
		if a.Status != http.StatusOK {
			t.Errorf("GET %s with no quorum: want 200, got %s", path, a)
		}
	}

	c.Cont(leader)
	c.Cont(other)
	// Every replica, keep included, follows one leader before the write
	// (keep may still be a candidate whose pre-vote failed for a moment).
	l := c.WaitStableLeader(harness.LeaderTimeout, 0)
	c.SubmitOK(keep, echo("after"))
	c.WaitSameApplied(10*time.Second, l, keep, other, leader)
}
