package api

import (
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// SummaryCommandBytes bounds the command line a TaskSummary carries: the
// command and its arguments together keep at most this many bytes.
const SummaryCommandBytes = 512

// SummaryErrorBytes bounds TaskSummary.ErrorMessage.
const SummaryErrorBytes = 512

// TaskSummary is one row of GET /api/tasks?view=summary: what a task list
// shows, bounded in size whatever was submitted (no env_vars, the command
// line cut to SummaryCommandBytes). A VPS task's command (its SSH public
// key) is never included.
type TaskSummary struct {
	TaskID    int64        `json:"task_id,string"`
	TaskType  fsm.TaskType `json:"task_type"`
	BatchID   int64        `json:"batch_id,string"`
	Command   string       `json:"command"`
	Arguments []string     `json:"arguments"`
	// Truncated is set when Command or Arguments were cut.
	Truncated      bool       `json:"truncated,omitempty"`
	Status         fsm.Status `json:"status"`
	Owner          string     `json:"owner,omitempty"`
	Name           string     `json:"name,omitempty"`
	AssignedNode   string     `json:"assigned_node"`
	TargetNode     string     `json:"target_node,omitempty"`
	ContainerName  string     `json:"container_name"`
	RequiredCores  int        `json:"required_cores"`
	RequiredMemory int64      `json:"required_memory_bytes"`
	RequiredGPUs   []int      `json:"required_gpus"`
	GPUCount       int        `json:"gpu_count,omitempty"`
	ArrayIndex     *int       `json:"array_index,omitempty"`
	Priority       int        `json:"priority,omitempty"`
	ExitCode       *int       `json:"exit_code"`
	ErrorMessage   string     `json:"error_message"`
	SubmittedAt    time.Time  `json:"submitted_at"`
	StartedAt      *time.Time `json:"started_at"`
	CompletedAt    *time.Time `json:"completed_at"`
	SSHPort        int        `json:"ssh_port,omitempty"`
	// Attempt and Retries are the current attempt and the retries allowed
	// of a task with retries (fsm.Task).
	Attempt int `json:"attempt,omitempty"`
	Retries int `json:"retries,omitempty"`
}

// Summarize returns the summary of t. It shares no mutable memory with t
// beyond strings.
func Summarize(t *fsm.Task) TaskSummary {
	s := TaskSummary{
		TaskID: t.TaskID, TaskType: t.TaskType, BatchID: t.BatchID, Status: t.Status, Owner: t.Owner, Name: t.Name,
		AssignedNode: t.AssignedNode, TargetNode: t.TargetNode, ContainerName: t.ContainerName,
		RequiredCores: t.RequiredCores, RequiredMemory: t.RequiredMemoryBytes,
		RequiredGPUs: append([]int{}, t.RequiredGPUs...), GPUCount: t.GPUCount, Priority: t.Priority,
		ExitCode: t.ExitCode, SubmittedAt: t.SubmittedAt, StartedAt: t.StartedAt, CompletedAt: t.CompletedAt,
		SSHPort: t.SSHPort, Arguments: []string{}, Attempt: t.Attempt, Retries: t.Retries,
	}
	if t.ArrayIndex != nil {
		v := *t.ArrayIndex
		s.ArrayIndex = &v
	}
	s.ErrorMessage = cut(t.ErrorMessage, SummaryErrorBytes)
	if t.TaskType == fsm.TaskVPS {
		return s
	}
	budget := SummaryCommandBytes
	s.Command = cut(t.Command, budget)
	budget -= len(s.Command)
	s.Truncated = len(s.Command) < len(t.Command)
	for _, a := range t.Arguments {
		if budget <= 0 {
			s.Truncated = true
			break
		}
		c := cut(a, budget)
		s.Truncated = s.Truncated || len(c) < len(a)
		s.Arguments = append(s.Arguments, c)
		budget -= len(c) + 1
	}
	return s
}

// cut returns s cut to at most n bytes, on a UTF-8 boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
