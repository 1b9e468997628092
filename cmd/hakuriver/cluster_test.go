package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
)

func TestCLI_ClusterStatus(t *testing.T) {
	f := newFakeHost(t)
	st := api.ClusterStatus{NodeID: "h2", LeaderID: "h1", LeaderAPI: "http://10.0.0.1:8000", Term: 7, AppliedIndex: 1234, CommitIndex: 1234, State: "follower",
		Replicas: []api.Replica{
			{ID: "h1", API: "http://10.0.0.1:8000", Raft: "10.0.0.1:8300", Suffrage: "voter", State: "leader"},
			{ID: "h2", API: "http://10.0.0.2:8000", Raft: "10.0.0.2:8300", Suffrage: "voter", State: "follower"},
			{ID: "h3", Raft: "10.0.0.3:8300", Suffrage: "voter", State: "unreachable"},
		}}
	f.handle("GET /api/cluster", http.StatusOK, st)
	out, _, err := runCLI(t, "--host", f.srv.URL, "cluster", "status", "--consistent")
	if err != nil {
		t.Fatalf("cluster status: %v", err)
	}
	if q := f.last(t, "/api/cluster").Query; q != "consistent=1" {
		t.Fatalf("query = %q", q)
	}
	for _, want := range []string{"Leader:", "h1 (http://10.0.0.1:8000)", "Term:", "7", "Applied index:", "1234",
		"ID", "API", "RAFT", "SUFFRAGE", "STATE", "10.0.0.3:8300", "unreachable"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "cluster", "status")
	if err != nil {
		t.Fatalf("cluster status json: %v", err)
	}
	if q := f.last(t, "/api/cluster").Query; q != "" {
		t.Fatalf("query = %q", q)
	}
	var got api.ClusterStatus
	mustJSON(t, out, &got)
	if got.Term != 7 || len(got.Replicas) != 3 {
		t.Fatalf("json = %+v", got)
	}
}

// clusterToken is the cluster token the membership command tests send.
const clusterToken = "membership-tok"

// useTokenFile points $HAKURIVER_TOKEN_FILE at a file holding token ("" =
// unset) and clears $HAKURIVER_CONFIG.
func useTokenFile(t *testing.T, token string) {
	t.Helper()
	t.Setenv(configEnv, "")
	if token == "" {
		t.Setenv(tokenFileEnv, "")
		return
	}
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(tokenFileEnv, p)
}

func TestCLI_ClusterWrites(t *testing.T) {
	useTokenFile(t, clusterToken)
	f := newFakeHost(t)
	f.handle("POST /api/cluster/join", http.StatusOK, api.MessageResponse{Message: "joined"})
	f.handle("DELETE /api/cluster/peers/{id}", http.StatusOK, api.MessageResponse{Message: "removed"})
	f.handle("POST /api/cluster/leadership-transfer", http.StatusOK, api.MessageResponse{Message: "transferred"})

	out, _, err := runCLI(t, "--host", f.srv.URL, "cluster", "join", "--id", "h4", "--raft", "10.0.0.4:8300", "--api", "http://10.0.0.4:8000")
	if err != nil || out != "joined\n" {
		t.Fatalf("join: out %q, err %v", out, err)
	}
	var jr api.JoinRequest
	if err := json.Unmarshal(f.last(t, "/api/cluster/join").Body, &jr); err != nil {
		t.Fatalf("decode join: %v", err)
	}
	if jr != (api.JoinRequest{ID: "h4", Raft: "10.0.0.4:8300", API: "http://10.0.0.4:8000"}) {
		t.Fatalf("join request = %+v", jr)
	}
	for _, p := range []string{"/api/cluster/join"} {
		if got := f.last(t, p).Token; got != clusterToken {
			t.Fatalf("%s: token header %q, want the one of $%s", p, got, tokenFileEnv)
		}
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "cluster", "join", "--id", "h4"); err == nil || !strings.Contains(err.Error(), "raft") {
		t.Fatalf("join without --raft: err = %v", err)
	}

	out, _, err = runCLI(t, "--host", f.srv.URL, "cluster", "remove", "h3")
	if err != nil || out != "removed\n" {
		t.Fatalf("remove: out %q, err %v", out, err)
	}
	if r := f.last(t, "/api/cluster/peers/h3"); r.Method != http.MethodDelete || r.Token != clusterToken {
		t.Fatalf("remove: method %s, token %q", r.Method, r.Token)
	}

	out, _, err = runCLI(t, "--host", f.srv.URL, "-o", "json", "cluster", "transfer-leadership", "--to", "h2")
	if err != nil {
		t.Fatalf("transfer: %v", err)
	}
	var m api.MessageResponse
	mustJSON(t, out, &m)
	var tr api.TransferRequest
	if err := json.Unmarshal(f.last(t, "/api/cluster/leadership-transfer").Body, &tr); err != nil || tr.ID != "h2" {
		t.Fatalf("transfer request = %+v, %v", tr, err)
	}
	if got := f.last(t, "/api/cluster/leadership-transfer").Token; got != clusterToken {
		t.Fatalf("transfer: token header %q", got)
	}

	// --token overrides $HAKURIVER_TOKEN_FILE.
	if _, _, err := runCLI(t, "--host", f.srv.URL, "cluster", "transfer-leadership", "--token", "flag-tok"); err != nil {
		t.Fatalf("transfer --token: %v", err)
	}
	if got := f.last(t, "/api/cluster/leadership-transfer").Token; got != "flag-tok" {
		t.Fatalf("transfer --token: token header %q", got)
	}
}

// TestCLI_ClusterWritesNeedToken: without any token source the membership
// commands fail before calling the cluster, naming where a token comes
// from; cluster status needs none.
func TestCLI_ClusterWritesNeedToken(t *testing.T) {
	useTokenFile(t, "")
	f := newFakeHost(t)
	f.handle("GET /api/cluster", http.StatusOK, api.ClusterStatus{})
	for _, args := range [][]string{
		{"cluster", "join", "--id", "h4", "--raft", "10.0.0.4:8300"},
		{"cluster", "remove", "h3"},
		{"cluster", "transfer-leadership"},
	} {
		_, _, err := runCLI(t, append([]string{"--host", f.srv.URL}, args...)...)
		if err == nil {
			t.Fatalf("%v without a token: no error", args)
		}
		for _, want := range []string{"cluster token", "--token", tokenFileEnv} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v without a token: error %q does not mention %q", args, err, want)
			}
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests reached the host without a token", n)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "cluster", "status"); err != nil {
		t.Fatalf("cluster status without a token: %v", err)
	}
	// An empty token file is an error of its own.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "--host", f.srv.URL, "cluster", "remove", "h3", "--token-file", empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("remove with an empty --token-file: err = %v", err)
	}
}
