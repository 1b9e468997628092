package fsm

import (
	"fmt"
	"regexp"
	"sort"
	"sync"
)

// Environment is a Docker environment container and the host replica whose
// Docker Engine holds it. Operations on the environment (start, stop,
// delete, create_tar, shell) run on that replica; the others proxy to it.
type Environment struct {
	Name    string `json:"name"`
	Replica string `json:"replica"`
}

// TarballRecord is the newest tarball `create-tar` saved for an
// environment: its version (the Unix time in its file name) and the
// SHA-256 of its bytes, both computed by the replica that saved it. A
// runner loads only this version, and only when the file's hash matches.
type TarballRecord struct {
	Version int64  `json:"version"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size,omitempty"`
}

// EnvTarball is one environment's TarballRecord in a snapshot.
type EnvTarball struct {
	Name string `json:"name"`
	TarballRecord
}

// SetEnvironment records that environment Name lives on Replica, or, with
// Deleted, forgets that (its tarball record stays: tarballs outlive the
// container, as in the original). Recording a name that already lives on
// another replica is rejected with ErrConflict; recording it again on the
// same replica, or deleting an unknown name, is a harmless no-op.
//
// Tarball, when set, records a new tarball of Name (Replica may then be
// empty): its version must not be older than the recorded one, and the
// same version again must carry the same hash (a retry); anything else is
// ErrConflict.
type SetEnvironment struct {
	Name    string         `json:"name"`
	Replica string         `json:"replica,omitempty"`
	Deleted bool           `json:"deleted,omitempty"`
	Tarball *TarballRecord `json:"tarball,omitempty"`
}

// sha256RE is a SHA-256 in lower-case hex.
var sha256RE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{64}$`) })

// Type implements Command.
func (*SetEnvironment) Type() CommandType { return CmdSetEnvironment }

func (m *Machine) applySetEnvironment(c *SetEnvironment) Result {
	old, exists := m.envs[c.Name]
	tb, hasTarball := m.tarballs[c.Name]
	if err := c.Check(old, exists, tb, hasTarball); err != nil {
		return Result{Err: err}
	}
	if c.Tarball != nil && !c.Deleted && c.Replica == "" {
		m.tarballs[c.Name] = *c.Tarball
		return Result{Value: old}
	}
	if c.Deleted {
		if !exists {
			return Result{}
		}
		delete(m.envs, c.Name)
		return Result{Value: old}
	}
	e := Environment{Name: c.Name, Replica: c.Replica}
	m.envs[c.Name] = e
	if c.Tarball != nil {
		m.tarballs[c.Name] = *c.Tarball
	}
	return Result{Value: e}
}

// Check returns the error Apply gives c when the committed records of
// c.Name are env (exists reports whether there is one) and tarball
// (hasTarball), and nil when Apply accepts it. It changes nothing: the
// leader calls it to refuse a bad command before it reaches the log, and
// Apply runs the same check.
func (c *SetEnvironment) Check(env Environment, exists bool, tarball TarballRecord, hasTarball bool) error {
	if c.Name == "" {
		return fmt.Errorf("%w: environment without a name", ErrInvalid)
	}
	if tb := c.Tarball; tb != nil && !c.Deleted {
		if tb.Version <= 0 || !sha256RE().MatchString(tb.SHA256) || tb.Size < 0 {
			return fmt.Errorf("%w: environment %s: tarball needs a positive version and a lower-case hex SHA-256", ErrInvalid, c.Name)
		}
		if hasTarball && (tb.Version < tarball.Version || tb.Version == tarball.Version && tb.SHA256 != tarball.SHA256) {
			return fmt.Errorf("%w: environment %s: tarball version %d (recorded: %d)", ErrConflict, c.Name, tb.Version, tarball.Version)
		}
		if c.Replica == "" {
			return nil
		}
	}
	switch {
	case c.Deleted:
		return nil
	case c.Replica == "":
		return fmt.Errorf("%w: environment %s without a replica", ErrInvalid, c.Name)
	case exists && env.Replica != c.Replica:
		return fmt.Errorf("%w: environment %s already lives on replica %s", ErrConflict, c.Name, env.Replica)
	}
	return nil
}

// Tarball returns the newest tarball recorded for environment name.
func (m *Machine) Tarball(name string) (TarballRecord, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.tarballs[name]
	return t, ok
}

// sortedTarballs lists the tarball records by name; the caller holds m.mu.
func (m *Machine) sortedTarballs() []EnvTarball {
	out := make([]EnvTarball, 0, len(m.tarballs))
	for n, t := range m.tarballs {
		out = append(out, EnvTarball{Name: n, TarballRecord: t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// SetClusterID names the cluster, once: the first leader proposes a random
// ID (generated outside the FSM); once set, any later proposal is a no-op
// and the Result's Value is the ID in force. Runners label the Docker
// objects of the cluster with it.
type SetClusterID struct {
	ID string `json:"id"`
}

// Type implements Command. It is not ignorable: a replica that skipped it
// would lack the ID after its upgrade and diverge from the others, so the
// leader proposes it only once every replica knows it (see cluster).
func (*SetClusterID) Type() CommandType { return CmdSetClusterID }

// clusterIDRE is what a cluster ID may be (it goes into Docker labels and
// image tags).
var clusterIDRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]{6,64}$`) })

func (m *Machine) applySetClusterID(c *SetClusterID) Result {
	if m.clusterID != "" {
		return Result{Value: m.clusterID}
	}
	if !clusterIDRE().MatchString(c.ID) {
		return Result{Err: fmt.Errorf("%w: cluster ID %q: want 6-64 lower-case letters and digits", ErrInvalid, c.ID)}
	}
	m.clusterID = c.ID
	return Result{Value: c.ID}
}

// ClusterID returns the cluster's ID, "" until the first leader set it.
func (m *Machine) ClusterID() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.clusterID
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
