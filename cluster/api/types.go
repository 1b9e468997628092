// Package api holds the wire types of the host REST API and a Go client for
// it that tries every configured replica in turn. It is used by the CLI, the
// runner and the integration tests, and depends on the standard library and
// the fsm wire model only.
package api

import "github.com/hakuriver/hakuriver-ha/fsm"

// LeaderHeader is set on every host answer to the leader's raft ID ("" when
// no leader is known).
const LeaderHeader = "X-Hakuriver-Leader"

// MoreHeader is set to "true" on GET /api/tasks when more matching tasks
// exist beyond the returned page.
const MoreHeader = "X-Hakuriver-More"

// NextAfterHeader carries the value to pass as ?after= for the next page.
const NextAfterHeader = "X-Hakuriver-Next-After"

// QueueLengthHeader carries the whole queue's length on GET
// /api/queue?limit=.
const QueueLengthHeader = "X-Hakuriver-Queue-Length"

// ForwardedHeader marks a request that a follower forwarded to the leader, so
// that it is never forwarded twice.
const ForwardedHeader = "X-Hakuriver-Forwarded"

// TokenHeader carries the cluster token on internal calls.
const TokenHeader = "X-Hakuriver-Token"

// OriginalSubmitFields are the fields of the original HakuRiver's
// TaskRequest, which its clients send (some as null): every one of them is
// accepted, with the original's meaning.
func OriginalSubmitFields() []string {
	return []string{
		"task_type", "command", "arguments", "env_vars", "required_cores", "required_gpus",
		"required_memory_bytes", "targets", "container_name", "privileged", "additional_mounts",
	}
}

// SubmitFields are all the fields POST /api/submit accepts: the original's
// and ours. Any other field, a field given twice or a field spelled with
// other letter cases is rejected with 400 naming it.
func SubmitFields() []string {
	return append(OriginalSubmitFields(),
		"working_dir", "priority", "gpu_count", "array", "time_limit_seconds", "after", "request_id",
		"argument_sets", "name", "notify", "retries", "retry_delay", "retry_on")
}

// SubmitRequest is the body of POST /api/submit (the original TaskRequest
// plus our fields, see SubmitFields). A null is the same as an absent
// field. The host checks it strictly (see CheckTaskPayload and the limits
// in contract.go) before anything reaches the Raft log.
type SubmitRequest struct {
	TaskType            string            `json:"task_type,omitempty"`
	Command             string            `json:"command"`
	Arguments           []string          `json:"arguments,omitempty"`
	EnvVars             map[string]string `json:"env_vars,omitempty"`
	WorkDir             string            `json:"working_dir,omitempty"`
	RequiredCores       *int              `json:"required_cores,omitempty"`
	RequiredGPUs        [][]int           `json:"required_gpus,omitempty"`
	RequiredMemoryBytes *int64            `json:"required_memory_bytes,omitempty"`
	Targets             []string          `json:"targets,omitempty"`
	ContainerName       *string           `json:"container_name,omitempty"`
	Privileged          *bool             `json:"privileged,omitempty"`
	AdditionalMounts    []string          `json:"additional_mounts,omitempty"`
	// Priority orders the queue (higher first); default 0.
	Priority int `json:"priority,omitempty"`
	// GPUCount asks for this many free GPUs on whatever node the scheduler
	// picks (required_gpus names exact IDs on targets instead).
	GPUCount int `json:"gpu_count,omitempty"`
	// Array submits one task per index, as Slurm's --array: "0-99" or
	// "0-99%8" (at most 8 running at once), or "1,3,5".
	Array string `json:"array,omitempty"`
	// TimeLimitSeconds kills a task that runs longer (0 = no limit).
	TimeLimitSeconds int64 `json:"time_limit_seconds,omitempty"`
	// After holds the task pending until these tasks complete; if one ends
	// otherwise, the task fails naming it.
	After []string `json:"after,omitempty"`
	// RequestID makes the submit idempotent: retrying with the same ID (for
	// example through another replica after a failover) returns the tasks
	// created by the first attempt instead of creating new ones.
	RequestID string `json:"request_id,omitempty"`
	// ArgumentSets submits one task per set, each with the command and
	// that set as its arguments (a sweep): task i has array index i.
	// Arguments must then be empty; Array, if given, must list exactly
	// the indexes 0..len-1 (it carries the "%N" throttle).
	ArgumentSets [][]string `json:"argument_sets,omitempty"`
	// Name labels the tasks (fsm.ValidTaskName); commands that take a
	// task ID also take a name that only one task carries.
	Name string `json:"name,omitempty"`
	// Notify is a URL the leader POSTs each task's final status to
	// (signed; see the README's "Notifications"). It must start with a
	// prefix of the hosts' notify.webhook_allow, else the submit is refused (400).
	Notify string `json:"notify,omitempty"`
	// Retries (0..fsm.MaxRetries) starts a task again, under the same ID,
	// up to this many times when an attempt ends in a status RetryOn
	// covers ("exit": failed with a non-zero exit, "lost", "oom"; default
	// exit and lost), each after RetryDelay (a Go duration such as "30s",
	// 0 to 24h).
	Retries    int      `json:"retries,omitempty"`
	RetryDelay string   `json:"retry_delay,omitempty"`
	RetryOn    []string `json:"retry_on,omitempty"`
}

