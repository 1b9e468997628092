package cluster

import (
	"path/filepath"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Environments is what a replica needs of its Docker Engine to serve the
// environment API (httpapi.EnvironmentEngine). cluster never imports an
// implementation; the composition root (cmd/hakuriver) wires the runner's
// Docker package (runner/executor/docker.Manager) in through a small
// adapter.
type Environments = httpapi.EnvironmentEngine

// EnvironmentScope is one cluster's environment containers on this
// replica's engine (httpapi.EnvironmentScope).
type EnvironmentScope = httpapi.EnvironmentScope

// EnvShell is an interactive shell in an environment container
// (httpapi.EnvShell).
type EnvShell = httpapi.EnvShell

// The roles the environment handlers (httpapi.EnvAPI) use, as this replica
// plays them.
var (
	_ httpapi.EnvReader        = (*fsm.Machine)(nil)
	_ httpapi.Leadership       = envRoles{}
	_ httpapi.ReplicaDirectory = envRoles{}
	_ httpapi.ReplicaCalls     = (*api.ReplicaClient)(nil)
)

// newEnvAPI returns the environment handlers over this replica.
func (h *Host) newEnvAPI() *httpapi.EnvAPI {
	return httpapi.NewEnvironments(httpapi.EnvConfig{
		NodeID:         h.cfg.NodeID,
		TarballDir:     filepath.Join(h.cfg.SharedDir, h.cfg.ContainerDir),
		LeaderWait:     h.cfg.LeaderWait,
		ProxyTransport: h.fwd.Transport,
		Logger:         h.log,
	}, httpapi.EnvDeps{
		Engine:   h.cfg.Docker,
		State:    h.machine,
		Proposer: h,
		Leader:   envRoles{h},
		Replicas: envRoles{h},
		Calls:    h.replicas,
	})
}

// envRoles is where the environment handlers find the leader and the
// other replicas.
type envRoles struct{ h *Host }

func (r envRoles) IsLeader() bool              { return r.h.IsLeader() }
func (r envRoles) Leader() (id, apiURL string) { return r.h.leaderInfo() }
func (r envRoles) ReplicaAPI(id string) string { return r.h.replicaAPI(id) }

// replicaAPI returns the API base URL of replica id ("" when gossip does
// not see it alive).
func (h *Host) replicaAPI(id string) string {
	if id == h.cfg.NodeID {
		return h.apiURL
	}
	if m, ok := h.pool.Member(id); ok && m.Alive {
		return m.Meta.API
	}
	return ""
}

// checkEnvironment is the submit-time check of a task's container_name
// (httpapi.CheckEnvironment over the committed state and the tarball
// directory).
func (h *Host) checkEnvironment(name string) error {
	return httpapi.CheckEnvironment(h.machine, filepath.Join(h.cfg.SharedDir, h.cfg.ContainerDir), name)
}
