package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/ops/certs"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
)

// testCerts issues certificates for nodes with a fresh CA in a temporary
// directory, as `hakuriver tls init` does, and returns the directory.
func testCerts(t *testing.T, nodes ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	if _, err := certs.Init(dir, certs.InitOptions{Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadBundle(t *testing.T, dir, node string) *certs.Bundle {
	t.Helper()
	b, err := certs.Load(filepath.Join(dir, certs.CertFile(node)), filepath.Join(dir, certs.KeyFile(node)), filepath.Join(dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tlsClient(t *testing.T, caFile string, hosts ...string) *api.Client {
	t.Helper()
	tc, err := certs.ClientTLS(caFile)
	if err != nil {
		t.Fatal(err)
	}
	cc := api.DefaultClientConfig()
	cc.Hosts = hosts
	cc.TLS = tc
	cc.RetryBudget = 2 * time.Second
	c, err := api.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestTLSClusterServesHTTPSAndRaftOverMutualTLS runs three replicas with
// TLS: the API answers only HTTPS verified against the cluster CA, a write
// through a follower is forwarded to the leader over HTTPS and committed
// over Raft on TLS, and neither a client nor a Raft peer of another CA gets
// through.
func TestTLSClusterServesHTTPSAndRaftOverMutualTLS(t *testing.T) {
	dir := testCerts(t, "h1", "h2", "h3", "h9")
	foreignDir := testCerts(t, "h1", "evil")
	hosts := startClusterWith(t, 3, func(i int, cfg *Config) {
		cfg.TLS = loadBundle(t, dir, fmt.Sprintf("h%d", i+1))
	})
	var leader, follower *Host
	for _, h := range hosts {
		if !strings.HasPrefix(h.APIURL(), "https://") {
			t.Fatalf("%s advertises %s, want https://", h.NodeID(), h.APIURL())
		}
		if h.IsLeader() {
			leader = h
		} else {
			follower = h
		}
	}
	waitFor(t, 10*time.Second, func() bool { // the follower knows the leader's https URL
		id, url := follower.leaderInfo()
		return id == leader.NodeID() && url == leader.APIURL()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := tlsClient(t, filepath.Join(dir, certs.CAFile), follower.APIURL())
	sr, err := c.Submit(ctx, api.SubmitRequest{Command: "echo", Arguments: []string{"over tls"}})
	if err != nil {
		t.Fatalf("submit through follower %s over https: %v", follower.NodeID(), err)
	}
	if len(sr.TaskIDs) != 1 {
		t.Fatalf("task ids %v", sr.TaskIDs)
	}
	for _, h := range hosts { // committed through Raft on TLS everywhere
		waitFor(t, 5*time.Second, func() bool {
			_, ok := h.Machine().Task(mustID(t, sr.TaskIDs[0]))
			return ok
		})
	}

	t.Run("plain HTTP to the API port gets nothing of the API", func(t *testing.T) {
		plain := "http://" + strings.TrimPrefix(follower.APIURL(), "https://")
		resp, err := http.Get(plain + "/api/status/" + sr.TaskIDs[0])
		if err != nil {
			return // refused outright: fine
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "over tls") {
			t.Fatalf("plain HTTP: %d %s, want 400 without the task", resp.StatusCode, body)
		}
	})

	t.Run("a client trusting another CA refuses the replicas", func(t *testing.T) {
		c := tlsClient(t, filepath.Join(foreignDir, certs.CAFile), follower.APIURL())
		_, err := c.Cluster(ctx, false)
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Fatalf("client of another CA: %v, want a certificate verification error", err)
		}
	})

	t.Run("doctor probes the replicas over https against the CA", func(t *testing.T) {
		tc, err := certs.ClientTLS(filepath.Join(dir, certs.CAFile))
		if err != nil {
			t.Fatal(err)
		}
		cc := api.DefaultClientConfig()
		cc.Hosts, cc.TLS, cc.Token = []string{follower.APIURL()}, tc, testToken
		dc, err := api.NewClient(cc)
		if err != nil {
			t.Fatal(err)
		}
		defer dc.Close()
		var rep doctor.Report
		req := doctor.Request{TimeoutMS: 2000, Targets: []doctor.Target{
			{Name: "leader api", Kind: doctor.KindHTTP, Address: leader.APIURL() + doctor.HostPath + "?ping=1"}}}
		if _, err := dc.Do(ctx, http.MethodPost, doctor.HostPath, req, &rep); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range rep.Checks {
			if c.Name == "probe leader api" {
				found = true
				if c.Status != doctor.StatusOK {
					t.Fatalf("probe of the leader over https: %+v", c)
				}
			}
		}
		if !found {
			t.Fatalf("no probe check in %+v", rep.Checks)
		}
		for _, c := range rep.Checks {
			if c.Name == "tls certificate" && c.Status != doctor.StatusOK {
				t.Fatalf("own certificate check: %+v", c)
			}
		}
		if !strings.Contains(fmt.Sprint(rep.Checks), "tls certificate") {
			t.Fatal("no tls certificate check")
		}
	})

	t.Run("the dashboard session cookie is Secure over https", func(t *testing.T) {
		tc, err := certs.ClientTLS(filepath.Join(dir, certs.CAFile))
		if err != nil {
			t.Fatal(err)
		}
		cc := api.DefaultClientConfig()
		cc.Hosts, cc.TLS, cc.Token = []string{follower.APIURL()}, tc, testToken
		bc, err := api.NewClient(cc)
		if err != nil {
			t.Fatal(err)
		}
		defer bc.Close()
		admin, err := bc.Bootstrap(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
		body := strings.NewReader(`{"token":"` + admin.Token + `"}`)
		resp, err := hc.Post(follower.APIURL()+"/api/auth/login", "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(resp.Cookies()) == 0 {
			t.Fatalf("login: %d, cookies %v", resp.StatusCode, resp.Cookies())
		}
		for _, ck := range resp.Cookies() {
			if !ck.Secure {
				t.Errorf("cookie %s is not Secure over https", ck.Name)
			}
		}
	})

	t.Run("a raft peer of another CA cannot append entries", func(t *testing.T) {
		term := leader.raft.r.CurrentTerm()
		// The attacker trusts the cluster CA (so it sees the real leader)
		// but its own certificate, even for a member's name, is foreign.
		evil := loadBundle(t, foreignDir, "h1").Mutual()
		evil.RootCAs = loadBundle(t, dir, "h9").Mutual().RootCAs
		err := appendEntries(t, evil, leader, term+100)
		if err == nil {
			t.Fatal("AppendEntries with a certificate of another CA succeeded")
		}
		t.Logf("foreign peer refused: %v", err)
		// Plain TCP is refused too.
		plain, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		var resp raft.AppendEntriesResponse
		if err := plain.AppendEntries(raft.ServerID(leader.NodeID()), raft.ServerAddress(leader.RaftAddr()),
			&raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("x"), Addr: []byte("127.0.0.1:1")}, Term: term + 100, Leader: []byte("127.0.0.1:1")}, &resp); err == nil {
			t.Fatal("AppendEntries over plain TCP succeeded")
		}
		if !leader.IsLeader() || leader.raft.r.CurrentTerm() != term {
			t.Fatalf("the refused RPCs disturbed the leader: leader %v, term %d → %d", leader.IsLeader(), term, leader.raft.r.CurrentTerm())
		}
		// Control: the same RPC with a certificate of the cluster CA gets an
		// answer (a stale term, so it changes nothing).
		if err := appendEntries(t, loadBundle(t, dir, "h9").Mutual(), leader, 0); err != nil {
			t.Fatalf("AppendEntries with a cluster certificate: %v", err)
		}
	})
}

// TestTLSHostOfAnotherCACannotJoin: a host holding the cluster token but a
// certificate of another CA is never added as a voter and never receives a
// log entry, while a host with a certificate of the cluster CA joins.
func TestTLSHostOfAnotherCACannotJoin(t *testing.T) {
	dir := testCerts(t, "h1", "h2", "h3", "h4", "h5")
	foreignDir := testCerts(t, "h4")
	hosts := startClusterWith(t, 3, func(i int, cfg *Config) {
		cfg.TLS = loadBundle(t, dir, fmt.Sprintf("h%d", i+1))
	})
	var leader *Host
	for _, h := range hosts {
		if h.IsLeader() {
			leader = h
		}
	}
	start := func(id string, b *certs.Bundle) *Host {
		cfg := DefaultConfig()
		cfg.NodeID, cfg.DataDir, cfg.SharedDir = id, t.TempDir(), t.TempDir()
		cfg.APIPort, cfg.RaftPort, cfg.GossipPort = 0, 0, 0
		cfg.FastGossip, cfg.ClusterToken, cfg.TLS, cfg.BootstrapExpect = true, testToken, b, 3
		cfg.Join = []string{hosts[0].GossipAddr()}
		cfg.Logger = testLogger(t).With("node", id)
		h, err := StartHost(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			h.Close(ctx)
		})
		return h
	}
	voter := func(id string) bool {
		cf := leader.raft.r.GetConfiguration()
		if cf.Error() != nil {
			return false
		}
		for _, s := range cf.Configuration().Servers {
			if string(s.ID) == id {
				return true
			}
		}
		return false
	}
	intruder := start("h4", loadBundle(t, foreignDir, "h4"))
	member := start("h5", loadBundle(t, dir, "h5"))
	// Once h5 (same CA) is in, the leader had every chance to add h4.
	waitFor(t, 20*time.Second, func() bool { return voter("h5") && member.raft.r.LastIndex() > 0 })
	time.Sleep(time.Second)
	if voter("h4") {
		t.Fatal("a host with a certificate of another CA became a voter")
	}
	if n := intruder.raft.r.LastIndex(); n != 0 {
		t.Fatalf("the intruder received Raft entries up to index %d", n)
	}
	if id, _ := intruder.leaderInfo(); id != "" {
		t.Fatalf("the intruder follows leader %s", id)
	}
}

// appendEntries sends one AppendEntries RPC of term to h's Raft port over a
// TLS stream layer with cfg, and returns the transport's error.
func appendEntries(t *testing.T, cfg *tls.Config, h *Host, term uint64) error {
	t.Helper()
	stream, err := newTLSStreamLayer("127.0.0.1:0", nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransport(stream, 1, 3*time.Second, io.Discard)
	defer trans.Close()
	var resp raft.AppendEntriesResponse
	return trans.AppendEntries(raft.ServerID(h.NodeID()), raft.ServerAddress(h.RaftAddr()), &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte(stream.Addr().String())},
		Term:      term, Leader: []byte(stream.Addr().String()),
	}, &resp)
}

// TestRaftTLSDropsASilentPeer: a connection to the Raft port that never
// completes the TLS handshake is closed once the handshake timeout passes,
// and a real peer is served meanwhile.
func TestRaftTLSDropsASilentPeer(t *testing.T) {
	dir := testCerts(t, "h1", "h2")
	server, err := newTLSStreamLayer("127.0.0.1:0", nil, loadBundle(t, dir, "h1").Mutual())
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	server.handshakeTimeout = 300 * time.Millisecond
	served := make(chan error, 2)
	go func() {
		for {
			c, err := server.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 4)
				_, err := io.ReadFull(c, b)
				if err == nil {
					_, err = c.Write(b)
				}
				served <- err
			}()
		}
	}()
	silent, err := net.Dial("tcp", server.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	peer, err := newTLSStreamLayer("127.0.0.1:0", nil, loadBundle(t, dir, "h2").Mutual())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := peer.Dial(raft.ServerAddress(server.Addr().String()), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // test bound
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("real peer: %q, %v", b, err)
	}
	silent.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // test bound
	start := time.Now()
	if _, err := silent.Read(make([]byte, 1)); err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("silent connection: read %v after %s, want it closed after the handshake timeout", err, time.Since(start))
	}
	var failed int
	for range 2 {
		select {
		case err := <-served:
			if err != nil {
				failed++
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a connection was never finished")
		}
	}
	if failed != 1 {
		t.Fatalf("%d of 2 connections failed, want only the silent one", failed)
	}
}