// BatchActionResponse is the answer of POST /api/batch/{id}/{action}.
type BatchActionResponse struct {
	Message string `json:"message"`
	BatchID string `json:"batch_id"`
	// Acted lists the tasks the action was applied to.
	Acted []string `json:"task_ids"`
	// Failed lists the tasks whose action failed, and why.
	Failed []FailedTask `json:"failed,omitempty"`
}

// FailedTask names a task an action failed on and why.
type FailedTask struct {
	TaskID string `json:"task_id"`
	Reason string `json:"reason"`
}

// FailedTarget names a target that could not take a task and why.
type FailedTarget struct {
	Target string `json:"target"`
	Reason string `json:"reason"`
}

// SubmitResponse is the 202 answer of POST /api/submit.
type SubmitResponse struct {
	Message       string         `json:"message"`
	TaskIDs       []string       `json:"task_ids"`
	FailedTargets []FailedTarget `json:"failed_targets,omitempty"`
	// BatchID is the ID of the batch the tasks form (absent for one task).
	BatchID string `json:"batch_id,omitempty"`
}

// MessageResponse is the generic {"message": ...} answer.
type MessageResponse struct {
	Message string `json:"message"`
}

// ErrorResponse is every error answer: {"error": "..."}. Detail repeats the
// message under the original's FastAPI key so old clients print it too.
type ErrorResponse struct {
	Error  string `json:"error"`
	Detail string `json:"detail,omitempty"`
}

// Task is a task as served by the API.
type Task = fsm.Task

// NodeView is a node as served by GET /api/nodes: the committed node plus
// the leader's live figures and derived accounting.
type NodeView struct {
	fsm.Node
	// State is the node's state as sinfo names them (see NodeState):
	// idle, mixed, allocated, drained or offline.
	State            string `json:"state"`
	CoresInUse       int    `json:"cores_in_use"`
	AvailableCores   int    `json:"available_cores"`
	MemoryInUseBytes int64  `json:"memory_in_use_bytes"`
	// GPUsInUse are the IDs of the GPUs held by placed tasks.
	GPUsInUse []int `json:"gpus_in_use,omitempty"`
	// TasksInUse counts the placed, unfinished tasks on the node.
	TasksInUse      int      `json:"tasks_in_use,omitempty"`
	LastHeartbeat   *string  `json:"last_heartbeat"`
	CPUPercent      *float64 `json:"cpu_percent"`
	MemoryPercent   *float64 `json:"memory_percent"`
	MemoryUsedBytes *int64   `json:"memory_used_bytes"`
	CurrentAvgTemp  *float64 `json:"current_avg_temp"`
	CurrentMaxTemp  *float64 `json:"current_max_temp"`
}

// Replica is one member of the Raft configuration in GET /api/cluster.
type Replica struct {
	ID       string `json:"id"`
	API      string `json:"api"`
	Raft     string `json:"raft"`
	Suffrage string `json:"suffrage"`
	// SSHProxy is the replica's SSH proxy address (line protocol and jump
	// host), when gossip knows it.
	SSHProxy string `json:"ssh_proxy,omitempty"`
	// State is "leader", "follower" (alive in gossip) or "unreachable".
	State string `json:"state"`
}

