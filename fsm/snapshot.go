package fsm

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// SnapshotVersion is the format version written by Snapshot.Persist.
const SnapshotVersion = 1

// Snapshot is a point-in-time copy of the state. Taking it is cheap (stored
// values are immutable, so only pointers are copied); Write does the I/O and
// may run concurrently with Apply.
type Snapshot struct {
	state snapshotState
}

type requestEntry struct {
	RequestID string  `json:"request_id"`
	TaskIDs   []int64 `json:"task_ids"`
}

type snapshotState struct {
	Version      int            `json:"version"`
	AppliedIndex uint64         `json:"applied_index"`
	MaxTaskID    int64          `json:"max_task_id"`
	Nodes        []*Node        `json:"nodes"`
	Tasks        []*Task        `json:"tasks"`
	Requests     []requestEntry `json:"requests"`
	// Envs is sorted by name; omitted when empty, so states without
	// environments encode exactly as before they existed.
	Envs []Environment `json:"envs,omitempty"`
}

// Snapshot captures the current state.
func (m *Machine) Snapshot() *Snapshot {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := snapshotState{Version: SnapshotVersion, AppliedIndex: m.applied, MaxTaskID: m.maxID}
	s.Tasks = make([]*Task, len(m.order))
	for i, id := range m.order {
		s.Tasks[i] = m.tasks[id]
	}
	s.Nodes = make([]*Node, 0, len(m.nodes))
	for _, n := range m.nodes {
		s.Nodes = append(s.Nodes, n)
	}
	s.Requests = make([]requestEntry, 0, len(m.requests))
	for k, v := range m.requests {
		s.Requests = append(s.Requests, requestEntry{RequestID: k, TaskIDs: v})
	}
	s.Envs = m.sortedEnvs()
	return &Snapshot{state: s}
}

// Write encodes the snapshot to w. The output is byte-identical for equal
// states on every replica.
func (s *Snapshot) Write(w io.Writer) error {
	sort.Slice(s.state.Nodes, func(i, j int) bool { return s.state.Nodes[i].Hostname < s.state.Nodes[j].Hostname })
	sort.Slice(s.state.Requests, func(i, j int) bool { return s.state.Requests[i].RequestID < s.state.Requests[j].RequestID })
	if err := json.NewEncoder(w).Encode(&s.state); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// Restore replaces the whole state with a snapshot written by Snapshot.Write.
func (m *Machine) Restore(r io.Reader) error {
	var s snapshotState
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if s.Version != SnapshotVersion {
		return fmt.Errorf("read snapshot: unsupported version %d", s.Version)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reset()
	for _, t := range s.Tasks {
		m.putTask(t)
	}
	for _, n := range s.Nodes {
		m.nodes[n.Hostname] = n
	}
	for _, r := range s.Requests {
		m.requests[r.RequestID] = r.TaskIDs
	}
	for _, e := range s.Envs {
		m.envs[e.Name] = e
	}
	m.applied = s.AppliedIndex
	if s.MaxTaskID > m.maxID {
		m.maxID = s.MaxTaskID
	}
	return nil
}
