package fsm

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// CmdRetryTask starts the next attempt of a task whose attempt ended in a
// status its retry policy covers (RetryTask).
const CmdRetryTask CommandType = 27

// MaxRetries bounds a task's retry count.
const MaxRetries = 100

// MaxRetryDelay bounds the delay before a retry.
const MaxRetryDelay = 24 * time.Hour

// Retry conditions: the final statuses that may start another attempt.
const (
	// RetryOnExit retries an attempt that ran and exited non-zero (failed).
	RetryOnExit = "exit"
	// RetryOnLost retries an attempt whose runner lost it (lost).
	RetryOnLost = "lost"
	// RetryOnOOM retries an attempt killed for exceeding its memory limit
	// (killed_oom).
	RetryOnOOM = "oom"
)

// DefaultRetryOn is the retry condition when a submit names none.
func DefaultRetryOn() []string { return []string{RetryOnExit, RetryOnLost} }

// NormalizeRetryOn checks, deduplicates and orders retry conditions (the
// order of RetryOnExit, RetryOnLost, RetryOnOOM). It returns an error naming
// the first unknown one.
func NormalizeRetryOn(in []string) ([]string, error) {
	seen := map[string]bool{}
	for _, s := range in {
		switch s {
		case RetryOnExit, RetryOnLost, RetryOnOOM:
			seen[s] = true
		default:
			return nil, fmt.Errorf("%q is not a retry condition (want exit, lost or oom)", s)
		}
	}
	var out []string
	for _, s := range []string{RetryOnExit, RetryOnLost, RetryOnOOM} {
		if seen[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

// Attempt is the record of one ended attempt of a task with retries.
type Attempt struct {
	Attempt     int        `json:"attempt"`
	Status      Status     `json:"status"`
	ExitCode    *int       `json:"exit_code,omitempty"`
	Node        string     `json:"node,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	Message     string     `json:"message,omitempty"`
	// Usage is what the attempt consumed, when its runner measured it.
	Usage *Usage `json:"usage,omitempty"`
}

// RetryTask ends attempt Attempt of a task and queues the next one, to be
// placed no earlier than NotBefore (the leader's clock plus the task's
// retry delay). It acts only while the task is still final at that attempt
// with a retry left (Task.RetryPending): a duplicate, or one proposed again
// by a new leader, changes nothing.
type RetryTask struct {
	TaskID    int64     `json:"task_id,string"`
	Attempt   int       `json:"attempt"`
	NotBefore time.Time `json:"not_before"`
}

// Type implements Command.
func (*RetryTask) Type() CommandType { return CmdRetryTask }

// CurrentAttempt is the number of the task's current (or last) attempt,
// counted from 1.
func (t *Task) CurrentAttempt() int { return max(1, t.Attempt) }

// retriesOn reports whether the task's retry policy covers status s.
func (t *Task) retriesOn(s Status) bool {
	want := ""
	switch s {
	case StatusFailed:
		if t.StartedAt == nil {
			return false // never ran (a failed dependency, a rejected start)
		}
		want = RetryOnExit
	case StatusLost:
		want = RetryOnLost
	case StatusKilledOOM:
		want = RetryOnOOM
	default:
		return false
	}
	for _, c := range t.RetryOn {
		if c == want {
			return true
		}
	}
	return false
}

// RetryPending reports whether the task's last attempt ended in a status
// its retry policy covers and it has a retry left: the leader will start
// another attempt, so the task is not really done. Waiters and dependants
// treat it as unfinished.
func (t *Task) RetryPending() bool {
	return t.Retries > 0 && !t.NoRetry && t.Status.Final() &&
		t.CurrentAttempt() <= t.Retries && t.retriesOn(t.Status)
}

// Done reports whether the task reached a final status that no retry will
// follow.
func (t *Task) Done() bool { return t.Status.Final() && !t.RetryPending() }

// attemptRecord is the record of the attempt t just ended.
func (t *Task) attemptRecord() Attempt {
	a := Attempt{Attempt: t.CurrentAttempt(), Status: t.Status, Node: t.AssignedNode, Message: t.ErrorMessage}
	if t.ExitCode != nil {
		v := *t.ExitCode
		a.ExitCode = &v
	}
	if t.StartedAt != nil {
		v := *t.StartedAt
		a.StartedAt = &v
	}
	if t.CompletedAt != nil {
		v := *t.CompletedAt
		a.CompletedAt = &v
	}
	return a
}

// noteAttemptEnd appends t's attempt record when t (with retries) has just
// reached a final status from old (nil for a new task).
func noteAttemptEnd(old, t *Task) {
	if t.Retries == 0 || !t.Status.Final() || old == nil || old.Status.Final() {
		return
	}
	t.Attempts = append(append([]Attempt(nil), old.Attempts...), t.attemptRecord())
}

func (m *Machine) applyRetry(c *RetryTask) Result {
	old, ok := m.tasks[c.TaskID]
	if !ok {
		return Result{Err: fmt.Errorf("%w: task %d", ErrNotFound, c.TaskID)}
	}
	if old.CurrentAttempt() != c.Attempt || !old.RetryPending() {
		return Result{Value: old} // done already (a duplicate), killed, or no retry left
	}
	t := old.clone()
	if old.Usage != nil && len(old.Attempts) > 0 {
		// The ended attempt's figures go with its record; the next
		// attempt's are recorded on the task when it ends.
		a := append([]Attempt(nil), old.Attempts...)
		u := *old.Usage
		a[len(a)-1].Usage = &u
		t.Attempts = a
	}
	t.Usage = nil
	t.Attempt = c.Attempt + 1
	t.Status = StatusPending
	t.AssignedNode = ""
	t.ExitCode = nil
	t.ErrorMessage = ""
	t.StartedAt = nil
	t.CompletedAt = nil
	t.SSHPort = 0
	t.SuspicionCount = 0
	nb := c.NotBefore
	t.NotBefore = &nb
	m.putTask(t)
	return Result{Value: t}
}

// checkAttempt refuses a report of an attempt other than the task's
// current one (0: a report that names no attempt, from a runner older
// than retries, taken as the current one).
func checkAttempt(t *Task, attempt int) error {
	if attempt == 0 || attempt == t.CurrentAttempt() {
		return nil
	}
	return fmt.Errorf("%w: task %d: report of attempt %d, the task is at attempt %d", ErrConflict, t.TaskID, attempt, t.CurrentAttempt())
}

// setRetrying keeps m.retrying (the IDs of tasks with RetryPending, sorted)
// up to date for t.
func (m *Machine) setRetrying(t *Task) {
	m.retrying = setActive(m.retrying, t.TaskID, t.RetryPending())
}

// RetryPending returns the tasks whose attempt ended in a status their
// retry policy covers, with a retry left: the leader proposes a RetryTask
// for each.
func (m *Machine) RetryPending() []*Task {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Task, 0, len(m.retrying))
	for _, id := range m.retrying {
		out = append(out, m.tasks[id])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID < out[j].TaskID })
	return out
}

// RetryLabel describes a task's retry state for people: "" for a task
// without retries, else "attempt 2/3", "retry 2/3 at <time>" while it waits
// for its delay, or "retry 2/3 pending" between an attempt's end and the
// next.
func (t *Task) RetryLabel() string {
	if t.Retries == 0 {
		return ""
	}
	total := t.Retries + 1
	switch {
	case t.RetryPending():
		return fmt.Sprintf("retry %d/%d pending", t.CurrentAttempt()+1, total)
	case t.Status == StatusPending && t.NotBefore != nil && t.CurrentAttempt() > 1:
		return fmt.Sprintf("retry %d/%d at %s", t.CurrentAttempt(), total, t.NotBefore.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("attempt %d/%d", t.CurrentAttempt(), total)
}

// RetryOnString renders retry conditions as a comma list.
func RetryOnString(on []string) string { return strings.Join(on, ",") }

// addEarlierAttempts adds to f the figures of t's attempts before its
// current one (a retried task): their run time, at the task's cores and
// GPUs, and the CPU time and peak memory their runners measured.
func addEarlierAttempts(f *TaskFigures, t *Task) {
	for _, a := range t.Attempts {
		if a.Attempt >= t.CurrentAttempt() {
			continue
		}
		if a.StartedAt != nil && a.CompletedAt != nil && a.CompletedAt.After(*a.StartedAt) {
			el := a.CompletedAt.Sub(*a.StartedAt)
			f.Elapsed += el
			f.CoreHours += float64(t.RequiredCores) * el.Hours()
			f.GPUHours += float64(len(t.RequiredGPUs)) * el.Hours()
		}
		if a.Usage != nil {
			f.CPUHours += a.Usage.CPUTime().Hours()
			f.PeakMemoryBytes = max(f.PeakMemoryBytes, a.Usage.PeakMemoryBytes)
		}
	}
}
