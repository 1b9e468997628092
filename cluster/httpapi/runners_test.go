package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// fakeBook records the registrations and heartbeats the leader got, and
// answers every heartbeat with kill.
type fakeBook struct {
	mu         sync.Mutex
	registered []string
	beats      []string
	kill       []int64
}

func (b *fakeBook) Registered(name string, _ time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.registered = append(b.registered, name)
}

func (b *fakeBook) Heartbeat(_ context.Context, node *fsm.Node, _ api.HeartbeatRequest, _ time.Time) ([]int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.beats = append(b.beats, node.Hostname)
	return b.kill, nil
}

type fakeClusterID string

func (c fakeClusterID) ClusterID() string { return string(c) }

// runnerFixture serves the runners' calls over fakes, routed as package
// cluster routes them (without its token and forwarding middlewares).
type runnerFixture struct {
	prop *fakeProposer
	book *fakeBook
	srv  *httptest.Server
}

func newRunnerFixture(t *testing.T, state *fakeState) *runnerFixture {
	t.Helper()
	f := &runnerFixture{prop: &fakeProposer{}, book: &fakeBook{kill: []int64{42}}}
	a := New(Config{NodeID: "h1"}, Deps{
		Proposer: f.prop, Tasks: state, Nodes: state, RunnerBook: f.book, ClusterID: fakeClusterID("c0ffee"),
	})
	r := chi.NewRouter()
	r.Post("/api/register", a.Register)
	r.Put("/api/heartbeat/{hostname}", a.Heartbeat)
	r.Post("/api/update", a.Update)
	f.srv = httptest.NewServer(r)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *runnerFixture) do(t *testing.T, method, path, body string) (*http.Response, string) {
	t.Helper()
	return send(t, f.srv, method, path, body)
}

func TestRegisterCommitsNodeAndTellsTheLeader(t *testing.T) {
	f := newRunnerFixture(t, newFakeState(nil))
	resp, body := f.do(t, "POST", "/api/register", `{"hostname":"n1","runner_url":"http://10.0.0.1:8001","total_cores":4,"total_ram_bytes":1024,"future_field":1}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	var rr api.RegisterResponse
	if err := json.Unmarshal([]byte(body), &rr); err != nil || rr.ClusterID != "c0ffee" || !strings.Contains(rr.Message, "n1") {
		t.Errorf("answer %s (%v), want the cluster ID and the runner named", body, err)
	}
	cmds := f.prop.proposed()
	if len(cmds) != 1 {
		t.Fatalf("proposed %#v, want one RegisterNode", cmds)
	}
	rn, ok := cmds[0].(*fsm.RegisterNode)
	if !ok || rn.Node.Hostname != "n1" || rn.Node.URL != "http://10.0.0.1:8001" || rn.Node.TotalCores != 4 || rn.Node.MemoryTotalBytes != 1024 {
		t.Fatalf("proposed %#v", cmds[0])
	}
	if len(f.book.registered) != 1 || f.book.registered[0] != "n1" {
		t.Errorf("leader told of registrations %v, want [n1]", f.book.registered)
	}
}

func TestRegisterBadInputNamesFieldAndChangesNothing(t *testing.T) {
	for _, tc := range []struct{ body, field string }{
		{`{"hostname":"bad host!","runner_url":"http://r:1","total_cores":4}`, "hostname"},
		{`{"hostname":"n1","runner_url":"http://r:1","total_cores":0}`, "total_cores"},
		{`{"hostname":"n1","runner_url":"http://r:1","total_cores":1,"total_ram_bytes":-1}`, "total_ram_bytes"},
		{`{"hostname":"n1","runner_url":"not a url","total_cores":1}`, "runner_url"},
		{`{"hostname":"n1","total_cores":"four"}`, "total_cores"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			f := newRunnerFixture(t, newFakeState(nil))
			resp, body := f.do(t, "POST", "/api/register", tc.body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.field) {
				t.Errorf("register %s: %d %s, want 400 naming %q", tc.body, resp.StatusCode, body, tc.field)
			}
			if cmds := f.prop.proposed(); len(cmds) != 0 || len(f.book.registered) != 0 {
				t.Errorf("register %s proposed %#v, told the leader of %v", tc.body, cmds, f.book.registered)
			}
		})
	}
}

func TestHeartbeatUnregisteredNode404(t *testing.T) {
	f := newRunnerFixture(t, newFakeState(nil, &fsm.Node{Hostname: "n1", Status: fsm.NodeOnline}))
	resp, body := f.do(t, "PUT", "/api/heartbeat/ghost", `{"running_tasks":[]}`)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "Node not registered") {
		t.Errorf("heartbeat of an unregistered node: %d %s, want 404 Node not registered", resp.StatusCode, body)
	}
	if len(f.book.beats) != 0 || len(f.prop.proposed()) != 0 {
		t.Errorf("an unregistered node's heartbeat reached the leader (%v) or proposed %#v", f.book.beats, f.prop.proposed())
	}
	resp, body = f.do(t, "PUT", "/api/heartbeat/n1", `{"running_tasks":[7]}`)
	var hr api.HeartbeatResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &hr) != nil || len(hr.Kill) != 1 || hr.Kill[0] != 42 {
		t.Errorf("heartbeat of n1: %d %s, want 200 with the leader's kill list [42]", resp.StatusCode, body)
	}
}

func TestUpdateRejectsLeaderOnlyStatuses(t *testing.T) {
	f := newRunnerFixture(t, newFakeState([]*fsm.Task{task(5, fsm.StatusAssigning)}))
	for _, st := range []string{"pending", "assigning", "nonsense"} {
		resp, body := f.do(t, "POST", "/api/update", `{"task_id":5,"status":"`+st+`"}`)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "status") {
			t.Errorf("update to %s: %d %s, want 400 naming status", st, resp.StatusCode, body)
		}
	}
	if cmds := f.prop.proposed(); len(cmds) != 0 {
		t.Errorf("rejected updates proposed %#v", cmds)
	}
}

func TestUpdateThatChangesNothingProposesNothing(t *testing.T) {
	f := newRunnerFixture(t, newFakeState([]*fsm.Task{task(5, fsm.StatusRunning), task(6, fsm.StatusCompleted)}))
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"task_id":5,"status":"running"}`, http.StatusOK},        // a retry
		{`{"task_id":6,"status":"completed"}`, http.StatusOK},      // a retry of a final report
		{`{"task_id":6,"status":"running"}`, http.StatusConflict},  // a stale report
		{`{"task_id":99,"status":"running"}`, http.StatusNotFound}, // a task this cluster does not know
	} {
		resp, body := f.do(t, "POST", "/api/update", tc.body)
		if resp.StatusCode != tc.status {
			t.Errorf("update %s: %d %s, want %d", tc.body, resp.StatusCode, body, tc.status)
		}
	}
	if cmds := f.prop.proposed(); len(cmds) != 0 {
		t.Fatalf("updates that change nothing proposed %#v", cmds)
	}
	resp, body := f.do(t, "POST", "/api/update", `{"task_id":5,"status":"completed","exit_code":0}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("update to completed: %d %s", resp.StatusCode, body)
	}
	cmds := f.prop.proposed()
	if u, ok := cmds[0].(*fsm.UpdateTask); len(cmds) != 1 || !ok || u.TaskID != 5 || u.Status != fsm.StatusCompleted {
		t.Fatalf("proposed %#v, want one UpdateTask of task 5 to completed", cmds)
	}
	if f.prop.kicks != 1 {
		t.Errorf("scheduler kicked %d times after a final status, want 1", f.prop.kicks)
	}
}
