package fsm

import (
	"fmt"
	"sort"
	"time"
)

// CmdSubmitPart submits one part of a submit split over several entries.
const CmdSubmitPart CommandType = 29

// The bounds of one SubmitPart entry. A submit of more than MaxPartTasks
// tasks, or whose tasks encode to more than MaxPartBytes of JSON, is split
// into PartsFor parts of nearly equal size: each carries at most
// MaxPartTasks tasks and, for tasks of similar size, about MaxPartBytes of
// them (about 1 MiB once an audit envelope base64-encodes it). One entry of
// a 10,000-task array took several MiB, fsynced and sent to each follower
// in one piece, and heartbeats starved behind it.
const (
	MaxPartTasks = 1000
	MaxPartBytes = 768 << 10
)

// maxParts and maxPartsTotal bound what a SubmitPart may claim (far above
// what a leader splits: a submit stores at most a few MiB), so that a
// corrupt entry allocates little and PartBounds cannot overflow.
const (
	maxParts      = 1 << 16
	maxPartsTotal = 1 << 30
)

// SubmitPart is part Part (from 0) of the Parts entries a submit of Total
// tasks is split into; its Tasks are those PartBounds names. Parts commit
// in any order, each visible as soon as it commits; RequestID (required)
// ties them together. A part already committed creates nothing and returns
// its tasks' IDs again, so a retry of the request through another leader
// completes the missing parts only. The tasks of every part take the batch
// ID of the first part committed (a retry issues a new one). Once every
// part has committed, the request is remembered as a SubmitTasks' is,
// with the IDs of all its tasks in part order.
type SubmitPart struct {
	RequestID string  `json:"request_id"`
	Part      int     `json:"part"`
	Parts     int     `json:"parts"`
	Total     int     `json:"total"`
	Tasks     []*Task `json:"tasks"`
}

// Type implements Command.
func (*SubmitPart) Type() CommandType { return CmdSubmitPart }

// PartsFor returns the number of parts a submit of n tasks that encode to
// size bytes is split into (1: it is not).
func PartsFor(n, size int) int {
	parts := max((n+MaxPartTasks-1)/MaxPartTasks, (size+MaxPartBytes-1)/MaxPartBytes, 1)
	return min(parts, max(n, 1))
}

// PartBounds returns the tasks [lo, hi) of part i of a submit of n tasks
// split into parts parts. Part sizes differ by one task at most and depend
// on n and parts only, so a retry of the same request splits it the same.
func PartBounds(n, parts, i int) (lo, hi int) {
	return i * n / parts, (i + 1) * n / parts
}

// partSubmit is a split submit not all of whose parts have committed.
type partSubmit struct {
	Parts   int
	Total   int
	BatchID int64
	// At is the submit time of the first part committed: the request is
	// pruned with the others by it.
	At time.Time
	// TaskIDs holds each part's task IDs, nil for a part not committed.
	TaskIDs [][]int64
}

