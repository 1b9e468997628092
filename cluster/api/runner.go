package api

import (
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"
)

// RegisterRequest is the body of POST /api/register (runner → host): the
// original RunnerInfo plus what HA needs.
type RegisterRequest struct {
	Hostname      string                  `json:"hostname"`
	TotalCores    int                     `json:"total_cores"`
	TotalRAMBytes int64                   `json:"total_ram_bytes"`
	RunnerURL     string                  `json:"runner_url"`
	NUMATopology  map[string]fsm.NUMANode `json:"numa_topology"`
	GPUInfo       []fsm.GPUInfo           `json:"gpu_info"`
	// CgroupsLimited is false when the runner cannot write cgroups and runs
	// native tasks without limits.
	CgroupsLimited bool   `json:"cgroups_limited"`
	Version        string `json:"version,omitempty"`
}

// RegisterResponse answers POST /api/register: the original's message
// plus the cluster's ID.
type RegisterResponse struct {
	Message   string `json:"message"`
	ClusterID string `json:"cluster_id,omitempty"`
}

// EnvTarball is what the cluster recorded for the newest tarball of a
// task's environment: a runner loads that version only, and only when the
// file's SHA-256 matches.
type EnvTarball struct {
	Version int64  `json:"version"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size,omitempty"`
}

// KilledTask is a task the runner killed on its own (OOM, time limit).
type KilledTask struct {
	TaskID int64  `json:"task_id"`
	Reason string `json:"reason"`
}

// HeartbeatRequest is the body of PUT /api/heartbeat/{hostname}. Task IDs
// are integers here, as in the original runner payloads.
type HeartbeatRequest struct {
	RunningTasks     []int64       `json:"running_tasks"`
	KilledTasks      []KilledTask  `json:"killed_tasks,omitempty"`
	CPUPercent       *float64      `json:"cpu_percent"`
	MemoryPercent    *float64      `json:"memory_percent"`
	MemoryUsedBytes  *int64        `json:"memory_used_bytes"`
	MemoryTotalBytes *int64        `json:"memory_total_bytes"`
	CurrentAvgTemp   *float64      `json:"current_avg_temp"`
	CurrentMaxTemp   *float64      `json:"current_max_temp"`
	GPUInfo          []fsm.GPUInfo `json:"gpu_info"`
	// Partial is set when the runner could not list every executor's tasks
	// (e.g. Docker briefly unreachable): RunningTasks may then be missing
	// some, and the leader must not declare the missing ones lost.
	Partial bool `json:"partial,omitempty"`
	// Attempts gives, for the listed tasks whose attempt the runner
	// recorded, the attempt it tracks (RunRequest.Attempt). The leader
	// kills a task that runs an attempt other than the committed one (an
	// attempt lost with its runner, which was then retried). Absent from
	// runners older than retries.
	Attempts map[int64]int `json:"attempts,omitempty"`
}

// HeartbeatResponse answers a heartbeat. Kill lists task IDs the runner
// reported running that the cluster considers finished: the runner must
// kill them (invariant 5).
type HeartbeatResponse struct {
	Message string  `json:"message"`
	Kill    []int64 `json:"kill,omitempty"`
}

// UpdateRequest is the body of POST /api/update (runner → host), the
// original TaskStatusUpdate plus ssh_port.
type UpdateRequest struct {
	TaskID      int64      `json:"task_id"`
	Status      string     `json:"status"`
	ExitCode    *int       `json:"exit_code"`
	Message     *string    `json:"message"`
	StartedAt   *time.Time `json:"started_at"`
	CompletedAt *time.Time `json:"completed_at"`
	SSHPort     int        `json:"ssh_port,omitempty"`
	// Usage is what the task consumed, measured by the runner at its end
	// (final statuses only; hostile input: the host checks its ranges).
	Usage *fsm.Usage `json:"usage,omitempty"`
	// Attempt is the attempt of the task the report is about (RunRequest
	// .Attempt); the cluster refuses (409) a report of an attempt that is
	// not the task's current one. 0: a runner older than retries.
	Attempt int `json:"attempt,omitempty"`
}

// MaxUpdateBatch is the most reports one POST /api/updates may carry.
const MaxUpdateBatch = 1000

// UpdatesRequest is the body of POST /api/updates (runner → host): the
// status reports of many tasks, committed in one Raft entry. A task appears
// at most once. A host without the route answers 404 or 405; the runner
// then reports through /api/update one task at a time.
type UpdatesRequest struct {
	Updates []UpdateRequest `json:"updates"`
}

// UpdatesResponse answers POST /api/updates with one result per report, in
// the order of the request.
type UpdatesResponse struct {
	Results []UpdateResult `json:"results"`
}

// UpdateResult is the outcome of one report of a batch: Status is what
// POST /api/update would have answered for it alone (200 applied or
// nothing to do, 404 unknown task, 409 the task is final, 400 a move the
// status rules forbid), Error says why when it is not 200.
type UpdateResult struct {
	TaskID int64  `json:"task_id"`
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}

