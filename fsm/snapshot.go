package fsm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// SnapshotVersion is the format version written by Snapshot.Persist.
const SnapshotVersion = 1

// Snapshot is a point-in-time copy of the state. Taking it is cheap (stored
// values are immutable, so only pointers are copied); Write does the I/O and
// may run concurrently with Apply.
type Snapshot struct {
	state snapshotState
	// arch, when the state has an archive, is its header and a read
	// transaction begun with the capture: Write streams the archived
	// tasks from it and Close (or the end of Write) ends it.
	arch    *archiveHeader
	archTx  *bolt.Tx
	archErr error
	// archRaw: the archive's values all have this build's taskShape, so
	// they are streamed as stored.
	archRaw bool
}

// archiveHeader is the "archive" field of a snapshot: the index of the last
// ArchiveTasks entry and the archived tasks' counts by status (the
// "archived" field that follows lists them, by ascending ID).
type archiveHeader struct {
	Index  uint64         `json:"index"`
	Counts map[Status]int `json:"counts"`
}

func (h *archiveHeader) total() int {
	n := 0
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Close ends the snapshot's archive transaction (Write does so too). A
// Snapshot that is not written must be closed: an open read transaction
// keeps the archive from reusing pages.
func (s *Snapshot) Close() {
	if s.archTx != nil {
		s.archTx.Rollback() //nolint:errcheck // a read transaction
		s.archTx = nil
	}
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
	// PartialRequests holds the split submits not yet complete, sorted
	// by request ID; omitted while there are none.
	PartialRequests []partialEntry `json:"partial_requests,omitempty"`
	// Envs is sorted by name; omitted when empty, so states without
	// environments encode exactly as before they existed.
	Envs []Environment `json:"envs,omitempty"`
	// EnvTarballs (sorted by name) and ClusterID are likewise omitted
	// when empty.
	EnvTarballs []EnvTarball `json:"env_tarballs,omitempty"`
	ClusterID   string       `json:"cluster_id,omitempty"`
	// Accounts and Audit are omitted while there are none.
	Accounts *accountsState `json:"accounts,omitempty"`
	Audit    []AuditRecord  `json:"audit,omitempty"`
	// NotifyTargets (sorted by ID) is omitted while there are none.
	NotifyTargets []NotifyTarget `json:"notify_targets,omitempty"`
	// VPSSnapshots is omitted while there are none.
	VPSSnapshots []VPSSnapshot `json:"vps_snapshots,omitempty"`
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
	s.PartialRequests = m.partialEntries()
	s.Envs = m.sortedEnvs()
	s.EnvTarballs = m.sortedTarballs()
	s.ClusterID = m.clusterID
	s.Accounts = m.acct.state()
	s.Audit = m.audit
	s.NotifyTargets = m.sortedNotifyTargets()
	s.VPSSnapshots = m.sortedSnaps()
	snap := &Snapshot{state: s}
	if m.arch != nil && m.archSynced {
		h := &archiveHeader{Index: m.archIndex, Counts: map[Status]int{}}
		for st, n := range m.archCounts {
			if n != 0 {
				h.Counts[st] = n
			}
		}
		if h.Index > 0 || h.total() > 0 {
			snap.arch = h
			snap.archTx, snap.archErr = m.arch.db.Begin(false)
			if snap.archErr == nil {
				meta, err := readMeta(snap.archTx)
				snap.archRaw = err == nil && meta.shape == taskShape()
			}
		}
	}
	return snap
}

// writeArchived streams the archived tasks, ascending by ID, as a JSON list.
func (s *Snapshot) writeArchived(bw *bufio.Writer) error {
	if s.archErr != nil {
		return fmt.Errorf("read the archive: %w", s.archErr)
	}
	if s.archTx == nil {
		return errors.New("the snapshot's archive was closed")
	}
	bw.WriteByte('[')
	c := s.archTx.Bucket(bucketTasks).Cursor()
	n := 0
	var raw bytes.Buffer
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var b []byte
		if s.archRaw {
			raw.Reset()
			if err := inflateArchived(&raw, v); err != nil {
				return fmt.Errorf("read the archive: %w", err)
			}
			b = raw.Bytes()
		} else {
			t, err := decodeArchived(v)
			if err != nil {
				return fmt.Errorf("read the archive: %w", err)
			}
			if b, err = json.Marshal(t); err != nil {
				return err
			}
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		if _, err := bw.Write(b); err != nil {
			return err
		}
		n++
	}
	if n != s.arch.total() {
		return fmt.Errorf("the archive holds %d tasks, its counts say %d", n, s.arch.total())
	}
	dropMapped(s.archTx.DB().Path())
	return bw.WriteByte(']')
}

// Write encodes the snapshot to w, streaming one task at a time so that a
// large state is never held twice in memory. The output is byte-identical
// for equal states on every replica (and equal to encoding the whole state
// with encoding/json).
func (s *Snapshot) Write(w io.Writer) error {
	defer s.Close()
	sort.Slice(s.state.Nodes, func(i, j int) bool { return s.state.Nodes[i].Hostname < s.state.Nodes[j].Hostname })
	sort.Slice(s.state.Requests, func(i, j int) bool { return s.state.Requests[i].RequestID < s.state.Requests[j].RequestID })
	bw := bufio.NewWriterSize(w, 256<<10)
	st := &s.state
	put := func(key string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		bw.WriteString(key)
		_, err = bw.Write(b)
		return err
	}
	err := put(`{"version":`, st.Version)
	if err == nil {
		err = put(`,"applied_index":`, st.AppliedIndex)
	}
	if err == nil {
		err = put(`,"max_task_id":`, st.MaxTaskID)
	}
	if err == nil {
		err = put(`,"nodes":`, st.Nodes)
	}
	if err == nil {
		bw.WriteString(`,"tasks":`)
		if st.Tasks == nil {
			bw.WriteString("null")
		} else {
			bw.WriteByte('[')
			for i, t := range st.Tasks {
				sep := ""
				if i > 0 {
					sep = ","
				}
				if err = put(sep, t); err != nil {
					break
				}
			}
			bw.WriteByte(']')
		}
	}
	if err == nil && s.arch != nil {
		if err = put(`,"archive":`, s.arch); err == nil {
			bw.WriteString(`,"archived":`)
			err = s.writeArchived(bw)
		}
	}
	if err == nil {
		err = put(`,"requests":`, st.Requests)
	}
	if err == nil && len(st.PartialRequests) > 0 {
		err = put(`,"partial_requests":`, st.PartialRequests)
	}
	if err == nil && len(st.Envs) > 0 {
		err = put(`,"envs":`, st.Envs)
	}
	if err == nil && len(st.EnvTarballs) > 0 {
		err = put(`,"env_tarballs":`, st.EnvTarballs)
	}
	if err == nil && st.ClusterID != "" {
		err = put(`,"cluster_id":`, st.ClusterID)
	}
	if err == nil && st.Accounts != nil {
		err = put(`,"accounts":`, st.Accounts)
	}
	if err == nil && len(st.Audit) > 0 {
		err = put(`,"audit":`, st.Audit)
	}
	if err == nil && len(st.NotifyTargets) > 0 {
		err = put(`,"notify_targets":`, st.NotifyTargets)
	}
	if err == nil && len(st.VPSSnapshots) > 0 {
		err = put(`,"vps_snapshots":`, st.VPSSnapshots)
	}
	if err == nil {
		bw.WriteString("}\n")
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// Restore replaces the whole state with a snapshot written by Snapshot.Write.
// It decodes one task at a time into a fresh state and swaps it in at the
// end, so a corrupt snapshot leaves the current state untouched.
func (m *Machine) Restore(r io.Reader) error {
	fresh := New()
	m.mu.RLock()
	ar := &archiveRestore{cur: m.arch}
	m.mu.RUnlock()
	fresh.restoring = ar
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	err := fresh.decodeSnapshot(dec, false)
	if err == nil {
		err = ar.done()
	}
	if err != nil {
		ar.discard()
		return fmt.Errorf("read snapshot: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ar.built != nil {
		if m.arch, err = installArchive(m.arch, ar.built.a); err != nil {
			ar.discard()
			return fmt.Errorf("read snapshot: %w", err)
		}
	}
	m.tasks, m.order, m.nodes, m.requests = fresh.tasks, fresh.order, fresh.nodes, fresh.requests
	m.partial = fresh.partial
	m.counts, m.active, m.retrying, m.envs = fresh.counts, fresh.active, fresh.retrying, fresh.envs
	m.tarballs, m.clusterID = fresh.tarballs, fresh.clusterID
	m.acct, m.audit = fresh.acct, fresh.audit
	m.notifyTargets = fresh.notifyTargets
	m.snaps = fresh.snaps
	m.maxID, m.applied = fresh.maxID, fresh.applied
	if m.arch != nil {
		m.archSynced = true
		m.archCounts, m.archIndex = ar.hdr.Counts, ar.hdr.Index
	}
	m.halt = nil // a snapshot is a consistent state to go on from
	m.rebuildRequestQueue()
	fresh.restoring = nil
	return nil
}

// decodeSnapshot fills an empty machine from the JSON object in dec.
// Strict (a backup file, untrusted): unknown or repeated keys are refused,
// at every level. Otherwise (a Raft snapshot from another replica, maybe
// of a newer version during an upgrade) unknown top-level keys are skipped.
func (m *Machine) decodeSnapshot(dec *json.Decoder, strict bool) error {
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	version := 0
	var maxID int64
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if strict && seen[key] {
			return fmt.Errorf("field %q appears twice", key)
		}
		seen[key] = true
		switch key {
		case "version":
			err = dec.Decode(&version)
		case "applied_index":
			err = dec.Decode(&m.applied)
		case "max_task_id":
			err = dec.Decode(&maxID)
		case "nodes":
			var nodes []*Node
			if err = dec.Decode(&nodes); err == nil {
				for _, n := range nodes {
					if n == nil {
						return fmt.Errorf("null node")
					}
					m.nodes[n.Hostname] = n
				}
			}
		case "tasks":
			if m.restoring != nil && m.restoring.hdr != nil {
				return fmt.Errorf("field %q: after the archive", key)
			}
			err = m.decodeTasks(dec)
		case "archive":
			err = m.decodeArchiveHeader(dec)
		case "archived":
			err = m.decodeArchived(dec)
		case "requests":
			var reqs []requestEntry
			if err = dec.Decode(&reqs); err == nil {
				for _, r := range reqs {
					m.requests[r.RequestID] = r.TaskIDs
				}
			}
		case "partial_requests":
			var ps []partialEntry
			if err = dec.Decode(&ps); err == nil {
				err = m.restorePartial(ps)
			}
		case "envs":
			var envs []Environment
			if err = dec.Decode(&envs); err == nil {
				for _, e := range envs {
					m.envs[e.Name] = e
				}
			}
		case "env_tarballs":
			var tbs []EnvTarball
			if err = dec.Decode(&tbs); err == nil {
				for _, t := range tbs {
					m.tarballs[t.Name] = t.TarballRecord
				}
			}
		case "cluster_id":
			err = dec.Decode(&m.clusterID)
		case "accounts":
			var st accountsState
			if err = dec.Decode(&st); err == nil {
				err = m.acct.restore(&st)
			}
		case "audit":
			err = dec.Decode(&m.audit)
		case "notify_targets":
			var ts []NotifyTarget
			if err = dec.Decode(&ts); err == nil {
				for _, t := range ts {
					m.notifyTargets[t.ID] = t.Since
				}
			}
		case "vps_snapshots":
			var ss []VPSSnapshot
			if err = dec.Decode(&ss); err == nil {
				for _, s := range ss {
					m.snaps[s.Name] = s
				}
			}
		default:
			if strict {
				return fmt.Errorf("unknown field %q", key)
			}
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return fmt.Errorf("field %q: %w", key, err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return err
	}
	if version != SnapshotVersion {
		return fmt.Errorf("unsupported version %d", version)
	}
	if maxID > m.maxID {
		m.maxID = maxID
	}
	return nil
}

func (m *Machine) decodeTasks(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("expected a list of tasks")
	}
	for dec.More() {
		var t Task
		if err := dec.Decode(&t); err != nil {
			return err
		}
		if t.TaskID <= 0 {
			return fmt.Errorf("task without an ID")
		}
		m.internNodeNames(&t)
		m.putTask(&t)
	}
	return expectDelim(dec, ']')
}

// internNodeNames points a restored task's node names at the strings of
// the node records (decoded before the tasks), so that 100,000 tasks do not
// hold 100,000 copies of a few host names.
func (m *Machine) internNodeNames(t *Task) {
	if n, ok := m.nodes[t.AssignedNode]; ok {
		t.AssignedNode = n.Hostname
	}
	for i := range t.Placements {
		if n, ok := m.nodes[t.Placements[i].Node]; ok {
			t.Placements[i].Node = n.Hostname
		}
	}
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, got %v", want, tok)
	}
	return nil
}