func (m *Machine) applySubmitPart(c *SubmitPart) Result {
	if c.RequestID == "" {
		return Result{Err: fmt.Errorf("%w: submit part without a request ID", ErrInvalid)}
	}
	if c.Parts < 1 || c.Part < 0 || c.Part >= c.Parts || c.Total < c.Parts || c.Parts > maxParts || c.Total > maxPartsTotal {
		return Result{Err: fmt.Errorf("%w: part %d of %d of a submit of %d tasks", ErrInvalid, c.Part, c.Parts, c.Total)}
	}
	lo, hi := PartBounds(c.Total, c.Parts, c.Part)
	if len(c.Tasks) != hi-lo {
		return Result{Err: fmt.Errorf("%w: part %d of %d of a submit of %d tasks holds %d tasks, not %d", ErrInvalid, c.Part, c.Parts, c.Total, len(c.Tasks), hi-lo)}
	}
	if ids, ok := m.requests[c.RequestID]; ok {
		if len(ids) != c.Total {
			return Result{Err: fmt.Errorf("%w: request %s created %d tasks, not %d", ErrConflict, c.RequestID, len(ids), c.Total)}
		}
		return Result{Value: SubmitResult{TaskIDs: append([]int64(nil), ids[lo:hi]...), Duplicate: true}}
	}
	p := m.partial[c.RequestID]
	if p != nil {
		if p.Parts != c.Parts || p.Total != c.Total {
			return Result{Err: fmt.Errorf("%w: request %s is being submitted as %d tasks in %d parts, not %d in %d", ErrConflict, c.RequestID, p.Total, p.Parts, c.Total, c.Parts)}
		}
		if ids := p.TaskIDs[c.Part]; ids != nil {
			return Result{Value: SubmitResult{TaskIDs: append([]int64(nil), ids...), Duplicate: true}}
		}
	}
	if err := m.checkNewTasks(c.Tasks); err != nil {
		return Result{Err: err}
	}
	at := c.Tasks[0].SubmittedAt
	if p == nil {
		p = &partSubmit{Parts: c.Parts, Total: c.Total, BatchID: c.Tasks[0].BatchID, At: at, TaskIDs: make([][]int64, c.Parts)}
		m.partial[c.RequestID] = p
		m.addRequest(requestKey{at: at, id: c.RequestID})
	}
	ids := m.createTasks(c.Tasks, c.RequestID, &p.BatchID)
	p.TaskIDs[c.Part] = ids
	m.completePart(c.RequestID, p)
	m.pruneRequests(at.Add(-RequestRetention))
	return Result{Value: SubmitResult{TaskIDs: append([]int64(nil), ids...)}}
}

// completePart remembers a split request as a whole once all its parts
// have committed. Its pruning time becomes its first task's submit time,
// the one a restored replica derives (rebuildRequestQueue).
func (m *Machine) completePart(id string, p *partSubmit) {
	all := make([]int64, 0, p.Total)
	for _, ids := range p.TaskIDs {
		if ids == nil {
			return
		}
		all = append(all, ids...)
	}
	delete(m.partial, id)
	m.requests[id] = all
	var at time.Time
	if t, ok := m.lookup(all[0]); ok {
		at = t.SubmittedAt
	}
	if !at.Equal(p.At) {
		m.removeRequest(requestKey{at: p.At, id: id})
		m.addRequest(requestKey{at: at, id: id})
	}
}

// RequestParts returns the task IDs of each part of a split submit not yet
// complete (nil for a part not committed), and whether there is one.
func (m *Machine) RequestParts(requestID string) ([][]int64, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p, ok := m.partial[requestID]
	if !ok {
		return nil, false
	}
	out := make([][]int64, len(p.TaskIDs))
	for i, ids := range p.TaskIDs {
		if ids != nil {
			out[i] = append([]int64{}, ids...)
		}
	}
	return out, true
}

// partialEntry is a partSubmit in a snapshot.
type partialEntry struct {
	RequestID string    `json:"request_id"`
	Parts     int       `json:"parts"`
	Total     int       `json:"total"`
	BatchID   int64     `json:"batch_id,omitempty"`
	At        time.Time `json:"at"`
	TaskIDs   [][]int64 `json:"task_ids"`
}

// partialEntries returns the split submits not yet complete, sorted by
// request ID.
func (m *Machine) partialEntries() []partialEntry {
	out := make([]partialEntry, 0, len(m.partial))
	for id, p := range m.partial {
		out = append(out, partialEntry{RequestID: id, Parts: p.Parts, Total: p.Total, BatchID: p.BatchID, At: p.At, TaskIDs: p.TaskIDs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RequestID < out[j].RequestID })
	return out
}

// restorePartial fills m.partial from a snapshot's entries.
func (m *Machine) restorePartial(es []partialEntry) error {
	for _, e := range es {
		if e.RequestID == "" || e.Parts < 1 || len(e.TaskIDs) != e.Parts || e.Total < e.Parts {
			return fmt.Errorf("request %q: %d parts of %d tasks, %d recorded", e.RequestID, e.Parts, e.Total, len(e.TaskIDs))
		}
		m.partial[e.RequestID] = &partSubmit{Parts: e.Parts, Total: e.Total, BatchID: e.BatchID, At: e.At, TaskIDs: e.TaskIDs}
	}
	return nil
}
