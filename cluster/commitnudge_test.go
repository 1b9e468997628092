package cluster

import (
	"strconv"
	"testing"
	"time"
)

// TestFollowersLearnCommitsWithoutCommitTimeout runs 3 replicas whose Raft
// would send an idle follower the commit index only after a minute
// (CommitTimeout): the commit nudger must tell followers sooner. A submit
// through a follower waits until that follower holds the write (read your
// writes, bounded by maxReadYourWritesWait), so the task must be in the
// follower's own state when the answer arrives; a submit through the
// leader must reach both followers' states. Without the nudger neither
// happens within the minute.
func TestFollowersLearnCommitsWithoutCommitTimeout(t *testing.T) {
	hosts := startClusterWith(t, 3, func(_ int, cfg *Config) { cfg.raftCommitTimeout = time.Minute })
	leader := leaderOf(t, hosts)
	var followers []*Host
	for _, h := range hosts {
		if h != leader {
			followers = append(followers, h)
		}
	}
	// The followers first know of the leader's no-op entry through the
	// nudger or a new entry: wait until they have caught up.
	waitFor(t, 20*time.Second, func() bool {
		for _, f := range followers {
			if f.machine.AppliedIndex() < leader.machine.AppliedIndex() {
				return false
			}
		}
		return true
	})

	for round := range 3 {
		via := followers[round%2]
		ids, _ := submitVia(t, via, `{"command":"true"}`, "")
		id, err := strconv.ParseInt(ids[0], 10, 64)
		if err != nil {
			t.Fatalf("task ID %q: %v", ids[0], err)
		}
		if _, ok := via.machine.Task(id); !ok {
			t.Fatalf("round %d: task %d answered by follower %s is not in its state (applied %d, leader %d)", round, id, via.NodeID(), via.machine.AppliedIndex(), leader.machine.AppliedIndex())
		}
	}

	ids, _ := submitVia(t, leader, `{"command":"true"}`, "")
	id, err := strconv.ParseInt(ids[0], 10, 64)
	if err != nil {
		t.Fatalf("task ID %q: %v", ids[0], err)
	}
	// 20 s: far below the minute Raft alone would take.
	waitFor(t, 20*time.Second, func() bool {
		for _, f := range followers {
			if _, ok := f.machine.Task(id); !ok {
				return false
			}
		}
		return true
	})
}
