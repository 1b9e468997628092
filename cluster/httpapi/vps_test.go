package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// fakeVPSRunners answers the VPS lifecycle calls with state (the runner's
// VPSState) and records them.
type fakeVPSRunners struct {
	mu    sync.Mutex
	state string
	err   error
	calls []string
}

func (r *fakeVPSRunners) record(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
	return r.err
}

func (r *fakeVPSRunners) StopVPS(context.Context, string, int64) error { return r.record("stop") }
func (r *fakeVPSRunners) MarkVPSStopped(context.Context, string, int64) error {
	return r.record("mark")
}
func (r *fakeVPSRunners) UnmarkVPSStopped(context.Context, string, int64) error {
	return r.record("unmark")
}
func (r *fakeVPSRunners) VPSState(context.Context, string, int64) (string, error) {
	return r.state, r.record("state")
}
func (r *fakeVPSRunners) RemoveStoppedVPS(context.Context, string, int64) error {
	return r.record("remove")
}
func (r *fakeVPSRunners) SnapshotVPS(_ context.Context, _ string, req api.VPSSnapshotRequest) (api.VPSSnapshotResponse, error) {
	return api.VPSSnapshotResponse{Name: req.Name, Version: 7, SHA256: zeroSHA}, r.record("snapshot")
}

// fakeSnaps is an empty snapshot record.
type fakeSnaps struct{}

func (fakeSnaps) VPSSnapshots() []fsm.VPSSnapshot                 { return nil }
func (fakeSnaps) VPSSnapshotNamed(string) (fsm.VPSSnapshot, bool) { return fsm.VPSSnapshot{}, false }
func (fakeSnaps) CheckVPSSnapshot(*fsm.SetVPSSnapshot) error      { return nil }
func (fakeSnaps) ClusterID() string                               { return "c0ffee" }

// vpsServer serves the VPS lifecycle routes over state as caller.
func vpsServer(t *testing.T, state *fakeState, prop *fakeProposer, r *fakeVPSRunners, caller auth.Principal) *httptest.Server {
	t.Helper()
	a := New(Config{NodeID: "h1", SharedDir: t.TempDir()}, Deps{Proposer: prop, Tasks: state, Nodes: state, Runners: &fakeRunners{},
		VPS: r, Snapshots: fakeSnaps{}, Snapshotter: r})
	rt := chi.NewRouter()
	rt.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req.WithContext(auth.WithPrincipal(req.Context(), caller)))
		})
	})
	rt.Post("/api/vps/{id}/stop", a.VPSStop)
	rt.Post("/api/vps/{id}/start", a.VPSStart)
	rt.Post("/api/vps/{id}/snapshot", a.VPSSnapshot)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return srv
}

func vpsTask(id int64, st fsm.Status, node string) *fsm.Task {
	return &fsm.Task{TaskID: id, TaskType: fsm.TaskVPS, Status: st, AssignedNode: node, RequiredCores: 2, Owner: "alice"}
}

