package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

// raftView is what a membership change alters: the voters with their Raft
// addresses and the leader.
type raftView struct{ leader, replicas string }

func (v raftView) String() string { return "leader=" + v.leader + " replicas=" + v.replicas }

// syncBuffer is a log sink the replicas share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.b.String(), sub)
}

// unchanged fails the test unless now equals before, and returns now. A
// new leader is let through only when no replica logged a membership
// change: a spontaneous election on a loaded machine, not a transfer.
func unchanged(t *testing.T, logs *syncBuffer, what string, before, now raftView) raftView {
	t.Helper()
	if now == before {
		return now
	}
	if now.replicas != before.replicas || logs.contains("membership change requested") {
		t.Fatalf("%s changed the configuration:\nbefore %s\nafter  %s", what, before, now)
	}
	t.Logf("%s: a spontaneous election (no membership change was logged): %s -> %s", what, before, now)
	return now
}

func readRaftView(t *testing.T, h *Host) raftView {
	t.Helper()
	resp, body := doToken(t, http.MethodGet, h.APIURL()+"/api/cluster?consistent=1", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/cluster on %s: %d %s", h.NodeID(), resp.StatusCode, body)
	}
	var st api.ClusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("decode /api/cluster: %v", err)
	}
	var reps []string
	for _, r := range st.Replicas {
		reps = append(reps, r.ID+"@"+r.Raft+"/"+r.Suffrage)
	}
	sort.Strings(reps)
	return raftView{leader: st.LeaderID, replicas: strings.Join(reps, ",")}
}

// leaderAndFollowers returns the current leader and the others.
func leaderAndFollowers(t *testing.T, hosts []*Host) (leader *Host, followers []*Host) {
	t.Helper()
	waitFor(t, 15*time.Second, func() bool {
		leader, followers = nil, nil
		for _, h := range hosts {
			if h.IsLeader() {
				leader = h
			} else {
				followers = append(followers, h)
			}
		}
		return leader != nil
	})
	return leader, followers
}

