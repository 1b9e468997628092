package fsm

import (
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ArchiveTasks moves finished tasks out of memory into the Machine's
// on-disk Archive. The leader decides which (its retention rule, applied to
// its clock) and names them: every replica moves exactly the listed tasks
// that it holds in memory in a final status, and skips the others (already
// archived, unknown, still running), so the entry means the same
// everywhere. Re-applying it moves nothing twice. A replica whose archive
// cannot be written stops (ErrHalted), as for an entry it cannot read.
type ArchiveTasks struct {
	TaskIDs IDList `json:"task_ids"`
	// At is the leader's time of the decision (for the record only).
	At time.Time `json:"at"`
}

// Type implements Command.
func (*ArchiveTasks) Type() CommandType { return CmdArchiveTasks }

// ArchiveResult is the Value of an applied ArchiveTasks.
type ArchiveResult struct {
	// Moved counts the tasks moved to the archive by this entry.
	Moved int
}

// MaxArchiveBatch bounds the task IDs of one ArchiveTasks entry, so that
// applying one stays short.
const MaxArchiveBatch = 5000

// NewWithArchive returns an empty Machine that keeps archived tasks in a.
// The archive's content counts only once the Machine is in step with it:
// Restore (from a Raft snapshot) makes it hold exactly the snapshot's
// archived tasks; an Apply before any Restore empties it first, since the
// log is then replayed from its start.
func NewWithArchive(a *Archive) *Machine {
	m := New()
	m.arch = a
	return m
}

// Close closes the Machine's archive (and removes it when it was a
// temporary one of ReadSnapshot). The Machine must not be used afterwards.
func (m *Machine) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closeArchive()
}

// SetArchiveErrorHandler sets a function told of archive read errors
// (Task and Tasks then answer as if the archive lacked the task).
func (m *Machine) SetArchiveErrorHandler(f func(error)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.archErr = f
}

// ArchiveStats says what the archive holds: its tasks, the index of the
// last ArchiveTasks entry applied and the file's size.
type ArchiveStats struct {
	Tasks int
	Index uint64
	Bytes int64
	Path  string
}

// ArchiveStats reports the archive (zero without one).
func (m *Machine) ArchiveStats() ArchiveStats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.arch == nil {
		return ArchiveStats{}
	}
	n := 0
	for _, c := range m.archCounts {
		n += c
	}
	return ArchiveStats{Tasks: n, Index: m.archIndex, Bytes: m.arch.Size(), Path: m.arch.path}
}

// ArchiveCandidates returns the IDs (ascending, at most limit) of the
// finished tasks in memory that a retention rule sends to the archive:
// those that completed before cutoff (zero: no age rule), and the oldest
// beyond the newest keep finished tasks in memory (keep < 0: no count
// rule). Only the leader calls it, to build an ArchiveTasks.
func (m *Machine) ArchiveCandidates(cutoff time.Time, keep, limit int) []int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.arch == nil {
		return nil
	}
	finished := len(m.order) - len(m.active)
	excess := 0
	if keep >= 0 && finished > keep {
		excess = finished - keep
	}
	var out []int64
	seen := 0
	for _, id := range m.order {
		if len(out) >= limit {
			break
		}
		t := m.tasks[id]
		if !t.Status.Final() || t.RetryPending() {
			continue // a task with an attempt to come is not history yet
		}
		seen++
		old := !cutoff.IsZero() && t.CompletedAt != nil && t.CompletedAt.Before(cutoff)
		if seen <= excess || old {
			out = append(out, id)
		}
	}
	return out
}

// syncArchive empties the archive when the Machine applies its first entry
// without a Restore before: the log is replayed from its start, and its
// ArchiveTasks entries fill the archive again.
func (m *Machine) syncArchive() error {
	if m.arch == nil || m.archSynced {
		return nil
	}
	meta, err := m.arch.meta()
	if err != nil {
		return err
	}
	if meta.index != 0 || meta.total() != 0 {
		b, err := newArchiveBuilder(restorePath(m.arch.path))
		if err != nil {
			return err
		}
		if err := b.finish(0); err != nil {
			b.discard()
			return err
		}
		if m.arch, err = installArchive(m.arch, b.a); err != nil {
			b.discard()
			return err
		}
	}
	m.archSynced = true
	m.archCounts = map[Status]int{}
	m.archIndex = 0
	return nil
}

