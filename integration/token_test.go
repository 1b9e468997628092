//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
)

// noTokenTimeout bounds a host or runner that must refuse to start: on the
// old code it started and ran until killed here.
const noTokenTimeout = 20 * time.Second

// TestNoTokenNoStart starts real `hakuriver host` and `hakuriver runner`
// processes without any cluster token (no flag, no config, no token file):
// each exits non-zero at once with an error naming cluster_token and
// --insecure-no-token, and listens on nothing.
func TestNoTokenNoStart(t *testing.T) {
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	// A gossip address nothing listens on, for the runner's --join.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := ln.Addr().String()
	ln.Close()
	cases := []struct {
		name string
		args []string
	}{
		{"host", []string{"host", "--node-id", "tokenless", "--data-dir", filepath.Join(dir, "data"),
			"--bind", "127.0.0.1", "--api-port", "0", "--raft-port", "0", "--gossip-port", "0", "--ssh-proxy-port", "0",
			"--bootstrap-expect", "1", "--shared-dir", shared}},
		{"runner", []string{"runner", "--name", "tokenless", "--bind", "127.0.0.1", "--runner-address", "127.0.0.1",
			"--runner-port", "0", "--gossip-port", "0", "--join", nowhere, "--no-cgroups",
			"--shared-dir", shared, "--local-temp-dir", filepath.Join(dir, "temp")}},
		// A config file without a token is no different.
		{"host with a config", []string{"host", "--config", writeConfig(t, dir, "[cluster]\nnode_id = \"tokenless2\"\n"),
			"--data-dir", filepath.Join(dir, "data2"), "--bind", "127.0.0.1", "--api-port", "0", "--raft-port", "0",
			"--gossip-port", "0", "--ssh-proxy-port", "0", "--shared-dir", shared}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := harness.RunCLI(t.Context(), harness.CLICommand{Bin: hostBin, Args: tc.args,
				Env: []string{"HAKURIVER_TOKEN_FILE="}, Timeout: noTokenTimeout})
			if r.Err != nil || r.Code <= 0 {
				t.Fatalf("want a non-zero exit at once: %s", r)
			}
			for _, want := range []string{"cluster_token", "--insecure-no-token"} {
				if !strings.Contains(r.Stderr, want) {
					t.Errorf("the error does not name %s: %s", want, r)
				}
			}
			if strings.Contains(r.Stdout, "api http") {
				t.Errorf("it started listening before refusing: %s", r)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "raft.db")); err == nil {
		t.Errorf("the refused host created its Raft state")
	}
}

// writeConfig writes content to a config file in dir and returns its path.
func writeConfig(t *testing.T, dir, content string) string {
	t.Helper()
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInsecureNoToken runs a host and a runner with --insecure-no-token:
// both start, log a loud warning, work together (the runner registers and
// runs a task), and doctor reports each of them as insecure.
func TestInsecureNoToken(t *testing.T) {
	c := startCluster(t, harness.Options{Replicas: 1, InsecureNoToken: true})
	r := c.StartRunner("insecure1", harness.RunnerOptions{NoDocker: true, NoCgroups: true})
	for name, path := range map[string]string{"host": c.Replica(0).LogPath(), "runner": r.LogPath()} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "INSECURE: no cluster token") {
			t.Errorf("the %s did not warn that it runs without a cluster token; its log:\n%s", name, b)
		}
	}
	id := c.SubmitOK(0, native("echo", "insecure"))[0]
	if tk := c.WaitFinal(id, 60*time.Second); tk.Status != "completed" {
		t.Errorf("task on the insecure cluster: %+v", tk)
	}

	res := c.CLIVia(nil, time.Minute, "", "-o", "json", "doctor", "--probe-timeout", "2s")
	var rep doctorReport
	if err := res.Decode(&rep); err != nil {
		t.Fatalf("%v\n%s", err, res)
	}
	insecure := map[string]bool{}
	for _, ch := range rep.checks() {
		if ch.Name == "cluster token" && ch.Status == doctor.StatusWarn && strings.Contains(ch.Measured, "insecure: no cluster token") {
			insecure[ch.Node] = true
		}
	}
	for _, node := range []string{c.Replica(0).ID, "insecure1"} {
		if !insecure[node] {
			t.Errorf("doctor does not warn that %s runs without a token: %s", node, res.Stdout)
		}
	}
}

