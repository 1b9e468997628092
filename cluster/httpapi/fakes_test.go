package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// fakeProposer records the commands proposed; err, when set, is every
// proposal's answer.
type fakeProposer struct {
	mu     sync.Mutex
	cmds   []fsm.Command
	err    error
	nextID int64
	kicks  int
}

func (p *fakeProposer) Propose(_ context.Context, c fsm.Command) (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmds = append(p.cmds, c)
	if p.err != nil {
		return nil, p.err
	}
	if s, ok := c.(*fsm.SubmitTasks); ok {
		var ids []int64
		for _, t := range s.Tasks {
			ids = append(ids, t.TaskID)
		}
		return fsm.SubmitResult{TaskIDs: ids}, nil
	}
	return nil, nil
}

func (p *fakeProposer) Submit(ctx context.Context, c *fsm.SubmitTasks) (fsm.SubmitResult, error) {
	v, err := p.Propose(ctx, c)
	if err != nil {
		return fsm.SubmitResult{}, err
	}
	p.KickScheduler()
	return v.(fsm.SubmitResult), nil
}

func (p *fakeProposer) UpdateTasks(ctx context.Context, us []fsm.UpdateTask) (fsm.UpdateResults, error) {
	if _, err := p.Propose(ctx, &fsm.UpdateTasks{Updates: us}); err != nil {
		return nil, err
	}
	return make(fsm.UpdateResults, len(us)), nil
}

func (p *fakeProposer) NextTaskID() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	return 1000 + p.nextID
}

func (p *fakeProposer) KickScheduler() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kicks++
}

func (p *fakeProposer) proposed() []fsm.Command {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.cmds)
}

// fakeState is a read-only view over fixed tasks and nodes.
type fakeState struct {
	tasks map[int64]*fsm.Task
	nodes map[string]*fsm.Node
}

func newFakeState(tasks []*fsm.Task, nodes ...*fsm.Node) *fakeState {
	s := &fakeState{tasks: map[int64]*fsm.Task{}, nodes: map[string]*fsm.Node{}}
	for _, t := range tasks {
		s.tasks[t.TaskID] = t
	}
	for _, n := range nodes {
		s.nodes[n.Hostname] = n
	}
	return s
}

func (s *fakeState) Task(id int64) (*fsm.Task, bool) { t, ok := s.tasks[id]; return t, ok }

// Tasks lists newest first, below after, as fsm.Machine does.
func (s *fakeState) Tasks(f fsm.Filter, after int64, limit int) ([]*fsm.Task, bool) {
	var ids []int64
	for id := range s.tasks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	var out []*fsm.Task
	for _, id := range ids {
		t := s.tasks[id]
		if after > 0 && id >= after || !f.Match(t) {
			continue
		}
		if limit > 0 && len(out) == limit {
			return out, true
		}
		out = append(out, t)
	}
	return out, false
}

func (s *fakeState) Active() []*fsm.Task {
	var out []*fsm.Task
	for _, t := range s.tasks {
		if !t.Status.Final() {
			out = append(out, t)
		}
	}
	return out
}

func (s *fakeState) RequestTasks(string) ([]int64, bool) { return nil, false }

func (s *fakeState) Node(name string) (*fsm.Node, bool) { n, ok := s.nodes[name]; return n, ok }

func (s *fakeState) Nodes() []*fsm.Node {
	var out []*fsm.Node
	for _, n := range s.nodes {
		out = append(out, n)
	}
	return out
}

// fakeRunners records the kills asked for.
type fakeRunners struct {
	mu     sync.Mutex
	killed []int64
}

func (r *fakeRunners) NotifyKill(t *fsm.Task) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killed = append(r.killed, t.TaskID)
}

func (r *fakeRunners) Pause(context.Context, string, int64) error  { return nil }
func (r *fakeRunners) Resume(context.Context, string, int64) error { return nil }

// fakeEnvs knows the environments listed.
type fakeEnvs []string

