package cluster

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// submitVia posts body to replica h's /api/submit, with the request-ID
// header set when reqID is not empty, and returns the answer's task IDs and
// the request ID the replica says it used.
func submitVia(t *testing.T, h *Host, body, reqID string) (ids []string, usedID string) {
	t.Helper()
	req, err := http.NewRequest("POST", h.APIURL()+"/api/submit", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if reqID != "" {
		req.Header.Set(api.RequestIDHeader, reqID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("submit via %s: %v", h.NodeID(), err)
	}
	defer resp.Body.Close()
	var sr api.SubmitResponse
	if err := json.NewDecoder(resp.Body).Decode(&sr); err != nil {
		t.Fatalf("submit via %s: status %d, decode answer: %v", h.NodeID(), resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusAccepted || len(sr.TaskIDs) == 0 {
		t.Fatalf("submit via %s: status %d, answer %+v", h.NodeID(), resp.StatusCode, sr)
	}
	return sr.TaskIDs, resp.Header.Get(api.RequestIDHeader)
}

// leaderOf returns the replica that leads, waiting for one.
func leaderOf(t *testing.T, hosts []*Host) *Host {
	t.Helper()
	var l *Host
	waitFor(t, 15*time.Second, func() bool {
		for _, h := range hosts {
			if h.IsLeader() {
				l = h
				return true
			}
		}
		return false
	})
	return l
}

// waitTaskCount waits until every replica has applied the same number of
// tasks and returns it.
func waitTaskCount(t *testing.T, hosts []*Host, want int) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		for _, h := range hosts {
			if h.Machine().Len() != want {
				return false
			}
		}
		return true
	})
}

// TestServerAttachedRequestIDAcrossReplicasAndLeaders: a submit with no
// request_id, sent to a follower, is keyed by the ID that follower attaches
// (and names in its answer); replaying it with that ID through another
// follower, and again after the leader changed, returns the same task and
// creates nothing. A forward that dropped the follower's ID would make the
// leader key the first write by an ID of its own, and the replay would
// create a second task.
func TestServerAttachedRequestIDAcrossReplicasAndLeaders(t *testing.T) {
	hosts := startCluster(t, 3)
	leader := leaderOf(t, hosts)
	var followers []*Host
	for _, h := range hosts {
		if h != leader {
			followers = append(followers, h)
		}
	}
	const body = `{"command":"echo","arguments":["once"]}`
	first, reqID := submitVia(t, followers[0], body, "")
	if reqID == "" {
		t.Fatalf("the answer names no %s", api.RequestIDHeader)
	}
	waitTaskCount(t, hosts, 1)

	again, id2 := submitVia(t, followers[1], body, reqID)
	if fmt.Sprint(again) != fmt.Sprint(first) || id2 != reqID {
		t.Fatalf("replay through %s: tasks %v (key %q), first %v (key %q)", followers[1].NodeID(), again, id2, first, reqID)
	}

	// Move the leader, then replay through the old one.
	if err := leader.raft.r.LeadershipTransfer().Error(); err != nil {
		t.Fatalf("transfer leadership: %v", err)
	}
	waitFor(t, 15*time.Second, func() bool {
		l := leaderOf(t, hosts)
		return l != leader
	})
	after, _ := submitVia(t, leader, body, reqID)
	if fmt.Sprint(after) != fmt.Sprint(first) {
		t.Fatalf("replay after the leader changed: tasks %v, first %v", after, first)
	}
	waitTaskCount(t, hosts, 1)

	// Control: the same body without the key is a new task.
	other, _ := submitVia(t, followers[1], body, "")
	if fmt.Sprint(other) == fmt.Sprint(first) {
		t.Fatalf("a submit without a key returned the first task %v", first)
	}
	waitTaskCount(t, hosts, 2)
}

// TestSameRequestIDAtEveryReplicaAtOnce fires one request_id at all three
// replicas at the same moment, several times: each key makes one task and
// every answer names it. Concurrent requests pass the handlers' pre-check
// together, so only the replicated state's own dedupe keeps them to one.
func TestSameRequestIDAtEveryReplicaAtOnce(t *testing.T) {
	hosts := startCluster(t, 3)
	const rounds = 8
	for round := range rounds {
		body := fmt.Sprintf(`{"command":"true","request_id":"same-%d"}`, round)
		answers := make([][]string, len(hosts))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, h := range hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				answers[i], _ = submitVia(t, h, body, "")
			}()
		}
		close(start)
		wg.Wait()
		for i := range answers {
			if fmt.Sprint(answers[i]) != fmt.Sprint(answers[0]) {
				t.Fatalf("round %d: %s answered %v, %s answered %v", round, hosts[i].NodeID(), answers[i], hosts[0].NodeID(), answers[0])
			}
		}
	}
	waitTaskCount(t, hosts, rounds)
}

// TestRetriedKillAppendsNothing: a kill retried with the request ID of a
// kill that committed is answered 202 from the state, without a second
// Raft entry.
func TestRetriedKillAppendsNothing(t *testing.T) {
	h := startCluster(t, 1)[0]
	ids, _ := submitVia(t, h, `{"command":"sleep","arguments":["60"]}`, "")
	kill := func() {
		t.Helper()
		req, _ := http.NewRequest("POST", h.APIURL()+"/api/kill/"+ids[0], nil)
		req.Header.Set(api.RequestIDHeader, "kill-once")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var mr api.MessageResponse
		if err := json.NewDecoder(resp.Body).Decode(&mr); err != nil {
			t.Fatalf("kill answer: status %d: %v", resp.StatusCode, err)
		}
		if resp.StatusCode != http.StatusAccepted || !strings.Contains(mr.Message, ids[0]) {
			t.Fatalf("kill: %d %+v", resp.StatusCode, mr)
		}
	}
	kill()
	before := h.raft.r.LastIndex()
	kill()
	if after := h.raft.r.LastIndex(); after != before {
		t.Fatalf("the retried kill appended %d Raft entries", after-before)
	}
	tk, ok := h.Machine().Task(mustID(t, ids[0]))
	if !ok || tk.Status != "killed" {
		t.Fatalf("task after kill: %+v", tk)
	}
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	var id int64
	if _, err := fmt.Sscan(s, &id); err != nil {
		t.Fatalf("task ID %q: %v", s, err)
	}
	return id
}