// raftView is the part of replica i's GET /api/cluster (read through the
// leader) that a membership change alters: the voters with their Raft
// addresses, and the leader.
type raftView struct{ leader, replicas string }

func (v raftView) String() string { return "leader=" + v.leader + " replicas=" + v.replicas }

// unchanged fails the test unless now equals before, and returns now. A
// new leader is let through only when no replica logged a membership
// change: a spontaneous election on a loaded machine, not a transfer.
func unchanged(t *testing.T, c *harness.Cluster, what string, before, now raftView) raftView {
	t.Helper()
	if now == before {
		return now
	}
	if now.replicas != before.replicas || membershipLogged(t, c) {
		t.Fatalf("%s changed the configuration:\nbefore %s\nafter  %s", what, before, now)
	}
	t.Logf("%s: a spontaneous election (no membership change was logged): %s -> %s", what, before, now)
	return now
}

// membershipLogged reports whether any replica logged a membership change
// it was about to make.
func membershipLogged(t *testing.T, c *harness.Cluster) bool {
	t.Helper()
	for i := range c.N() {
		b, err := os.ReadFile(c.Replica(i).LogPath())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "membership change requested") {
			return true
		}
	}
	return false
}

func readRaftView(t *testing.T, c *harness.Cluster, i int) raftView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.ReadTimeout)
	defer cancel()
	a, err := c.Call(ctx, i, http.MethodGet, "/api/cluster?consistent=1", nil)
	if err != nil || a.Status != http.StatusOK {
		t.Fatalf("GET /api/cluster on %s: %v %v", c.Replica(i).ID, a, err)
	}
	var st api.ClusterStatus
	if err := a.Decode(&st); err != nil {
		t.Fatal(err)
	}
	var reps []string
	for _, r := range st.Replicas {
		reps = append(reps, r.ID+"@"+r.Raft+"/"+r.Suffrage)
	}
	sort.Strings(reps)
	return raftView{leader: st.LeaderID, replicas: strings.Join(reps, ",")}
}