// TestVPSLifecycleRefusals: every refusal of stop, start and snapshot
// answers its status with a reason and changes nothing (no runner call
// that acts, no proposal).
func TestVPSLifecycleRefusals(t *testing.T) {
	alice := auth.Principal{Kind: auth.Account, Name: "alice", Role: fsm.RoleUser}
	bob := auth.Principal{Kind: auth.Account, Name: "bob", Role: fsm.RoleUser}
	online := &fsm.Node{Hostname: "n1", URL: "http://n1", Status: fsm.NodeOnline, TotalCores: 2}
	offline := &fsm.Node{Hostname: "n2", URL: "http://n2", Status: fsm.NodeOffline, TotalCores: 2}
	busy := task(50, fsm.StatusRunning)
	busy.AssignedNode, busy.RequiredCores = "n1", 1
	cmd := task(60, fsm.StatusRunning)
	cmd.AssignedNode, cmd.Owner = "n1", "alice"
	cases := []struct {
		name   string
		tasks  []*fsm.Task
		caller auth.Principal
		path   string
		state  string
		status int
		want   string
	}{
		{"bad ID", nil, alice, "/api/vps/x/stop", "", 400, "task id"},
		{"unknown", nil, alice, "/api/vps/9/stop", "", 404, "not found"},
		{"not a VPS", []*fsm.Task{cmd}, alice, "/api/vps/60/stop", "", 400, "not a VPS"},
		{"another user's stop", []*fsm.Task{vpsTask(1, fsm.StatusRunning, "n1")}, bob, "/api/vps/1/stop", "", 403, "belongs to alice"},
		{"another user's start", []*fsm.Task{vpsTask(1, fsm.StatusStopped, "n1")}, bob, "/api/vps/1/start", "", 403, "belongs to alice"},
		{"another user's snapshot", []*fsm.Task{vpsTask(1, fsm.StatusRunning, "n1")}, bob, "/api/vps/1/snapshot", "", 403, "belongs to alice"},
		{"stop pending", []*fsm.Task{vpsTask(1, fsm.StatusPending, "")}, alice, "/api/vps/1/stop", "", 409, "cannot be stopped"},
		{"start running", []*fsm.Task{vpsTask(1, fsm.StatusKilled, "n1")}, alice, "/api/vps/1/start", "", 409, "only a stopped VPS"},
		{"start offline node", []*fsm.Task{vpsTask(1, fsm.StatusStopped, "n2")}, alice, "/api/vps/1/start", "", 409, "node n2 is offline"},
		{"start no room", []*fsm.Task{vpsTask(1, fsm.StatusStopped, "n1"), busy}, alice, "/api/vps/1/start", "stopped", 409, "no room on its node: node n1 has 1 of 2 cores free, needs 2"},
		{"start container gone", []*fsm.Task{vpsTask(1, fsm.StatusStopped, "n1")}, alice, "/api/vps/1/start", "absent", 409, "no longer exists on node n1"},
		{"snapshot bad name", []*fsm.Task{vpsTask(1, fsm.StatusRunning, "n1")}, alice, "/api/vps/1/snapshot?name=Bad%20Name", "", 400, "name:"},
		{"snapshot bad keep", []*fsm.Task{vpsTask(1, fsm.StatusRunning, "n1")}, alice, "/api/vps/1/snapshot?keep=0", "", 400, "must be an integer between 1 and 100"},
		{"snapshot pending", []*fsm.Task{vpsTask(1, fsm.StatusPending, "")}, alice, "/api/vps/1/snapshot", "", 409, "cannot be snapshotted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prop := &fakeProposer{}
			r := &fakeVPSRunners{state: tc.state}
			srv := vpsServer(t, newFakeState(tc.tasks, online, offline), prop, r, tc.caller)
			resp, body := send(t, srv, "POST", tc.path, "")
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("POST %s: %d %s, want %d with %q", tc.path, resp.StatusCode, body, tc.status, tc.want)
			}
			if cmds := prop.proposed(); len(cmds) != 0 {
				t.Errorf("proposed %#v", cmds)
			}
			for _, c := range r.calls {
				if c != "state" {
					t.Errorf("runner asked to %s", c)
				}
			}
		})
	}
}

// TestVPSStopStartPropose: a stop marks the VPS on the runner, proposes
// VPSStop, then stops it; a start checks the container, then proposes
// VPSStart with the placement, and kicks the scheduler.
func TestVPSStopStartPropose(t *testing.T) {
	alice := auth.Principal{Kind: auth.Account, Name: "alice", Role: fsm.RoleUser}
	online := &fsm.Node{Hostname: "n1", URL: "http://n1", Status: fsm.NodeOnline, TotalCores: 4}
	prop := &fakeProposer{}
	r := &fakeVPSRunners{state: "stopped"}
	st := newFakeState([]*fsm.Task{vpsTask(1, fsm.StatusRunning, "n1"), vpsTask(2, fsm.StatusStopped, "n1")}, online)
	srv := vpsServer(t, st, prop, r, alice)
	if resp, body := send(t, srv, "POST", "/api/vps/1/stop", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("stop: %d %s", resp.StatusCode, body)
	}
	if resp, body := send(t, srv, "POST", "/api/vps/2/start", ""); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	cmds := prop.proposed()
	if len(cmds) != 2 {
		t.Fatalf("proposed %#v", cmds)
	}
	if s, ok := cmds[0].(*fsm.VPSStop); !ok || s.TaskID != 1 || !strings.Contains(s.Message, "alice") {
		t.Errorf("first proposal %#v, want VPSStop of 1 by alice", cmds[0])
	}
	if s, ok := cmds[1].(*fsm.VPSStart); !ok || s.TaskID != 2 {
		t.Errorf("second proposal %#v, want VPSStart of 2", cmds[1])
	}
	if strings.Join(r.calls, ",") != "mark,stop,state" || prop.kicks != 2 {
		t.Errorf("runner calls %v, kicks %d", r.calls, prop.kicks)
	}
}

// TestVPSStopCommitFails: a stop that cannot be committed takes the
// runner's mark back and never stops the container.
func TestVPSStopCommitFails(t *testing.T) {
	alice := auth.Principal{Kind: auth.Account, Name: "alice", Role: fsm.RoleUser}
	online := &fsm.Node{Hostname: "n1", URL: "http://n1", Status: fsm.NodeOnline, TotalCores: 4}
	prop := &fakeProposer{err: fmt.Errorf("%w: VPS 1 cannot be stopped (state: lost)", fsm.ErrConflict)}
	r := &fakeVPSRunners{}
	srv := vpsServer(t, newFakeState([]*fsm.Task{vpsTask(1, fsm.StatusRunning, "n1")}, online), prop, r, alice)
	if resp, body := send(t, srv, "POST", "/api/vps/1/stop", ""); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "state: lost") {
		t.Fatalf("stop: %d %s, want the commit's 409", resp.StatusCode, body)
	}
	if got := strings.Join(r.calls, ","); got != "mark,unmark" {
		t.Errorf("runner calls %s, want mark,unmark", got)
	}
}