// RunRequest is the body of the runner's POST /run (host → runner), the
// original TaskInfo. /run is idempotent by task ID.
type RunRequest struct {
	TaskID              int64             `json:"task_id"`
	TaskType            string            `json:"task_type"`
	Command             string            `json:"command"`
	Arguments           []string          `json:"arguments"`
	EnvVars             map[string]string `json:"env_vars"`
	WorkDir             string            `json:"working_dir,omitempty"`
	RequiredCores       int               `json:"required_cores"`
	RequiredGPUs        []int             `json:"required_gpus"`
	RequiredMemoryBytes int64             `json:"required_memory_bytes"`
	TargetNUMANodeID    *int              `json:"target_numa_node_id"`
	StdoutPath          string            `json:"stdout_path"`
	StderrPath          string            `json:"stderr_path"`
	ContainerName       string            `json:"container_name"`
	DockerImageName     string            `json:"docker_image_name"`
	DockerPrivileged    bool              `json:"docker_privileged"`
	DockerMounts        []string          `json:"docker_additional_mounts"`
	BatchID             int64             `json:"batch_id,omitempty"`
	// Attempt is the task's attempt number (0 or 1 for its first; a
	// retried task runs again under the same ID with the next number).
	// The runner runs one attempt of a task at a time and reports it
	// with each status.
	Attempt int `json:"attempt,omitempty"`
	// RunAs is the Unix account the task runs as (fsm.Task.RunAs): a user
	// name or UID[:GID]; "" means the runner's runner_user.
	RunAs string `json:"run_as,omitempty"`
	// AllowRoot (fsm.Task.AllowRoot) lets a task without RunAs run as the
	// runner's own user or a Docker image's user, as before accounts
	// existed; without it such a task runs as runner_user unless that is
	// root, else as nobody (65534:65534). A runner older than this field
	// ignores it and keeps the old behaviour.
	AllowRoot bool `json:"allow_root,omitempty"`
	// ClusterID labels the task's container; EnvTarball is the recorded
	// tarball of its environment (absent when none was recorded).
	ClusterID  string      `json:"cluster_id,omitempty"`
	EnvTarball *EnvTarball `json:"env_tarball,omitempty"`
	// Restart starts a stopped VPS's kept container again (fsm.Task
	// Restarting): the runner never creates a fresh one for it, and
	// answers 410 Gone when the container no longer exists.
	Restart bool `json:"restart,omitempty"`
}

// VPSSnapshotRequest is the body of the runner's POST /vps/snapshot:
// commit VPS TaskID into environment Name, as a version newer than After,
// keeping the newest Keep versions.
type VPSSnapshotRequest struct {
	TaskID    int64  `json:"task_id"`
	Name      string `json:"name"`
	ClusterID string `json:"cluster_id,omitempty"`
	After     int64  `json:"after,omitempty"`
	Keep      int    `json:"keep,omitempty"`
}

// VPSSnapshotResponse is the tarball a VPS snapshot saved.
type VPSSnapshotResponse struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
}

// VPSStateResponse is the runner's answer to POST /vps/state: what it
// holds of a VPS's container (executor.VPSState: absent, stopped, active).
type VPSStateResponse struct {
	TaskID int64  `json:"task_id"`
	State  string `json:"state"`
}

// TaskRef is the body of the runner's POST /kill, /pause and /resume.
type TaskRef struct {
	TaskID   int64  `json:"task_id"`
	UnitName string `json:"unit_name,omitempty"`
}

// NodeHealth is one node in one sample of GET /api/health.
type NodeHealth struct {
	Hostname         string        `json:"hostname"`
	Status           string        `json:"status"`
	LastHeartbeat    *time.Time    `json:"last_heartbeat"`
	CPUPercent       *float64      `json:"cpu_percent"`
	MemoryPercent    *float64      `json:"memory_percent"`
	MemoryUsedBytes  *int64        `json:"memory_used_bytes"`
	MemoryTotalBytes int64         `json:"memory_total_bytes"`
	TotalCores       int           `json:"total_cores"`
	NUMATopology     any           `json:"numa_topology"`
	CurrentAvgTemp   *float64      `json:"current_avg_temp"`
	CurrentMaxTemp   *float64      `json:"current_max_temp"`
	GPUInfo          []fsm.GPUInfo `json:"gpu_info"`
}

// HealthAggregate is the cluster-wide summary of one sample.
type HealthAggregate struct {
	TotalNodes    int       `json:"totalNodes"`
	OnlineNodes   int       `json:"onlineNodes"`
	TotalCores    int       `json:"totalCores"`
	TotalMemBytes int64     `json:"totalMemBytes"`
	UsedMemBytes  int64     `json:"usedMemBytes"`
	AvgCPUPercent float64   `json:"avgCpuPercent"`
	AvgMemPercent float64   `json:"avgMemPercent"`
	MaxAvgCPUTemp float64   `json:"maxAvgCpuTemp"`
	MaxMaxCPUTemp float64   `json:"maxMaxCpuTemp"`
	LastUpdated   time.Time `json:"lastUpdated"`
}

// HealthResponse is GET /api/health: up to 60 one-second samples, oldest
// first, in the original's shape.
type HealthResponse struct {
	Nodes     [][]NodeHealth    `json:"nodes"`
	Aggregate []HealthAggregate `json:"aggregate"`
}
