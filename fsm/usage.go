package fsm

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Usage is what a task consumed, measured by its runner when it ended
// (Task.Usage): CPU time from its cgroup (cpuacct on cgroup v1, cpu.stat
// on v2; the container's cgroup for a Docker task), its peak memory
// (memory.max_usage_in_bytes on v1, memory.peak on v2) and, for a death
// by a signal, the signal's number. The rest of the accounting record
// (start, end, node, owner, cores, GPUs, exit code) is on the Task.
type Usage struct {
	// CPUUserNs and CPUSystemNs are the CPU time the task's processes
	// spent in user and kernel mode, in nanoseconds.
	CPUUserNs   int64 `json:"cpu_user_ns"`
	CPUSystemNs int64 `json:"cpu_system_ns"`
	// PeakMemoryBytes is the most memory the task held at once (0:
	// unknown).
	PeakMemoryBytes int64 `json:"peak_memory_bytes"`
	// Signal is the signal that ended the task's main process (0: none).
	Signal int `json:"signal,omitempty"`
	// Source says how the figures were measured: "cgroup" (the task's
	// own cgroup) or "rusage" (the runner had no cgroup for it: its
	// processes' resource usage as reaped, peak = the largest one).
	Source string `json:"source,omitempty"`
}

// Bounds on a reported Usage. A runner's report is hostile input: figures
// outside these are refused at the API and ignored by Apply.
const (
	// MaxPeakMemoryBytes is the largest peak memory taken (1 PiB).
	MaxPeakMemoryBytes = int64(1) << 50
	// MaxSignal is the largest signal number (Linux: SIGRTMAX = 64).
	MaxSignal = 64
	// cpuSlack is the CPU time allowed above elapsed × cores, for the
	// clocks of the runner and the task's start and end not agreeing.
	cpuSlack = 2 * time.Second
	// maxUsageSource bounds Usage.Source.
	maxUsageSource = 16
)

// CPUTime is the task's CPU time, user plus system.
func (u *Usage) CPUTime() time.Duration {
	if u == nil {
		return 0
	}
	return time.Duration(u.CPUUserNs + u.CPUSystemNs)
}

// Check validates u as reported for a task that ran for elapsed on a
// node with cores CPUs (cores ≤ 0: unknown, the CPU bound is not
// applied). The error names the bad field, prefixed with field.
func (u *Usage) Check(field string, elapsed time.Duration, cores int) error {
	switch {
	case u.CPUUserNs < 0:
		return fmt.Errorf("%w: %s.cpu_user_ns %d: must not be negative", ErrInvalid, field, u.CPUUserNs)
	case u.CPUSystemNs < 0:
		return fmt.Errorf("%w: %s.cpu_system_ns %d: must not be negative", ErrInvalid, field, u.CPUSystemNs)
	case u.CPUUserNs > math.MaxInt64-u.CPUSystemNs:
		return fmt.Errorf("%w: %s.cpu_user_ns: CPU time overflows", ErrInvalid, field)
	case u.PeakMemoryBytes < 0 || u.PeakMemoryBytes > MaxPeakMemoryBytes:
		return fmt.Errorf("%w: %s.peak_memory_bytes %d: must be between 0 and %d", ErrInvalid, field, u.PeakMemoryBytes, MaxPeakMemoryBytes)
	case u.Signal < 0 || u.Signal > MaxSignal:
		return fmt.Errorf("%w: %s.signal %d: must be between 0 and %d", ErrInvalid, field, u.Signal, MaxSignal)
	case len(u.Source) > maxUsageSource:
		return fmt.Errorf("%w: %s.source: longer than %d bytes", ErrInvalid, field, maxUsageSource)
	}
	if cores > 0 && elapsed >= 0 {
		// More CPU time than every core of the node for the whole run is
		// impossible.
		limit := float64(elapsed+cpuSlack) * float64(cores)
		if float64(u.CPUTime()) > limit {
			return fmt.Errorf("%w: %s.cpu_user_ns+cpu_system_ns: %s of CPU time in %s on %d cores is impossible",
				ErrInvalid, field, u.CPUTime(), elapsed, cores)
		}
	}
	return nil
}

// CmdReportTasks applies runner reports that may carry Usage (usage.go).
const CmdReportTasks CommandType = 26

// ReportTasks is UpdateTasks with accounting: each report is applied as
// an UpdateTask, and its Usage, when valid, is recorded on a task that
// ends with it or has already ended without one (a task killed by its
// user first: the runner's report of the end then brings the figures).
// Plain UpdateTask and UpdateTasks entries never record Usage, so that a
// replica that does not know this command (which the leader then does
// not propose) holds the same state as one that does.
type ReportTasks struct {
	Updates []UpdateTask `json:"updates"`
}

// Type implements Command.
func (*ReportTasks) Type() CommandType { return CmdReportTasks }

func (m *Machine) applyReportTasks(c *ReportTasks) Result {
	out := make(UpdateResults, len(c.Updates))
	for i := range c.Updates {
		out[i] = m.applyReport(&c.Updates[i])
	}
	return Result{Value: out}
}

// applyReport applies one report of a ReportTasks.
func (m *Machine) applyReport(u *UpdateTask) error {
	err := m.applyUpdate(u).Err
	if u.Usage == nil || err != nil && !errors.Is(err, ErrConflict) {
		return err // no figures, or a report to refuse whole
	}
	t, ok := m.tasks[u.TaskID]
	if !ok || !t.Status.Final() || t.Usage != nil || t.StartedAt == nil {
		return err
	}
	if m.checkUsage(t, u.Usage) != nil {
		return err
	}
	nt := t.clone()
	v := *u.Usage
	nt.Usage = &v
	m.putTask(nt)
	return nil
}

// checkUsage validates a reported Usage against the task's run and its
// node (the same check as the API's, so a forged entry cannot record
// what the API would refuse).
func (m *Machine) checkUsage(t *Task, u *Usage) error {
	cores := 0
	if n, ok := m.nodes[t.AssignedNode]; ok {
		cores = n.TotalCores
	}
	return u.Check("usage", TaskElapsed(t, time.Time{}), cores)
}

// TaskElapsed is how long t ran: from its start to its end, or to now for
// a task still running (zero now: not counted). A task that never started
// ran for 0.
func TaskElapsed(t *Task, now time.Time) time.Duration {
	if t.StartedAt == nil {
		return 0
	}
	end := now
	if t.CompletedAt != nil {
		end = *t.CompletedAt
	}
	if end.IsZero() || end.Before(*t.StartedAt) {
		return 0
	}
	return end.Sub(*t.StartedAt)
}