func (m *Machine) applyArchive(index uint64, c *ArchiveTasks) Result {
	if m.arch == nil {
		return Result{Err: fmt.Errorf("%w: this replica has no archive", ErrInvalid)}
	}
	if len(c.TaskIDs) > MaxArchiveBatch {
		return Result{Err: fmt.Errorf("%w: %d tasks to archive, at most %d per entry", ErrInvalid, len(c.TaskIDs), MaxArchiveBatch)}
	}
	seen := make(map[int64]bool, len(c.TaskIDs))
	var move []*Task
	for _, id := range c.TaskIDs {
		t, ok := m.tasks[id]
		if !ok || seen[id] || !t.Status.Final() || t.RetryPending() {
			continue // unknown, repeated, or not history yet
		}
		seen[id] = true
		move = append(move, t)
	}
	if err := m.arch.add(index, move); err != nil {
		m.halt = &EntryError{Index: index, Type: CmdArchiveTasks, Err: fmt.Errorf("write the archive: %w", err)}
		return Result{Err: m.halt}
	}
	for _, t := range move {
		delete(m.tasks, t.TaskID)
		m.counts[t.Status]--
		m.archCounts[t.Status]++
	}
	if len(move) > 0 {
		m.order = slices.DeleteFunc(m.order, func(id int64) bool { return seen[id] })
	}
	m.archIndex = index
	return Result{Value: ArchiveResult{Moved: len(move)}}
}

// archived reads an archived task under m.mu.
func (m *Machine) archived(id int64) (*Task, bool) {
	if m.arch == nil || !m.archSynced {
		return nil, false
	}
	var t *Task
	var ok bool
	err := m.arch.db.View(func(tx *bolt.Tx) error {
		var err error
		t, ok, err = getArchived(tx, id)
		return err
	})
	if err != nil {
		m.archiveError(err)
		return nil, false
	}
	return t, ok
}

func (m *Machine) archiveError(err error) {
	if m.archErr != nil {
		m.archErr(fmt.Errorf("read the archive: %w", err))
	}
}

// lookup finds a task in memory or in the archive, under m.mu.
func (m *Machine) lookup(id int64) (*Task, bool) {
	if t, ok := m.tasks[id]; ok {
		return t, true
	}
	return m.archived(id)
}

// archiveMayMatch reports whether an archive scan can find tasks for f.
func (m *Machine) archiveMayMatch(f Filter) bool {
	if m.arch == nil || !m.archSynced {
		return false
	}
	if f.Status != "" {
		return m.archCounts[f.Status] > 0
	}
	for _, c := range m.archCounts {
		if c > 0 {
			return true
		}
	}
	return false
}

func (m *Machine) closeArchive() error {
	if m.arch == nil {
		return nil
	}
	err := m.arch.Close()
	if m.archTemp != "" {
		removeTemp(m.archTemp)
		m.archTemp = ""
	}
	m.arch = nil
	return err
}

// mergeDesc merges two lists of tasks sorted by descending ID into at most
// limit (<= 0: all) tasks; more reports whether any was left out.
func mergeDesc(a, b []*Task, limit int) (out []*Task, more bool) {
	if len(b) == 0 {
		if limit > 0 && len(a) > limit {
			return a[:limit], true
		}
		return a, false
	}
	out = make([]*Task, 0, min(len(a)+len(b), max(limit, 0)+1))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var t *Task
		switch {
		case j >= len(b) || i < len(a) && a[i].TaskID > b[j].TaskID:
			t = a[i]
			i++
		case i >= len(a) || b[j].TaskID > a[i].TaskID:
			t = b[j]
			j++
		default: // the same task in both (never expected): once
			t = a[i]
			i++
			j++
		}
		if limit > 0 && len(out) == limit {
			return out, true
		}
		out = append(out, t)
	}
	return out, false
}

// CopyArchiveTo writes a copy of the archive, as the state holds it, to a
// new file at path (nothing without an archive).
func (m *Machine) CopyArchiveTo(path string) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.arch == nil || !m.archSynced {
		return nil
	}
	if err := m.arch.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) }); err != nil {
		return fmt.Errorf("copy the archive to %s: %w", path, err)
	}
	return nil
}