// TestMembershipNeedsClusterToken performs the attacks of issue 10 item 10
// on a 3-replica cluster over real Raft: a join of a foreign voter, the
// removal of a real replica and a leadership transfer, without the cluster
// token and with a wrong one, through a follower and through the leader.
// Each gets 401 and the Raft configuration and leader stay as they were.
// With the token they work; a join whose Raft address does not answer is
// refused naming raft and changes nothing.
func TestMembershipNeedsClusterToken(t *testing.T) {
	logs := &syncBuffer{}
	hosts := startClusterWith(t, 3, func(_ int, cfg *Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil)).With("node", cfg.NodeID)
	})
	leader, fs := leaderAndFollowers(t, hosts)
	waitFor(t, 15*time.Second, func() bool {
		return strings.Count(readRaftView(t, leader).replicas, "/Voter") == 3
	})
	before := readRaftView(t, leader)

	// A listener the attacker controls: a join to it would succeed if only
	// the reachability of the Raft address were checked.
	evil, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	go func() {
		for {
			c, err := evil.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	victim := fs[0].NodeID()
	attacks := []struct {
		name, method, path string
		body               any
	}{
		{"join", http.MethodPost, "/api/cluster/join", api.JoinRequest{ID: "evil", Raft: evil.Addr().String()}},
		{"remove peer", http.MethodDelete, "/api/cluster/peers/" + victim, nil},
		{"transfer to a follower", http.MethodPost, "/api/cluster/leadership-transfer", api.TransferRequest{ID: victim}},
		{"transfer, raft's choice", http.MethodPost, "/api/cluster/leadership-transfer", nil},
	}
	for _, via := range []*Host{fs[1], leader} {
		for _, tok := range []string{"", "wrong-" + testToken, testToken[:len(testToken)-1]} {
			for _, a := range attacks {
				resp, body := doToken(t, a.method, via.APIURL()+a.path, tok, a.body)
				if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "cluster token") {
					t.Errorf("%s through %s with token %q: %d %s; want 401 naming the cluster token", a.name, via.NodeID(), tok, resp.StatusCode, body)
				}
				before = unchanged(t, logs, fmt.Sprintf("%s through %s with token %q", a.name, via.NodeID(), tok), before, readRaftView(t, leader))
			}
		}
	}
	// Other writes stay open for now (accounts will cover them).
	if resp, body := doToken(t, http.MethodPost, fs[1].APIURL()+"/api/submit", "", api.SubmitRequest{Command: "true"}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit without a token: %d %s", resp.StatusCode, body)
	}

	// With the token, a join whose Raft address does not answer is refused.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	for _, via := range []*Host{fs[1], leader} {
		for _, raft := range []string{deadAddr, "no-port", "127.0.0.1:"} {
			resp, body := do(t, http.MethodPost, via.APIURL()+"/api/cluster/join", api.JoinRequest{ID: "h9", Raft: raft})
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "raft") {
				t.Errorf("join of %q through %s: %d %s; want 400 naming raft", raft, via.NodeID(), resp.StatusCode, body)
			}
		}
	}
	unchanged(t, logs, "refused joins", before, readRaftView(t, leader))

	// Positive control: with the token every change works.
	if resp, body := do(t, http.MethodPost, fs[1].APIURL()+"/api/cluster/leadership-transfer", api.TransferRequest{ID: victim}); resp.StatusCode != http.StatusOK {
		t.Fatalf("transfer with the token: %d %s", resp.StatusCode, body)
	}
	waitFor(t, 15*time.Second, func() bool { return fs[0].IsLeader() })
	newLeader := fs[0]
	gone := fs[1]
	if resp, body := do(t, http.MethodDelete, leader.APIURL()+"/api/cluster/peers/"+gone.NodeID(), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("remove with the token: %d %s", resp.StatusCode, body)
	}
	waitFor(t, 15*time.Second, func() bool {
		return strings.Count(readRaftView(t, newLeader).replicas, "/Voter") == 2
	})
	if resp, body := do(t, http.MethodPost, leader.APIURL()+"/api/cluster/join", api.JoinRequest{ID: gone.NodeID(), Raft: gone.RaftAddr()}); resp.StatusCode != http.StatusOK {
		t.Fatalf("join with the token: %d %s", resp.StatusCode, body)
	}
	waitFor(t, 15*time.Second, func() bool {
		l, _ := leaderAndFollowers(t, hosts)
		return strings.Count(readRaftView(t, l).replicas, "/Voter") == 3
	})
}

// TestInsecureNoToken: a replica without a token starts only when told
// InsecureNoToken, and then lets membership calls through.
func TestInsecureNoToken(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.SharedDir = "h1", t.TempDir(), t.TempDir()
	cfg.APIPort, cfg.RaftPort, cfg.GossipPort = 0, 0, 0
	cfg.FastGossip = true
	cfg.Logger = testLogger(t)
	if h, err := StartHost(context.Background(), cfg); !errors.Is(err, ErrNoToken) {
		if h != nil {
			h.Close(context.Background())
		}
		t.Fatalf("start without a token: err %v, want ErrNoToken", err)
	}
	for _, want := range []string{"cluster_token", "--insecure-no-token"} {
		if !strings.Contains(ErrNoToken.Error(), want) {
			t.Errorf("ErrNoToken %q does not name %s", ErrNoToken, want)
		}
	}
	cfg.InsecureNoToken = true
	h, err := StartHost(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start with InsecureNoToken: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Close(ctx)
	})
	waitFor(t, 15*time.Second, h.IsLeader)
	resp, body := doToken(t, http.MethodPost, h.APIURL()+"/api/cluster/leadership-transfer", "", api.TransferRequest{ID: "h1"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("transfer on an insecure replica: %d %s", resp.StatusCode, body)
	}
}
