package fsm

import (
	"fmt"
	"sort"
)

// Environment is a Docker environment container and the host replica whose
// Docker Engine holds it. Operations on the environment (start, stop,
// delete, create_tar, shell) run on that replica; the others proxy to it.
type Environment struct {
	Name    string `json:"name"`
	Replica string `json:"replica"`
}

// SetEnvironment records that environment Name lives on Replica, or, with
// Deleted, forgets it. Recording a name that already lives on another
// replica is rejected with ErrConflict; recording it again on the same
// replica, or deleting an unknown name, is a harmless no-op.
type SetEnvironment struct {
	Name    string `json:"name"`
	Replica string `json:"replica,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
}

// Type implements Command.
func (*SetEnvironment) Type() CommandType { return CmdSetEnvironment }

func (m *Machine) applySetEnvironment(c *SetEnvironment) Result {
	if c.Name == "" {
		return Result{Err: fmt.Errorf("%w: environment without a name", ErrInvalid)}
	}
	old, exists := m.envs[c.Name]
	if c.Deleted {
		if !exists {
			return Result{}
		}
		delete(m.envs, c.Name)
		return Result{Value: old}
	}
	if c.Replica == "" {
		return Result{Err: fmt.Errorf("%w: environment %s without a replica", ErrInvalid, c.Name)}
	}
	if exists && old.Replica != c.Replica {
		return Result{Err: fmt.Errorf("%w: environment %s already lives on replica %s", ErrConflict, c.Name, old.Replica)}
	}
	e := Environment{Name: c.Name, Replica: c.Replica}
	m.envs[c.Name] = e
	return Result{Value: e}
}

// Environment returns the environment with the given name.
func (m *Machine) Environment(name string) (Environment, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.envs[name]
	return e, ok
}

// Environments returns every recorded environment, sorted by name.
func (m *Machine) Environments() []Environment {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.sortedEnvs()
}

// sortedEnvs lists the environments by name; the caller holds m.mu.
func (m *Machine) sortedEnvs() []Environment {
	out := make([]Environment, 0, len(m.envs))
	for _, e := range m.envs {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
