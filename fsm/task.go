// Package fsm holds HakuRiver's replicated state: nodes and tasks, the typed
// commands that change them, and snapshot/restore. Everything here is pure and
// deterministic: Apply depends only on the entry bytes and the prior state.
// The proposer (the Raft leader) stamps IDs and timestamps into each command.
package fsm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// TaskType is the kind of work a task is.
type TaskType string

// Task types.
const (
	TaskCommand TaskType = "command"
	TaskVPS     TaskType = "vps"
)

// Status is a task's lifecycle state.
type Status string

// Task statuses, in lifecycle order. Completed, Failed, Killed, KilledOOM and
// Lost are final.
const (
	StatusPending   Status = "pending"
	StatusAssigning Status = "assigning"
	StatusRunning   Status = "running"
	StatusPaused    Status = "paused"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusKilled    Status = "killed"
	StatusKilledOOM Status = "killed_oom"
	StatusLost      Status = "lost"
	// StatusStopped is a VPS whose container is stopped but kept on its
	// node (vps.go): not final, holding no resources.
	StatusStopped Status = "stopped"
)

// AllStatuses lists every status of the task lifecycle in order; a VPS
// may also be StatusStopped (vps.go), which Valid accepts too.
func AllStatuses() []Status {
	return []Status{StatusPending, StatusAssigning, StatusRunning, StatusPaused,
		StatusCompleted, StatusFailed, StatusKilled, StatusKilledOOM, StatusLost}
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	if s == StatusStopped {
		return true
	}
	for _, k := range AllStatuses() {
		if s == k {
			return true
		}
	}
	return false
}

// Final reports whether s is a terminal status that never changes again.
func (s Status) Final() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusKilled, StatusKilledOOM, StatusLost:
		return true
	}
	return false
}

// CanMoveTo reports whether a task in status s may move to status t.
// A move to the same status is not a move (callers treat it as a no-op).
func (s Status) CanMoveTo(t Status) bool {
	if s.Final() || !t.Valid() || s == t {
		return false
	}
	switch t {
	case StatusPending:
		return s == StatusAssigning // re-queued after a failed dispatch
	case StatusAssigning:
		return s == StatusPending
	case StatusRunning:
		return s == StatusAssigning || s == StatusPending || s == StatusPaused
	case StatusPaused:
		return s == StatusRunning
	}
	return t.Final()
}

// Task is one unit of work. Values stored in a Machine are never mutated in
// place: every change stores a fresh copy, so readers may keep pointers.
type Task struct {
	TaskID              int64             `json:"task_id,string"`
	TaskType            TaskType          `json:"task_type"`
	BatchID             int64             `json:"batch_id,string"`
	RequestID           string            `json:"request_id,omitempty"`
	Command             string            `json:"command"`
	Arguments           []string          `json:"arguments"`
	EnvVars             map[string]string `json:"env_vars"`
	WorkDir             string            `json:"working_dir,omitempty"`
	RequiredCores       int               `json:"required_cores"`
	RequiredGPUs        []int             `json:"required_gpus"`
	RequiredMemoryBytes int64             `json:"required_memory_bytes"`
	Status              Status            `json:"status"`
	TargetNode          string            `json:"target_node,omitempty"`
	AssignedNode        string            `json:"assigned_node"`
	TargetNUMANodeID    *int              `json:"target_numa_node_id"`
	ContainerName       string            `json:"container_name"`
	Privileged          bool              `json:"privileged"`
	AdditionalMounts    []string          `json:"additional_mounts"`
	StdoutPath          string            `json:"stdout_path"`
	StderrPath          string            `json:"stderr_path"`
	ExitCode            *int              `json:"exit_code"`
	ErrorMessage        string            `json:"error_message"`
	SubmittedAt         time.Time         `json:"submitted_at"`
	StartedAt           *time.Time        `json:"started_at"`
	CompletedAt         *time.Time        `json:"completed_at"`
	SSHPort             int               `json:"ssh_port,omitempty"`
	SystemdUnitName     string            `json:"systemd_unit_name"`
	SuspicionCount      int               `json:"assignment_suspicion_count"`
	// Priority orders the queue: higher first, then submission order.
	Priority int `json:"priority,omitempty"`
	// GPUCount asks the scheduler for this many free GPUs on whatever node
	// it picks (RequiredGPUs names exact IDs instead).
	GPUCount int `json:"gpu_count,omitempty"`
	// ArrayIndex is set on the tasks of an array job; ArrayThrottle caps
	// how many of the batch run at once (0 = no cap).
	ArrayIndex    *int `json:"array_index,omitempty"`
	ArrayThrottle int  `json:"array_throttle,omitempty"`
	// TimeLimitSeconds kills the task once it has run this long (0 = none).
	TimeLimitSeconds int64 `json:"time_limit_seconds,omitempty"`
	// After lists tasks that must complete before this one may start.
	After IDList `json:"after,omitempty"`
	// Owner is the account that submitted the task ("" for a task from
	// before accounts existed or from an anonymous caller).
	Owner string `json:"owner,omitempty"`
	// RunAs is the Unix account the task runs as on its runner: the
	// owner's unix_user when it was submitted (a user name or UID[:GID]);
	// "" means the runner's runner_user.
	RunAs string `json:"run_as,omitempty"`
	// AllowRoot is whether the task may run as root when RunAs is empty:
	// its owner's run_as_root policy when it was submitted, true for an
	// anonymous caller (compatibility mode). Without it the runner runs
	// the task as its runner_user when that is not root, else as nobody
	// (65534:65534), never as its own user or a Docker image's user.
	AllowRoot bool `json:"allow_root,omitempty"`
	// KillRequestID is the request ID of the kill that ended the task.
	KillRequestID string `json:"kill_request_id,omitempty"`
	// Placements is the task's placement history, oldest first, at most
	// MaxPlacements entries (nil until the task is first placed; absent
	// from snapshots written before it existed).
	Placements []Placement `json:"placements,omitempty"`
	// Name is the label given at submit ("" for none): ValidTaskName.
	Name string `json:"name,omitempty"`
	// Notify is the URL the task's final status is POSTed to ("" for
	// none), set at submit when the host's notify.webhook_allow permits it.
	Notify string `json:"notify,omitempty"`
	// Notifications is the delivery state of the task's webhook
	// notifications (NotifyDelivered), oldest first; never written in
	// place.
	Notifications []Notification `json:"notifications,omitempty"`
	// StoppedAt is when a VPS was last stopped (vps.go); Restarting is
	// set while a stopped VPS is being started again on its node.
	StoppedAt  *time.Time `json:"stopped_at,omitempty"`
	Restarting bool       `json:"restarting,omitempty"`
	// Usage is what the task consumed, as its runner measured it at its
	// end (nil: not measured, still running, or from before accounting).
	Usage *Usage `json:"usage,omitempty"`
	// Retries is how many more attempts the task may have after its
	// first (0: none), when an attempt ends in a status RetryOn covers
	// (retry.go). RetryDelayMS is the wait before each retry.
	Retries      int      `json:"retries,omitempty"`
	RetryDelayMS int64    `json:"retry_delay_ms,omitempty"`
	RetryOn      []string `json:"retry_on,omitempty"`
	// Attempt is the current attempt's number, from 1 (0 for a task
	// without retries: its one attempt).
	Attempt int `json:"attempt,omitempty"`
	// Attempts records every ended attempt of a task with retries, oldest
	// first.
	Attempts []Attempt `json:"attempts,omitempty"`
	// NotBefore holds a retried task pending until then.
	NotBefore *time.Time `json:"not_before,omitempty"`
	// NoRetry is set when the task was killed while a retry was due: no
	// further attempt starts.
	NoRetry bool `json:"no_retry,omitempty"`
}

