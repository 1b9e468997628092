package fsm

import (
	"fmt"
	"sort"
	"time"
)

// VPSSnapshot is a saved VPS (`docker commit` of its container): an
// environment of the environment store, Name, whose newest tarball is
// Version (a runner loads it like any environment's), with who made it
// from which VPS. A VPS created with container_name Name starts from it.
type VPSSnapshot struct {
	Name    string    `json:"name"`
	Owner   string    `json:"owner,omitempty"`
	TaskID  int64     `json:"task_id,string"`
	Version int64     `json:"version"`
	SHA256  string    `json:"sha256"`
	Size    int64     `json:"size"`
	At      time.Time `json:"at"`
}

// SetVPSSnapshot records a new version of a VPS snapshot (Snapshot), or
// forgets snapshot Delete and its tarball record, so that no VPS can be
// created from it any more. A snapshot never takes the name of an
// environment that is not a snapshot (ErrConflict).
type SetVPSSnapshot struct {
	Snapshot *VPSSnapshot `json:"snapshot,omitempty"`
	Delete   string       `json:"delete,omitempty"`
}

// Type implements Command.
func (*SetVPSSnapshot) Type() CommandType { return CmdSetVPSSnapshot }

// CheckVPSSnapshot returns the error Apply gives c in the current state
// (nil when it accepts it); the leader refuses a bad command with it
// before it reaches the log.
func (m *Machine) CheckVPSSnapshot(c *SetVPSSnapshot) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.checkVPSSnapshot(c)
}

func (m *Machine) checkVPSSnapshot(c *SetVPSSnapshot) error {
	if c.Delete != "" {
		if c.Snapshot != nil {
			return fmt.Errorf("%w: VPS snapshot: both a record and a deletion", ErrInvalid)
		}
		if _, ok := m.snaps[c.Delete]; !ok {
			return fmt.Errorf("%w: VPS snapshot %s", ErrNotFound, c.Delete)
		}
		return nil
	}
	s := c.Snapshot
	if s == nil || s.Name == "" || s.TaskID <= 0 {
		return fmt.Errorf("%w: VPS snapshot: name and task ID are required", ErrInvalid)
	}
	_, isSnap := m.snaps[s.Name]
	_, isEnv := m.envs[s.Name]
	tb, hasTB := m.tarballs[s.Name]
	if !isSnap && (isEnv || hasTB) {
		return fmt.Errorf("%w: %s is the name of an environment, not of a VPS snapshot", ErrConflict, s.Name)
	}
	env := &SetEnvironment{Name: s.Name, Tarball: &TarballRecord{Version: s.Version, SHA256: s.SHA256, Size: s.Size}}
	return env.Check(Environment{}, false, tb, hasTB)
}

func (m *Machine) applySetVPSSnapshot(c *SetVPSSnapshot) Result {
	if err := m.checkVPSSnapshot(c); err != nil {
		return Result{Err: err}
	}
	if c.Delete != "" {
		old := m.snaps[c.Delete]
		delete(m.snaps, c.Delete)
		delete(m.tarballs, c.Delete)
		return Result{Value: old}
	}
	s := *c.Snapshot
	m.snaps[s.Name] = s
	m.tarballs[s.Name] = TarballRecord{Version: s.Version, SHA256: s.SHA256, Size: s.Size}
	return Result{Value: s}
}

// VPSSnapshots lists the VPS snapshots by name.
func (m *Machine) VPSSnapshots() []VPSSnapshot {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.sortedSnaps()
}

// VPSSnapshotNamed returns snapshot name.
func (m *Machine) VPSSnapshotNamed(name string) (VPSSnapshot, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.snaps[name]
	return s, ok
}

// sortedSnaps lists the snapshots by name; the caller holds m.mu.
func (m *Machine) sortedSnaps() []VPSSnapshot {
	out := make([]VPSSnapshot, 0, len(m.snaps))
	for _, s := range m.snaps {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