func (e fakeEnvs) CheckEnvironment(name string) error {
	if slices.Contains(e, name) {
		return nil
	}
	return BadRequest("container_name %q: unknown environment", name)
}

type fakeCluster api.ClusterStatus

func (c fakeCluster) Status() api.ClusterStatus { return api.ClusterStatus(c) }

// fakeNodeViews serves fixed views and health.
type fakeNodeViews struct {
	views  []api.NodeView
	health api.HealthResponse
}

func (v fakeNodeViews) NodeViews() []api.NodeView  { return v.views }
func (v fakeNodeViews) Health() api.HealthResponse { return v.health }

// fakeMembership knows the voters listed.
type fakeMembership struct{ voters []string }

func (m *fakeMembership) AddVoter(_ context.Context, id, _ string) error {
	m.voters = append(m.voters, id)
	return nil
}

func (m *fakeMembership) InConfiguration(id string) (bool, error) {
	return slices.Contains(m.voters, id), nil
}

func (m *fakeMembership) RemoveVoter(_ context.Context, id string) error {
	if !slices.Contains(m.voters, id) {
		return NotFound("replica %q is not in the raft configuration", id)
	}
	return nil
}

func (m *fakeMembership) TransferLeadership(context.Context, string) error { return nil }

// fixture is an API over fakes, served by a router that mirrors the
// route table of package cluster without its forwarding middlewares.
type fixture struct {
	prop    *fakeProposer
	state   *fakeState
	runners *fakeRunners
	srv     *httptest.Server
	// shared is the API's SharedDir (task logs).
	shared string
}

func newFixture(t *testing.T, state *fakeState, d Deps) *fixture {
	t.Helper()
	f := &fixture{prop: &fakeProposer{}, state: state, runners: &fakeRunners{}}
	if d.Proposer == nil {
		d.Proposer = f.prop
	}
	d.Tasks, d.Nodes, d.Runners = state, state, f.runners
	if d.Environments == nil {
		d.Environments = fakeEnvs{"hakuriver-base"}
	}
	if d.Membership == nil {
		d.Membership = &fakeMembership{}
	}
	if d.Cluster == nil {
		d.Cluster = fakeCluster{}
	}
	if d.NodeViews == nil {
		d.NodeViews = fakeNodeViews{}
	}
	f.shared = t.TempDir()
	a := New(Config{NodeID: "h1", SharedDir: f.shared, MaxListTasks: 1000, DefaultContainer: "hakuriver-base"}, d)
	r := chi.NewRouter()
	// The route table authenticates; here every caller is an operator.
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := auth.Principal{Kind: auth.Account, Name: "op", Role: fsm.RoleOperator}
			next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
		})
	})
	r.Post("/api/submit", CheckSubmit(a.Submit))
	r.Get("/api/status/{id}", a.Status)
	r.Get("/api/tasks", a.Tasks)
	r.Post("/api/kill/{id}", a.Kill)
	r.Get("/api/task/{id}/stdout", a.Log("stdout"))
	r.Get("/api/nodes", a.Nodes)
	r.Get("/api/health", a.Health)
	r.Post("/api/nodes/{name}/drain", a.Drain(true))
	r.Post("/api/nodes/{name}/undrain", a.Drain(false))
	r.Get("/api/cluster", a.Cluster)
	r.Delete("/api/cluster/peers/{id}", a.RemovePeer)
	r.Post("/api/cluster/join", a.Join)
	f.srv = httptest.NewServer(r)
	t.Cleanup(f.srv.Close)
	return f
}

// do sends one request and returns the answer with its body read.
func (f *fixture) do(t *testing.T, method, path, body string) (*http.Response, string) {
	t.Helper()
	return send(t, f.srv, method, path, body)
}

// send sends one request to srv and returns the answer with its body read.
func send(t *testing.T, srv *httptest.Server, method, path, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func task(id int64, st fsm.Status) *fsm.Task {
	return &fsm.Task{TaskID: id, TaskType: fsm.TaskCommand, Command: fmt.Sprintf("job-%d", id), Status: st, RequiredCores: 1}
}