// MaxTaskNameLen bounds a task name.
const MaxTaskNameLen = 64

// ValidTaskName reports whether s may name a task: 1 to MaxTaskNameLen
// characters of letters, digits, '.', '_' and '-', starting with a letter
// or digit and not all digits (so it never reads as a task ID).
func ValidTaskName(s string) bool {
	if s == "" || len(s) > MaxTaskNameLen {
		return false
	}
	digits := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			digits = false
		case (c == '.' || c == '_' || c == '-') && i > 0:
			digits = false
		default:
			return false
		}
	}
	return !digits
}

// IDList is a list of task IDs that JSON renders as decimal strings, like
// every task ID in the API (JavaScript cannot hold 64-bit integers).
type IDList []int64

// MarshalJSON renders the IDs as strings.
func (l IDList) MarshalJSON() ([]byte, error) {
	out := make([]string, len(l))
	for i, id := range l {
		out[i] = strconv.FormatInt(id, 10)
	}
	return json.Marshal(out)
}

// UnmarshalJSON accepts strings or numbers.
func (l *IDList) UnmarshalJSON(b []byte) error {
	var raw []json.Number
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("task ID list: %w", err)
	}
	out := make(IDList, len(raw))
	for i, n := range raw {
		id, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			return fmt.Errorf("task ID list: %q is not a task ID", n)
		}
		out[i] = id
	}
	*l = out
	return nil
}

// clone returns a copy of t that shares no mutable memory with it (its
// placement history, never written in place, is shared).
func (t *Task) clone() *Task {
	c := *t
	c.Arguments = append([]string(nil), t.Arguments...)
	c.RequiredGPUs = append([]int(nil), t.RequiredGPUs...)
	c.AdditionalMounts = append([]string(nil), t.AdditionalMounts...)
	c.After = append(IDList(nil), t.After...)
	// Placements is shared: it is never written in place (addPlacement
	// makes a new array), and most updates do not change it.
	if t.ArrayIndex != nil {
		v := *t.ArrayIndex
		c.ArrayIndex = &v
	}
	if t.EnvVars != nil {
		c.EnvVars = make(map[string]string, len(t.EnvVars))
		for k, v := range t.EnvVars {
			c.EnvVars[k] = v
		}
	}
	if t.TargetNUMANodeID != nil {
		v := *t.TargetNUMANodeID
		c.TargetNUMANodeID = &v
	}
	if t.ExitCode != nil {
		v := *t.ExitCode
		c.ExitCode = &v
	}
	if t.StartedAt != nil {
		v := *t.StartedAt
		c.StartedAt = &v
	}
	if t.CompletedAt != nil {
		v := *t.CompletedAt
		c.CompletedAt = &v
	}
	if t.Usage != nil {
		v := *t.Usage
		c.Usage = &v
	}
	// Attempts and RetryOn are shared like Placements: never written in
	// place.
	if t.NotBefore != nil {
		v := *t.NotBefore
		c.NotBefore = &v
	}
	return &c
}
