package fsm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// SnapshotCounts summarises a snapshot for a backup file's header and for
// `hakuriver cluster snapshot inspect`.
type SnapshotCounts struct {
	// Tasks counts the tasks by status; TasksTotal is their sum.
	Tasks        map[Status]int `json:"tasks"`
	TasksTotal   int            `json:"tasks_total"`
	Nodes        int            `json:"nodes"`
	Environments int            `json:"environments"`
	Tarballs     int            `json:"tarballs"`
	Users        int            `json:"users"`
	Groups       int            `json:"groups"`
	Tokens       int            `json:"tokens"`
	AuditRecords int            `json:"audit_records"`
}

// AppliedIndex is the index of the last log entry the snapshot includes.
func (s *Snapshot) AppliedIndex() uint64 { return s.state.AppliedIndex }

// ClusterID is the cluster ID the snapshot holds ("" before one is chosen).
func (s *Snapshot) ClusterID() string { return s.state.ClusterID }

// Counts summarises the snapshot.
func (s *Snapshot) Counts() SnapshotCounts {
	st := &s.state
	c := SnapshotCounts{Tasks: map[Status]int{}, TasksTotal: len(st.Tasks), Nodes: len(st.Nodes),
		Environments: len(st.Envs), Tarballs: len(st.EnvTarballs), AuditRecords: len(st.Audit)}
	for _, t := range st.Tasks {
		c.Tasks[t.Status]++
	}
	if s.arch != nil {
		for status, n := range s.arch.Counts {
			c.Tasks[status] += n
			c.TasksTotal += n
		}
	}
	if a := st.Accounts; a != nil {
		c.Users, c.Groups, c.Tokens = len(a.Users), len(a.Groups), len(a.Tokens)
	}
	return c
}

// ReadSnapshot decodes a snapshot written by Snapshot.Write into a new
// Machine, strictly: after the one JSON object only white space may follow,
// and the format version must be the one this build writes. It is meant for
// untrusted input (a backup file); the decoder holds one task at a time, so
// memory is bounded by the largest single value in r plus the state.
//
// Archived tasks in r go to a temporary archive (in os.TempDir), which the
// returned Machine's Close removes.
func ReadSnapshot(r io.Reader) (*Machine, error) {
	m := New()
	ar := &archiveRestore{temp: true}
	m.restoring = ar
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	err := m.decodeSnapshot(dec, true)
	if err == nil {
		if _, err = dec.Token(); !errors.Is(err, io.EOF) {
			if err == nil {
				err = errors.New("data after the snapshot object")
			}
		} else {
			err = ar.done()
		}
	}
	if err != nil {
		ar.discard()
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	m.restoring = nil
	if ar.built != nil {
		m.arch, m.archTemp, m.archSynced = ar.built.a, ar.tempDir, true
		m.archCounts, m.archIndex = ar.hdr.Counts, ar.hdr.Index
	}
	m.rebuildRequestQueue()
	return m, nil
}
