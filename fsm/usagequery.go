package fsm

import (
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Usage groupings (UsageQuery.By).
const (
	UsageByTotal = ""
	UsageByUser  = "user"
	UsageByNode  = "node"
	UsageByDay   = "day"
)

// UsageNone is the key of the tasks without an owner (or, by node, without
// a node).
const UsageNone = "(none)"

// UsageQuery selects and groups tasks for Machine.UsageReport.
type UsageQuery struct {
	// By groups the rows: UsageByUser (Task.Owner), UsageByNode
	// (Task.AssignedNode), UsageByDay (UTC day of the task's end) or
	// UsageByTotal (one row).
	By string
	// Since and Until select the tasks whose end (CompletedAt, or Now for
	// one still running) is in [Since, Until); zero means unbounded.
	Since, Until time.Time
	// Owner, when set, counts that account's tasks only.
	Owner string
	// Now is the end of the tasks still running (zero: they are not
	// counted).
	Now time.Time
}

// ValidUsageBy reports whether s is a known grouping.
func ValidUsageBy(s string) bool {
	switch s {
	case UsageByTotal, UsageByUser, UsageByNode, UsageByDay:
		return true
	}
	return false
}

// UsageRow is the accounting of one group of tasks.
type UsageRow struct {
	Key string `json:"key"`
	// Tasks counts them; Completed, Failed (failed, killed_oom and lost),
	// Killed (by a user) and Running (not ended yet) split them.
	Tasks     int `json:"tasks"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Killed    int `json:"killed"`
	Running   int `json:"running"`
	// ElapsedHours sums the tasks' run times; CoreHours and GPUHours
	// weigh each by the cores and GPUs it held; CPUHours is the CPU time
	// its runner measured (user + system).
	ElapsedHours float64 `json:"elapsed_hours"`
	CoreHours    float64 `json:"core_hours"`
	GPUHours     float64 `json:"gpu_hours"`
	CPUHours     float64 `json:"cpu_hours"`
	// MaxPeakMemoryBytes is the largest peak memory of one task.
	MaxPeakMemoryBytes int64 `json:"max_peak_memory_bytes"`
}

// TaskFigures is one task's contribution to a UsageRow.
type TaskFigures struct {
	Elapsed                        time.Duration
	CoreHours, GPUHours, CPUHours  float64
	PeakMemoryBytes                int64
	Completed, Failed, Killed, Run bool
}

// FiguresOf returns task t's accounting figures, a task still running
// counted up to now.
func FiguresOf(t *Task, now time.Time) TaskFigures {
	el := TaskElapsed(t, now)
	h := el.Hours()
	f := TaskFigures{
		Elapsed:   el,
		CoreHours: float64(t.RequiredCores) * h,
		GPUHours:  float64(len(t.RequiredGPUs)) * h,
		CPUHours:  t.Usage.CPUTime().Hours(),
	}
	if t.Usage != nil {
		f.PeakMemoryBytes = t.Usage.PeakMemoryBytes
	}
	addEarlierAttempts(&f, t)
	switch t.Status {
	case StatusCompleted:
		f.Completed = true
	case StatusFailed, StatusKilledOOM, StatusLost:
		f.Failed = true
	case StatusKilled:
		f.Killed = true
	default:
		f.Run = true
	}
	return f
}

// add counts f in r.
func (r *UsageRow) add(f TaskFigures) {
	r.Tasks++
	r.ElapsedHours += f.Elapsed.Hours()
	r.CoreHours += f.CoreHours
	r.GPUHours += f.GPUHours
	r.CPUHours += f.CPUHours
	r.MaxPeakMemoryBytes = max(r.MaxPeakMemoryBytes, f.PeakMemoryBytes)
	switch {
	case f.Completed:
		r.Completed++
	case f.Failed:
		r.Failed++
	case f.Killed:
		r.Killed++
	case f.Run:
		r.Running++
	}
}

// UsageEnd is where task t counts in a usage report: its end, or now
// while it runs. ok is false for a task that does not count: one waiting
// to start, or running while now is zero.
func UsageEnd(t *Task, now time.Time) (end time.Time, ok bool) {
	switch {
	case t.CompletedAt != nil:
		return *t.CompletedAt, true
	case t.StartedAt == nil || now.IsZero():
		return time.Time{}, false
	}
	return now, true
}

// UsageReport sums the tasks q selects, one row per group, sorted by key
// (the total row alone has key "total"), archived tasks included. It reads
// the tasks in memory once under the read lock, then the archive in one
// read transaction; it is linear in the number of tasks.
func (m *Machine) UsageReport(q UsageQuery) ([]UsageRow, error) {
	if !ValidUsageBy(q.By) {
		return nil, fmt.Errorf("%w: usage grouping %q", ErrInvalid, q.By)
	}
	rows := map[string]*UsageRow{}
	days := map[int64]*UsageRow{} // by day: keyed by the day's number, named at the end
	add := func(t *Task) {
		if q.Owner != "" && t.Owner != q.Owner {
			return
		}
		end, ok := UsageEnd(t, q.Now)
		if !ok || !q.Since.IsZero() && end.Before(q.Since) || !q.Until.IsZero() && !end.Before(q.Until) {
			return
		}
		var r *UsageRow
		if q.By == UsageByDay {
			day := end.Unix() / 86400
			if end.Unix() < 0 && end.Unix()%86400 != 0 {
				day-- // floor, for times before 1970
			}
			if r = days[day]; r == nil {
				r = &UsageRow{Key: time.Unix(day*86400, 0).UTC().Format(time.DateOnly)}
				days[day] = r
			}
		} else {
			key := usageKey(q.By, t)
			if r = rows[key]; r == nil {
				r = &UsageRow{Key: key}
				rows[key] = r
			}
		}
		r.add(FiguresOf(t, q.Now))
	}
	m.mu.RLock()
	for _, id := range m.order {
		add(m.tasks[id])
	}
	var tx *bolt.Tx
	if m.arch != nil && m.archSynced && len(m.archCounts) > 0 {
		var err error
		if tx, err = m.arch.db.Begin(false); err != nil {
			m.mu.RUnlock()
			return nil, fmt.Errorf("read the archive: %w", err)
		}
	}
	m.mu.RUnlock()
	if tx != nil {
		defer tx.Rollback() //nolint:errcheck // a read transaction
		read := 0
		err := scanArchived(tx, Filter{Owner: q.Owner}, 0, func(t *Task) bool {
			read++
			add(t)
			return true
		})
		if read > dropAfterReads {
			dropMapped(tx.DB().Path()) // a long scan: see Snapshot.Write
		}
		if err != nil {
			return nil, fmt.Errorf("read the archive: %w", err)
		}
	}
	out := make([]UsageRow, 0, len(rows)+len(days))
	for _, r := range rows {
		out = append(out, *r)
	}
	for _, r := range days {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// usageKey is task t's group under by (not by day).
func usageKey(by string, t *Task) string {
	var k string
	switch by {
	case UsageByUser:
		k = t.Owner
	case UsageByNode:
		k = t.AssignedNode
	default:
		return "total"
	}
	if k == "" {
		return UsageNone
	}
	return k
}