// TestMembershipNeedsClusterToken performs the attacks of issue 10 item 10
// against 3 real replicas: a join of a foreign voter (whose Raft address
// answers), the removal of a real replica and leadership transfers, without
// the cluster token and with a wrong one, through a follower and through
// the leader. Each gets 401 and GET /api/cluster (voters and leader) stays
// the same. With the token a join whose Raft address does not answer gets
// 400 naming raft and changes nothing. The CLI refuses these commands
// without a token and performs them with $HAKURIVER_TOKEN_FILE (positive
// control: transfer, remove, join back).
func TestMembershipNeedsClusterToken(t *testing.T) {
	c := startCluster(t, harness.Options{})
	leader := c.WaitStableLeader(harness.LeaderTimeout, harness.SettleTime)
	fs := c.Followers()
	before := readRaftView(t, c, leader)

	evil, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	go func() {
		for {
			conn, err := evil.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	victim := c.Replica(fs[0]).ID
	attacks := []struct {
		name, method, path string
		body               any
	}{
		{"join", http.MethodPost, "/api/cluster/join", api.JoinRequest{ID: "evil", Raft: evil.Addr().String()}},
		{"remove peer", http.MethodDelete, "/api/cluster/peers/" + victim, nil},
		{"transfer to a follower", http.MethodPost, "/api/cluster/leadership-transfer", api.TransferRequest{ID: victim}},
		{"transfer, raft's choice", http.MethodPost, "/api/cluster/leadership-transfer", nil},
	}
	for _, via := range []int{fs[1], leader} {
		for _, tok := range []string{"", "wrong-" + c.Token()} {
			for _, at := range attacks {
				a := attack(t, c, via, at.method, at.path, tok, at.body)
				if a.Status != http.StatusUnauthorized || !strings.Contains(string(a.Body), "cluster token") {
					t.Errorf("%s through %s with token %q: want 401 naming the cluster token, got %s", at.name, c.Replica(via).ID, tok, a)
				}
				before = unchanged(t, c, fmt.Sprintf("%s through %s with token %q", at.name, c.Replica(via).ID, tok), before, readRaftView(t, c, leader))
			}
		}
	}

	// With the token, a join whose Raft address does not answer.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	a := callAdmin(t, c, fs[1], http.MethodPost, "/api/cluster/join", api.JoinRequest{ID: "h9", Raft: deadAddr}, http.StatusBadRequest)
	if !strings.Contains(string(a.Body), "raft") {
		t.Errorf("join of an unreachable raft address: the error should name raft: %s", a)
	}
	before = unchanged(t, c, "a join of an unreachable raft address", before, readRaftView(t, c, leader))

	// The CLI without any token refuses before calling the cluster.
	cli := func(tokenFile string, args ...string) harness.CLIResult {
		return harness.RunCLI(t.Context(), harness.CLICommand{Bin: c.Bin(),
			Args: append([]string{"--host", c.HostFlag()}, args...), Env: []string{"HAKURIVER_TOKEN_FILE=" + tokenFile}})
	}
	for _, args := range [][]string{
		{"cluster", "transfer-leadership", "--to", victim},
		{"cluster", "remove", victim},
		{"cluster", "join", "--id", "evil", "--raft", evil.Addr().String()},
	} {
		r := cli("", args...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "cluster token") || !strings.Contains(r.Stderr, "HAKURIVER_TOKEN_FILE") {
			t.Errorf("without a token: want a clear error naming the cluster token and HAKURIVER_TOKEN_FILE: %s", r)
		}
	}
	unchanged(t, c, "the CLI without a token", before, readRaftView(t, c, leader))

	// Positive control: with $HAKURIVER_TOKEN_FILE they work.
	if r := cli(c.TokenFile(), "cluster", "transfer-leadership", "--to", victim); r.Code != 0 {
		t.Fatalf("transfer with the token: %s", r)
	}
	c.Poll(harness.LeaderTimeout, "leadership to move to "+victim, func() (bool, string) {
		i, st, ok := c.Leader()
		return ok && i == fs[0], "leader " + st.LeaderID
	})
	gone := c.Replica(fs[1])
	if r := cli(c.TokenFile(), "cluster", "remove", gone.ID); r.Code != 0 {
		t.Fatalf("remove with the token: %s", r)
	}
	c.Poll(membershipTimeout, gone.ID+" to leave the configuration", func() (bool, string) {
		st, err := c.Status(fs[0])
		if err != nil {
			return false, err.Error()
		}
		return checkReplicas(c, st, leader, fs[0])
	})
	if r := cli(c.TokenFile(), "cluster", "join", "--id", gone.ID, "--raft", gone.Raft); r.Code != 0 {
		t.Fatalf("join with the token: %s", r)
	}
	c.Poll(membershipTimeout, gone.ID+" to be a voter again", func() (bool, string) {
		_, st, ok := c.Leader()
		if !ok {
			return false, "no leader"
		}
		return checkReplicas(c, st, 0, 1, 2)
	})
}

// attack sends one request to replica i with token in the token header
// ("" = none) and fails the test on a transport error.
func attack(t *testing.T, c *harness.Cluster, i int, method, path, token string, body any) harness.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.WriteTimeout)
	defer cancel()
	a, err := c.CallWithToken(ctx, i, method, path, token, body)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, c.Replica(i).ID, err)
	}
	return a
}
