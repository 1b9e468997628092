package httpapi

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/environment"
)

// fakeEnvState is the committed environment records of a cluster whose ID
// is "c0ffee".
type fakeEnvState struct {
	envs     map[string]fsm.Environment
	tarballs map[string]fsm.TarballRecord
}

func newFakeEnvState(envs ...fsm.Environment) *fakeEnvState {
	s := &fakeEnvState{envs: map[string]fsm.Environment{}, tarballs: map[string]fsm.TarballRecord{}}
	for _, e := range envs {
		s.envs[e.Name] = e
	}
	return s
}

func (s *fakeEnvState) ClusterID() string { return "c0ffee" }

func (s *fakeEnvState) Environment(name string) (fsm.Environment, bool) {
	e, ok := s.envs[name]
	return e, ok
}

func (s *fakeEnvState) Environments() []fsm.Environment {
	var out []fsm.Environment
	for _, e := range s.envs {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b fsm.Environment) int { return cmpString(a.Name, b.Name) })
	return out
}

func (s *fakeEnvState) Tarball(name string) (fsm.TarballRecord, bool) {
	t, ok := s.tarballs[name]
	return t, ok
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fakeEngine is a Docker Engine holding the containers listed; every
// operation on a container it does not hold is environment.ErrNotFound.
// createErr, when set, is every create's answer.
type fakeEngine struct {
	mu        sync.Mutex
	scopedFor string
	list      []environment.Container
	createErr error
	deleted   []string
}

func (e *fakeEngine) Scoped(clusterID string, _ func(string) bool) EnvironmentScope {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.scopedFor = clusterID
	return e
}

func (e *fakeEngine) has(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.list, func(c environment.Container) bool { return c.Name == name })
}

func (e *fakeEngine) Environments(context.Context) ([]environment.Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list), nil
}

func (e *fakeEngine) CreateEnvironment(_ context.Context, image, name string) (bool, error) {
	if e.createErr != nil {
		return false, e.createErr
	}
	if e.has(name) {
		return false, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, environment.Container{ID: "id-" + name, Name: name, Image: image, State: "running"})
	return true, nil
}

func (e *fakeEngine) op(name string) error {
	if !e.has(name) {
		return fmt.Errorf("environment %s: %w", name, environment.ErrNotFound)
	}
	return nil
}

func (e *fakeEngine) StartEnvironment(_ context.Context, name string) error { return e.op(name) }
func (e *fakeEngine) StopEnvironment(_ context.Context, name string) error  { return e.op(name) }

func (e *fakeEngine) DeleteEnvironment(_ context.Context, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.deleted = append(e.deleted, name)
	return nil
}

func (e *fakeEngine) CreateTarball(context.Context, string, int64, func(environment.Progress)) (environment.Tarball, error) {
	return environment.Tarball{}, fmt.Errorf("create tarball: %w", environment.ErrUnavailable)
}

func (e *fakeEngine) Shell(_ context.Context, name string, _, _ uint) (EnvShell, error) {
	if err := e.op(name); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("shell in %s: %w", name, environment.ErrNoShell)
}

// fakeReplicas is the other replicas: their API base URLs (absent: not
// alive), whether this one leads, and the environments each lists.
type fakeReplicas struct {
	mu       sync.Mutex
	leader   bool
	leaderID string
	apis     map[string]string
	lists    map[string][]api.DockerContainer // by base URL
	recorded []*fsm.SetEnvironment            // through RecordEnvironment
}

func (r *fakeReplicas) IsLeader() bool { return r.leader }

func (r *fakeReplicas) Leader() (string, string) { return r.leaderID, r.apis[r.leaderID] }

func (r *fakeReplicas) ReplicaAPI(id string) string { return r.apis[id] }

func (r *fakeReplicas) RecordEnvironment(_ context.Context, _ string, rec *fsm.SetEnvironment) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recorded = append(r.recorded, rec)
	return nil
}

func (r *fakeReplicas) Environments(_ context.Context, base string) ([]api.DockerContainer, error) {
	list, ok := r.lists[base]
	if !ok {
		return nil, fmt.Errorf("GET %s: connection refused", base)
	}
	return list, nil
}

// envFixture is replica "h1"'s environment handlers over fakes, served by
// a router that mirrors the /api/docker lines of cluster's route table.
type envFixture struct {
	prop     *fakeProposer
	engine   *fakeEngine
	replicas *fakeReplicas
	srv      *httptest.Server
}

func newEnvFixture(t *testing.T, state *fakeEnvState, engine *fakeEngine, replicas *fakeReplicas) *envFixture {
	t.Helper()
	f := &envFixture{prop: &fakeProposer{}, engine: engine, replicas: replicas}
	d := EnvDeps{State: state, Proposer: f.prop, Leader: replicas, Replicas: replicas, Calls: replicas}
	if engine != nil {
		d.Engine = engine
	}
	e := NewEnvironments(EnvConfig{NodeID: "h1", TarballDir: t.TempDir()}, d)
	r := chi.NewRouter()
	r.Route("/api/docker", func(r chi.Router) {
		r.Get("/host/containers", e.List)
		r.Post("/host/create", e.Create)
		r.Post("/host/start/{name}", e.Op("start"))
		r.Post("/host/stop/{name}", e.Op("stop"))
		r.Post("/host/delete/{name}", e.Op("delete"))
		r.Get("/host/containers/{name}/terminal", e.Terminal)
		r.Post("/create_tar/{name}", e.CreateTar)
		r.Get("/list", e.Tarballs)
		r.Post("/internal/environments", e.SetEnvironment)
	})
	f.srv = httptest.NewServer(r)
	t.Cleanup(f.srv.Close)
	if replicas.apis == nil {
		replicas.apis = map[string]string{}
	}
	replicas.apis["h1"] = f.srv.URL
	return f
}