// ClusterStatus is the answer of GET /api/cluster.
type ClusterStatus struct {
	NodeID       string    `json:"node_id"`
	LeaderID     string    `json:"leader_id"`
	LeaderAPI    string    `json:"leader_api"`
	Term         uint64    `json:"term"`
	AppliedIndex uint64    `json:"applied_index"`
	CommitIndex  uint64    `json:"commit_index"`
	LastIndex    uint64    `json:"last_index"`
	State        string    `json:"state"`
	Replicas     []Replica `json:"replicas"`
	// HeartbeatIntervalSeconds is the runner heartbeat period this replica
	// expects (heartbeat_interval).
	HeartbeatIntervalSeconds float64 `json:"heartbeat_interval_seconds,omitempty"`
	// ClusterID names the cluster (chosen once by its first leader); its
	// Docker objects are labelled hakuriver.cluster=<ID>. Empty until then.
	ClusterID string `json:"cluster_id,omitempty"`
}

// JoinRequest is the body of POST /api/cluster/join: add a host replica as a
// voter. API is optional and only informative.
type JoinRequest struct {
	ID   string `json:"id"`
	Raft string `json:"raft"`
	API  string `json:"api,omitempty"`
}

// TransferRequest is the optional body of POST
// /api/cluster/leadership-transfer; an empty ID lets Raft choose.
type TransferRequest struct {
	ID string `json:"id,omitempty"`
}

// QueueEntry is one pending task in GET /api/queue, with why it waits.
type QueueEntry struct {
	TaskID      string `json:"task_id"`
	Priority    int    `json:"priority"`
	Command     string `json:"command"`
	TargetNode  string `json:"target_node,omitempty"`
	Reason      string `json:"reason"`
	SubmittedAt string `json:"submitted_at"`
}

// StateDigest is GET /api/cluster/state-digest: a digest of the asked
// replica's own FSM state (its snapshot encoding, byte-identical for equal
// states on every replica) at one applied index, never forwarded. Replicas
// that applied the same index must answer the same SHA256.
type StateDigest struct {
	NodeID       string `json:"node_id"`
	AppliedIndex uint64 `json:"applied_index"`
	SHA256       string `json:"sha256"`
	Bytes        int64  `json:"bytes"`
}

// ReplicaStatus is one replica's own Raft figures in GET
// /api/cluster/replicas, as the asked replica collected them.
type ReplicaStatus struct {
	ID           string `json:"id"`
	API          string `json:"api,omitempty"`
	Suffrage     string `json:"suffrage,omitempty"`
	State        string `json:"state"`
	Term         uint64 `json:"term,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	CommitIndex  uint64 `json:"commit_index,omitempty"`
	LastIndex    uint64 `json:"last_index,omitempty"`
	// Lag is the highest commit index among the replicas minus this
	// replica's applied index.
	Lag uint64 `json:"lag"`
	// Error says why the replica did not answer (State "unreachable").
	Error string `json:"error,omitempty"`
}

// DrainRequest is the optional body of POST /api/nodes/{name}/drain.
type DrainRequest struct {
	// Reason says why (one line, at most 200 bytes); the dashboard shows
	// it until the node is undrained.
	Reason string `json:"reason,omitempty"`
}

// Node states, as NodeView.State reports them (the dashboard uses the same
// rules).
const (
	NodeStateIdle      = "idle"
	NodeStateMixed     = "mixed"
	NodeStateAllocated = "allocated"
	NodeStateDrained   = "drained"
	NodeStateOffline   = "offline"
)

// NodeState derives a node's state from its view: offline when not online,
// else drained when drained (running work may still finish), else allocated
// when every core is held, mixed when some cores, tasks or GPUs are held,
// else idle.
func NodeState(v *NodeView) string {
	switch {
	case v.Status != fsm.NodeOnline:
		return NodeStateOffline
	case v.Drained:
		return NodeStateDrained
	case v.TotalCores > 0 && v.CoresInUse >= v.TotalCores:
		return NodeStateAllocated
	case v.CoresInUse > 0 || v.TasksInUse > 0 || len(v.GPUsInUse) > 0:
		return NodeStateMixed
	}
	return NodeStateIdle
}
