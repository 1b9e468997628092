package fsm

import (
	"bytes"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// TextScanBytes bounds what Filter.Text looks at in each task: the first
// TextScanBytes bytes of its command line (command and arguments joined by
// spaces), so that a text filter costs at most this much per task however
// large the stored commands are.
const TextScanBytes = 1024

// MaxFilterText is the longest Filter.Text accepted by the API.
const MaxFilterText = 256

// Filter selects tasks in Machine.Tasks. Zero fields match everything.
type Filter struct {
	Status Status
	Node   string
	Batch  int64
	Type   TaskType
	// Owner selects the tasks of one account (Task.Owner).
	Owner string
	// Text selects the tasks whose command line (command and arguments
	// joined by spaces, first TextScanBytes bytes) contains it, case
	// sensitively. A VPS task's command is its SSH public key: it never
	// matches.
	Text string
	// Name selects the tasks of that name (Task.Name).
	Name string
}

// Match reports whether t is selected by f.
func (f Filter) Match(t *Task) bool { return f.match(t, []byte(f.Text)) }

// match is Match with f.Text given as bytes (converted once per listing).
func (f Filter) match(t *Task, text []byte) bool {
	return (f.Status == "" || t.Status == f.Status) &&
		(f.Node == "" || t.AssignedNode == f.Node) &&
		(f.Batch == 0 || t.BatchID == f.Batch) &&
		(f.Type == "" || t.TaskType == f.Type) &&
		(f.Owner == "" || t.Owner == f.Owner) &&
		(f.Name == "" || t.Name == f.Name) &&
		(len(text) == 0 || textMatch(t, text))
}

// textMatch reports whether the first TextScanBytes bytes of t's command
// line contain text. It does not allocate: the line is assembled in a
// fixed buffer on the stack.
func textMatch(t *Task, text []byte) bool {
	if t.TaskType == TaskVPS {
		return false
	}
	var buf [TextScanBytes]byte
	line := buf[:0]
	add := func(s string) {
		n := min(len(s), TextScanBytes-len(line))
		line = append(line, s[:n]...)
	}
	add(t.Command)
	for _, a := range t.Arguments {
		if len(line) >= TextScanBytes {
			break
		}
		add(" ")
		add(a)
	}
	return bytes.Contains(line, text)
}

// dropAfterReads is the number of archived tasks a listing reads beyond
// which it gives their pages back (dropMapped).
const dropAfterReads = 20000

// Task returns the task with the given ID, in memory or archived. The
// returned value must not be modified.
func (m *Machine) Task(id int64) (*Task, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.lookup(id)
}

// Tasks returns up to limit tasks matching f, newest (highest ID) first,
// starting below the ID after (0 = from the newest), archived tasks
// included. more reports whether further matches exist. limit <= 0 means
// no limit. The returned values must not be modified. The archive is read
// in a transaction begun under the same lock as the memory, so the result
// is one state; the scan itself runs without the lock, so a long one
// never holds up Apply.
func (m *Machine) Tasks(f Filter, after int64, limit int) (out []*Task, more bool) {
	text := []byte(f.Text)
	m.mu.RLock()
	end := len(m.order)
	if after > 0 {
		end = sort.Search(len(m.order), func(i int) bool { return m.order[i] >= after })
	}
	for i := end - 1; i >= 0; i-- {
		t := m.tasks[m.order[i]]
		if !f.match(t, text) {
			continue
		}
		out = append(out, t)
		if limit > 0 && len(out) > limit {
			break
		}
	}
	var tx *bolt.Tx
	if m.archiveMayMatch(f) {
		var err error
		if tx, err = m.arch.db.Begin(false); err != nil {
			m.archiveError(err)
			tx = nil
		}
	}
	onErr := m.archErr
	m.mu.RUnlock()
	if tx == nil {
		return mergeDesc(out, nil, limit)
	}
	defer tx.Rollback() //nolint:errcheck // a read transaction
	var arch []*Task
	read := 0
	err := scanArchived(tx, f, after, func(t *Task) bool {
		read++
		if f.match(t, text) {
			arch = append(arch, t)
		}
		return limit <= 0 || len(arch) <= limit
	})
	if read > dropAfterReads {
		dropMapped(tx.DB().Path()) // a long scan: see Snapshot.Write
	}
	if err != nil && onErr != nil {
		onErr(fmt.Errorf("read the archive: %w", err))
	}
	return mergeDesc(out, arch, limit)
}

// Node returns the node with the given hostname.
func (m *Machine) Node(name string) (*Node, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n, ok := m.nodes[name]
	return n, ok
}

// Nodes returns every node sorted by hostname.
func (m *Machine) Nodes() []*Node {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Node, 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out
}

// Counts returns the number of tasks in each status.
func (m *Machine) Counts() map[Status]int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[Status]int, len(m.counts))
	for k, v := range m.counts {
		if v != 0 {
			out[k] = v
		}
	}
	for k, v := range m.archCounts {
		if v != 0 {
			out[k] += v
		}
	}
	return out
}

// Len returns the number of tasks, archived ones included.
func (m *Machine) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := len(m.order)
	for _, c := range m.archCounts {
		n += c
	}
	return n
}

// MemoryTasks returns the number of tasks held in memory (not archived).
func (m *Machine) MemoryTasks() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.order)
}

// MaxTaskID returns the highest task ID ever committed (0 when none). The
// leader's ID generator never issues an ID at or below it.
func (m *Machine) MaxTaskID() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.maxID
}

// AppliedIndex returns the index of the last applied log entry.
func (m *Machine) AppliedIndex() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.applied
}

// RequestTasks returns the task IDs created by the submit with the given
// request ID, if any.
func (m *Machine) RequestTasks(requestID string) ([]int64, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ids, ok := m.requests[requestID]
	return append([]int64(nil), ids...), ok
}

// Active returns every task that is not in a final status, oldest first.
// The returned values must not be modified.
func (m *Machine) Active() []*Task {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Task, len(m.active))
	for i, id := range m.active {
		out[i] = m.tasks[id]
	}
	return out
}
