package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

func TestSubmitAcceptedProposesTasks(t *testing.T) {
	f := newFixture(t, newFakeState(nil, &fsm.Node{Hostname: "n1", TotalCores: 8, MemoryTotalBytes: 1 << 34, Status: fsm.NodeOnline}), Deps{})
	resp, body := f.do(t, "POST", "/api/submit", `{"command":"echo","arguments":["hi"],"required_cores":2,"request_id":"req-1"}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	cmds := f.prop.proposed()
	if len(cmds) != 1 {
		t.Fatalf("proposed %d commands, want 1: %#v", len(cmds), cmds)
	}
	st, ok := cmds[0].(*fsm.SubmitTasks)
	if !ok || len(st.Tasks) != 1 || st.RequestID != "req-1" {
		t.Fatalf("proposed %#v, want one SubmitTasks of one task with request ID req-1", cmds[0])
	}
	tk := st.Tasks[0]
	if tk.Command != "echo" || tk.RequiredCores != 2 || tk.Status != fsm.StatusPending || tk.ContainerName != "hakuriver-base" || tk.TaskID != 1001 {
		t.Errorf("proposed task %+v", tk)
	}
	if filepath.Base(tk.StdoutPath) != "1001.out" || filepath.Base(filepath.Dir(tk.StdoutPath)) != "task_outputs" {
		t.Errorf("stdout path %q", tk.StdoutPath)
	}
	var sr api.SubmitResponse
	if err := json.Unmarshal([]byte(body), &sr); err != nil || len(sr.TaskIDs) != 1 || sr.TaskIDs[0] != "1001" {
		t.Errorf("answer %s (%v), want task ID 1001", body, err)
	}
	if f.prop.kicks != 1 {
		t.Errorf("scheduler kicked %d times, want 1", f.prop.kicks)
	}
}

func TestSubmitBadInputNamesFieldAndProposesNothing(t *testing.T) {
	state := newFakeState([]*fsm.Task{task(5, fsm.StatusRunning)}, &fsm.Node{Hostname: "n1", TotalCores: 4, MemoryTotalBytes: 1 << 30, Status: fsm.NodeOnline})
	for _, tc := range []struct{ body, field string }{
		{`{"command":"x","requierd_cores":2}`, "requierd_cores"},
		{`{"command":"x","required_cores":-1}`, "required_cores"},
		{`{"command":""}`, "command"},
		{`{"command":"x","after":["6"]}`, "after"},
		{`{"command":"x","targets":["nohost"]}`, "nohost"},
		{`{"command":"x","required_cores":64}`, "largest node"},
		{`{"command":"x","container_name":"nosuchenv"}`, "container_name"},
		{`{"command":"x","array":"0-"}`, "array"},
		{`{"command":"x","name":"no spaces"}`, "name"},
		{`{"command":"x","name":"12345"}`, "name"},
		{`{"command":"x","argument_sets":[]}`, "argument_sets"},
		{`{"command":"x","arguments":["a"],"argument_sets":[["b"]]}`, "argument_sets"},
		{`{"command":"x","argument_sets":[["a"],["b\u0000"]]}`, "argument_sets[1]"},
		{`{"command":"x","argument_sets":[["a"],["b"]],"array":"0-2"}`, "array"},
		{`{"command":"x","argument_sets":[["a"]],"targets":["n1","n1"]}`, "argument_sets"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			f := newFixture(t, state, Deps{})
			resp, body := f.do(t, "POST", "/api/submit", tc.body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.field) {
				t.Errorf("submit %s: %d %s, want 400 naming %q", tc.body, resp.StatusCode, body, tc.field)
			}
			if cmds := f.prop.proposed(); len(cmds) != 0 {
				t.Errorf("submit %s proposed %#v", tc.body, cmds)
			}
		})
	}
}

func TestStatusNotFoundAndBadID(t *testing.T) {
	f := newFixture(t, newFakeState([]*fsm.Task{task(7, fsm.StatusRunning)}), Deps{})
	if resp, body := f.do(t, "GET", "/api/status/42", ""); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "42") {
		t.Errorf("status of an unknown task: %d %s, want 404 naming it", resp.StatusCode, body)
	}
	if resp, body := f.do(t, "GET", "/api/status/-1", ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status of a bad ID: %d %s, want 400", resp.StatusCode, body)
	}
	resp, body := f.do(t, "GET", "/api/status/7", "")
	var got fsm.Task
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || got.TaskID != 7 {
		t.Errorf("status of task 7: %d %s", resp.StatusCode, body)
	}
}

func TestKillConflictFromProposer(t *testing.T) {
	// The local view says running, the state machine (the proposer) says
	// it has finished meanwhile: 409, and no runner is told.
	running := task(9, fsm.StatusRunning)
	running.AssignedNode = "n1"
	prop := &fakeProposer{err: fmt.Errorf("%w: task 9 cannot be killed (state: completed)", fsm.ErrConflict)}
	f := newFixture(t, newFakeState([]*fsm.Task{running}), Deps{Proposer: prop})
	resp, body := f.do(t, "POST", "/api/kill/9", "")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "cannot be killed") {
		t.Fatalf("kill: %d %s, want 409 with the proposer's reason", resp.StatusCode, body)
	}
	if len(prop.proposed()) != 1 {
		t.Errorf("proposed %d commands, want the one kill", len(prop.proposed()))
	}
	if len(f.runners.killed) != 0 {
		t.Errorf("runner told to kill %v after a refused kill", f.runners.killed)
	}
}

func TestKillFinishedTaskRefusedWithoutProposing(t *testing.T) {
	f := newFixture(t, newFakeState([]*fsm.Task{task(3, fsm.StatusCompleted)}), Deps{})
	if resp, body := f.do(t, "POST", "/api/kill/3", ""); resp.StatusCode != http.StatusConflict {
		t.Fatalf("kill of a completed task: %d %s, want 409", resp.StatusCode, body)
	}
	if cmds := f.prop.proposed(); len(cmds) != 0 {
		t.Errorf("proposed %#v for a finished task", cmds)
	}
}

func TestKillProposesAndNotifiesRunner(t *testing.T) {
	running := task(4, fsm.StatusRunning)
	running.AssignedNode = "n1"
	f := newFixture(t, newFakeState([]*fsm.Task{running}), Deps{})
	if resp, body := f.do(t, "POST", "/api/kill/4", ""); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("kill: %d %s", resp.StatusCode, body)
	}
	cmds := f.prop.proposed()
	if k, ok := cmds[0].(*fsm.KillTask); len(cmds) != 1 || !ok || k.TaskID != 4 {
		t.Errorf("proposed %#v, want one KillTask of task 4", cmds)
	}
	if len(f.runners.killed) != 1 || f.runners.killed[0] != 4 {
		t.Errorf("runner told to kill %v, want [4]", f.runners.killed)
	}
}

func TestTaskListPaging(t *testing.T) {
	var tasks []*fsm.Task
	for id := int64(1); id <= 5; id++ {
		tasks = append(tasks, task(id, fsm.StatusRunning))
	}
	f := newFixture(t, newFakeState(tasks), Deps{})
	var seen []int64
	after := ""
	for page := 0; page < 5; page++ {
		resp, body := f.do(t, "GET", "/api/tasks?limit=2"+after, "")
		var got []fsm.Task
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
			t.Fatalf("page %d: %d %s", page, resp.StatusCode, body)
		}
		for _, tk := range got {
			seen = append(seen, tk.TaskID)
		}
		if resp.Header.Get(api.MoreHeader) != "true" {
			if next := resp.Header.Get(api.NextAfterHeader); next != "" {
				t.Errorf("last page names a next page after %s", next)
			}
			break
		}
		next := resp.Header.Get(api.NextAfterHeader)
		if next != fmt.Sprint(got[len(got)-1].TaskID) {
			t.Fatalf("page %d: next after %q, want the last ID listed %d", page, next, got[len(got)-1].TaskID)
		}
		after = "&after=" + next
	}
	if fmt.Sprint(seen) != "[5 4 3 2 1]" {
		t.Errorf("pages listed %v, want [5 4 3 2 1]", seen)
	}
	if resp, body := f.do(t, "GET", "/api/tasks?limit=0", ""); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "limit") {
		t.Errorf("limit=0: %d %s, want 400 naming limit", resp.StatusCode, body)
	}
}

func TestClusterStatus(t *testing.T) {
	want := api.ClusterStatus{NodeID: "h1", LeaderID: "h2", LeaderAPI: "http://h2", Term: 3, AppliedIndex: 17,
		Replicas: []api.Replica{{ID: "h1", State: "follower"}, {ID: "h2", State: "leader"}}}
	f := newFixture(t, newFakeState(nil), Deps{Cluster: fakeCluster(want)})
	resp, body := f.do(t, "GET", "/api/cluster", "")
	var got api.ClusterStatus
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("cluster: %d %s", resp.StatusCode, body)
	}
	if got.LeaderID != "h2" || got.Term != 3 || got.AppliedIndex != 17 || len(got.Replicas) != 2 || got.Replicas[1].State != "leader" {
		t.Errorf("cluster status %+v, want %+v", got, want)
	}
}

func TestNodesAndHealthForOneNode(t *testing.T) {
	views := fakeNodeViews{
		views: []api.NodeView{{Node: fsm.Node{Hostname: "n1"}, CoresInUse: 2}},
		health: api.HealthResponse{
			Nodes:     [][]api.NodeHealth{{{Hostname: "n1"}, {Hostname: "n2"}}},
			Aggregate: []api.HealthAggregate{{TotalNodes: 2}},
		},
	}
	f := newFixture(t, newFakeState(nil, &fsm.Node{Hostname: "n1"}, &fsm.Node{Hostname: "n2"}), Deps{NodeViews: views})
	resp, body := f.do(t, "GET", "/api/nodes", "")
	var nv []api.NodeView
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &nv) != nil || len(nv) != 1 || nv[0].CoresInUse != 2 {
		t.Errorf("nodes: %d %s", resp.StatusCode, body)
	}
	resp, body = f.do(t, "GET", "/api/health?hostname=n2", "")
	var hr api.HealthResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &hr) != nil || len(hr.Nodes) != 1 || len(hr.Nodes[0]) != 1 || hr.Nodes[0][0].Hostname != "n2" {
		t.Errorf("health of n2: %d %s", resp.StatusCode, body)
	}
	if resp, body := f.do(t, "GET", "/api/health?hostname=n9", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("health of an unknown node: %d %s, want 404", resp.StatusCode, body)
	}
}

func TestDrainUnknownNodeProposesNothing(t *testing.T) {
	f := newFixture(t, newFakeState(nil, &fsm.Node{Hostname: "n1"}), Deps{})
	if resp, body := f.do(t, "POST", "/api/nodes/n9/drain", ""); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "n9") {
		t.Errorf("drain of an unknown node: %d %s, want 404 naming it", resp.StatusCode, body)
	}
	if resp, body := f.do(t, "POST", "/api/nodes/n1/drain", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("drain n1: %d %s", resp.StatusCode, body)
	}
	cmds := f.prop.proposed()
	if d, ok := cmds[0].(*fsm.SetNodeDrain); len(cmds) != 1 || !ok || d.Hostname != "n1" || !d.Drained {
		t.Errorf("proposed %#v, want one SetNodeDrain of n1", cmds)
	}
}

func TestMembershipErrors(t *testing.T) {
	f := newFixture(t, newFakeState(nil), Deps{Membership: &fakeMembership{voters: []string{"h1"}}})
	if resp, body := f.do(t, "DELETE", "/api/cluster/peers/h9", ""); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "h9") {
		t.Errorf("remove an unknown replica: %d %s, want 404 naming it", resp.StatusCode, body)
	}
	if resp, body := f.do(t, "POST", "/api/cluster/join", `{"id":"h2","raft":"no-port"}`); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "raft") {
		t.Errorf("join with a bad raft address: %d %s, want 400 naming raft", resp.StatusCode, body)
	}
}

// TestDrainReasonBody checks the optional body of a drain: a reason is
// proposed with it; a reason with a newline, too long, or an unknown field
// is a 400 naming what is wrong; undrain takes no body.
func TestDrainReasonBody(t *testing.T) {
	f := newFixture(t, newFakeState(nil, &fsm.Node{Hostname: "n1"}), Deps{})
	if resp, body := f.do(t, "POST", "/api/nodes/n1/drain", `{"reason":"  new PSU  "}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("drain with a reason: %d %s", resp.StatusCode, body)
	}
	cmds := f.prop.proposed()
	if d, ok := cmds[0].(*fsm.SetNodeDrain); len(cmds) != 1 || !ok || d.Reason != "new PSU" {
		t.Fatalf("proposed %#v, want the reason trimmed", cmds)
	}
	for body, want := range map[string]string{
		`{"reason":"a\nb"}`:                             "reason",
		`{"reason":"` + strings.Repeat("x", 201) + `"}`: "reason",
		`{"why":"x"}`:                                   "why",
		`{"reason":1}`:                                  "reason",
	} {
		if resp, got := f.do(t, "POST", "/api/nodes/n1/drain", body); resp.StatusCode != http.StatusBadRequest || !strings.Contains(got, want) {
			t.Errorf("drain %.40s: %d %s, want 400 naming %s", body, resp.StatusCode, got, want)
		}
	}
	if resp, got := f.do(t, "POST", "/api/nodes/n1/undrain", `{"reason":"x"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("undrain with a body: %d %s, want 400", resp.StatusCode, got)
	}
}
