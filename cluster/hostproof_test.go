package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/gossip"
)

// TestGossipedHostMustProveToken: a process that joins the (unencrypted)
// gossip pool claiming to be a host replica is not made a voter unless it
// proves holding the cluster token — even when it relays the leader's
// challenge to a real replica and returns that replica's proof. A real
// replica started after it, with the token, is added (the positive control,
// which also shows the leader has handled the impostor by then).
func TestGossipedHostMustProveToken(t *testing.T) {
	hosts := startCluster(t, 1)
	leader := hosts[0]

	// The impostor's "Raft" address accepts connections, so only the proof
	// stands between it and a seat.
	raftLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raftLn.Close()
	var challenges atomic.Int32
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		challenges.Add(1)
		body, _ := io.ReadAll(r.Body)
		// Ask the real replica to answer the leader's nonce.
		resp, err := http.Post(leader.APIURL()+proveHostPath, "application/json", bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var pr proofResponse
		json.NewDecoder(resp.Body).Decode(&pr) //nolint:errcheck // an empty proof is fine too
		pr.ID, pr.Raft = "evil", raftLn.Addr().String()
		json.NewEncoder(w).Encode(pr) //nolint:errcheck // test server
	}))
	defer relay.Close()
	evil, err := gossip.New(gossip.Config{Name: "evil", BindAddr: "127.0.0.1", Fast: true, Join: []string{leader.GossipAddr()},
		Meta: gossip.Meta{Role: gossip.RoleHost, ID: "evil", API: relay.URL, Raft: raftLn.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); evil.Run(ctx) }() //nolint:errcheck // Run only returns nil
	defer func() { cancel(); <-done; evil.Close() }()
	waitFor(t, 15*time.Second, func() bool { return challenges.Load() > 0 })

	// Control: a real replica with the token joins through gossip.
	cfg := DefaultConfig()
	cfg.NodeID, cfg.DataDir, cfg.SharedDir = "h2", t.TempDir(), t.TempDir()
	cfg.APIPort, cfg.RaftPort, cfg.GossipPort = 0, 0, 0
	cfg.BootstrapExpect, cfg.FastGossip = 2, true
	cfg.ClusterToken, cfg.Join = testToken, []string{leader.GossipAddr()}
	cfg.Logger = testLogger(t).With("node", "h2")
	h2, err := StartHost(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		h2.Close(cctx)
	}()
	waitFor(t, 20*time.Second, func() bool { return strings.Contains(readRaftView(t, leader).replicas, "h2") })
	if v := readRaftView(t, leader); strings.Contains(v.replicas, "evil") {
		t.Fatalf("the impostor became a voter: %s", v)
	}
}

// TestProveEndpointHostileInput: the challenge endpoint needs no token (the
// leader must not hand its token to an unverified host), so it answers
// anyone — with a MAC that proves nothing without the token and never
// carries the token itself; malformed challenges get 400.
func TestProveEndpointHostileInput(t *testing.T) {
	h := startCluster(t, 1)[0]
	for _, body := range []string{``, `{}`, `{"nonce":"short"}`, `{"nonce":1}`, `{"nonce":"` + strings.Repeat("a", 65) + `"}`, `[1]`} {
		resp, b := doToken(t, "POST", h.APIURL()+proveHostPath, "", body)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("challenge %q: %d %s, want 400", body, resp.StatusCode, b)
		}
	}
	nonce := strings.Repeat("ab", 32)
	resp, b := doToken(t, "POST", h.APIURL()+proveHostPath, "", `{"nonce":"`+nonce+`"}`)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(b), testToken) {
		t.Fatalf("challenge: %d %s", resp.StatusCode, b)
	}
	var pr proofResponse
	if err := json.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.MAC != proofMAC(testToken, nonce, pr.ID, pr.Raft) || pr.MAC == proofMAC("another-token", nonce, pr.ID, pr.Raft) {
		t.Fatalf("the proof does not depend on the token: %+v", pr)
	}
}
