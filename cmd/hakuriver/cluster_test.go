package main

import (
	"encoding/json"
	"net/http"
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

func TestCLI_ClusterWrites(t *testing.T) {
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
	if _, _, err := runCLI(t, "--host", f.srv.URL, "cluster", "join", "--id", "h4"); err == nil || !strings.Contains(err.Error(), "raft") {
		t.Fatalf("join without --raft: err = %v", err)
	}

	out, _, err = runCLI(t, "--host", f.srv.URL, "cluster", "remove", "h3")
	if err != nil || out != "removed\n" {
		t.Fatalf("remove: out %q, err %v", out, err)
	}
	if r := f.last(t, "/api/cluster/peers/h3"); r.Method != http.MethodDelete {
		t.Fatalf("remove method = %s", r.Method)
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
}
