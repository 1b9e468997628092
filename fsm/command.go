package fsm

import (
	"encoding/json"
	"fmt"
	"time"
)

// CommandType is the one-byte tag at the start of every log entry. Numbers are
// never reused; a retired command keeps its number forever.
type CommandType byte

// Command types. IgnoreUnknownFlag set on a type tells older replicas they may
// skip an entry they do not understand instead of stopping.
const (
	CmdSubmitTasks   CommandType = 1
	CmdUpdateTask    CommandType = 2
	CmdKillTask      CommandType = 3
	CmdRegisterNode  CommandType = 4
	CmdSetNodeStatus CommandType = 5
	CmdAssignTask    CommandType = 6
	CmdSetNodeDrain  CommandType = 7
	// CmdSetEnvironment records where a Docker environment lives (env.go).
	CmdSetEnvironment CommandType = 8
	// CmdSetClusterID names the cluster once (env.go).
	CmdSetClusterID CommandType = 9
	// Account commands (accounts.go).
	CmdBootstrapAuth CommandType = 10
	CmdPutUser       CommandType = 11
	CmdRemoveUser    CommandType = 12
	CmdPutGroup      CommandType = 13
	CmdRemoveGroup   CommandType = 14
	CmdCreateToken   CommandType = 15
	CmdRevokeToken   CommandType = 16
	// CmdAudited wraps another command with its audit record (audit.go).
	CmdAudited CommandType = 17
	// CmdRecord changes nothing: wrapped in Audited, it records an act that
	// is not a state change of the FSM (a Raft membership change).
	CmdRecord CommandType = 18
	// CmdAssignTasks places several tasks in one entry (place.go).
	CmdAssignTasks CommandType = 19
	// CmdSubmitPlaced submits tasks and places them in one entry (place.go).
	CmdSubmitPlaced CommandType = 20
	// CmdUpdateTasks applies several task status reports in one entry
	// (updates.go).
	CmdUpdateTasks CommandType = 21
	// VPS lifecycle (vps.go); 22 is CmdNotifyDelivered (notify.go).
	CmdVPSStop  CommandType = 23
	CmdVPSStart CommandType = 24
	// CmdSetVPSSnapshot records or deletes a VPS snapshot (vpssnap.go).
	CmdSetVPSSnapshot CommandType = 25
	// CmdReportTasks (26, usage.go) is UpdateTasks with accounting;
	// CmdRetryTask (27, retry.go) starts a task's next attempt.
	// CmdArchiveTasks moves finished tasks to the on-disk archive
	// (archive_apply.go).
	CmdArchiveTasks CommandType = 28
	// CmdSubmitPart (29, submitpart.go) is one part of a split submit.

	IgnoreUnknownFlag CommandType = 0x80
)

// String names the command type for logs and metrics.
func (c CommandType) String() string {
	switch c &^ IgnoreUnknownFlag {
	case CmdSubmitTasks:
		return "submit_tasks"
	case CmdUpdateTask:
		return "update_task"
	case CmdKillTask:
		return "kill_task"
	case CmdRegisterNode:
		return "register_node"
	case CmdSetNodeStatus:
		return "set_node_status"
	case CmdAssignTask:
		return "assign_task"
	case CmdSetNodeDrain:
		return "set_node_drain"
	case CmdSetEnvironment:
		return "set_environment"
	case CmdSetClusterID:
		return "set_cluster_id"
	case CmdBootstrapAuth:
		return "bootstrap_auth"
	case CmdPutUser:
		return "put_user"
	case CmdRemoveUser:
		return "remove_user"
	case CmdPutGroup:
		return "put_group"
	case CmdRemoveGroup:
		return "remove_group"
	case CmdCreateToken:
		return "create_token"
	case CmdRevokeToken:
		return "revoke_token"
	case CmdAudited:
		return "audited"
	case CmdRecord:
		return "record"
	case CmdAssignTasks:
		return "assign_tasks"
	case CmdSubmitPlaced:
		return "submit_placed"
	case CmdUpdateTasks:
		return "update_tasks"
	case CmdNotifyDelivered:
		return "notify_delivered"
	case CmdVPSStop:
		return "vps_stop"
	case CmdVPSStart:
		return "vps_start"
	case CmdSetVPSSnapshot:
		return "set_vps_snapshot"
	case CmdReportTasks:
		return "report_tasks"
	case CmdRetryTask:
		return "retry_task"
	case CmdArchiveTasks:
		return "archive_tasks"
	case CmdSubmitPart:
		return "submit_part"
	}
	return fmt.Sprintf("unknown(%d)", byte(c))
}

// Command is implemented by every command payload.
type Command interface {
	// Type returns the command's one-byte tag.
	Type() CommandType
}

// SubmitTasks creates tasks. RequestID, when set, makes the command
// idempotent: a second SubmitTasks with the same RequestID creates nothing and
// returns the IDs of the first. IDs and SubmittedAt are stamped by the leader.
type SubmitTasks struct {
	RequestID string  `json:"request_id,omitempty"`
	Tasks     []*Task `json:"tasks"`
}

// UpdateTask moves a task to a new status, as reported by its runner or
// decided by the leader. Re-applying the same status is a harmless no-op.
type UpdateTask struct {
	TaskID      int64      `json:"task_id,string"`
	Status      Status     `json:"status"`
	ExitCode    *int       `json:"exit_code,omitempty"`
	Message     *string    `json:"message,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	SSHPort     int        `json:"ssh_port,omitempty"`
	At          time.Time  `json:"at"`
	// Usage is the runner's measure of an ended task. Only ReportTasks
	// records it; UpdateTask and UpdateTasks entries ignore it.
	Usage *Usage `json:"usage,omitempty"`
	// Attempt names the attempt the report is about (0: the current one,
	// from a reporter older than retries); a report of another attempt is
	// refused (ErrConflict).
	Attempt int `json:"attempt,omitempty"`
}

// KillTask marks a non-final task killed at the user's request.
type KillTask struct {
	TaskID  int64     `json:"task_id,string"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
	// RequestID, when set, is recorded on the task so that a retry of the
	// same kill (after a leader change) is recognised as already done.
	RequestID string `json:"request_id,omitempty"`
}

// RegisterNode creates or refreshes a runner node and marks it online.
type RegisterNode struct {
	Node *Node     `json:"node"`
	At   time.Time `json:"at"`
}

// SetNodeStatus changes a node's liveness. Going offline turns the node's
// unfinished placed tasks (assigning, running, paused) into lost.
type SetNodeStatus struct {
	Hostname string     `json:"hostname"`
	Status   NodeStatus `json:"status"`
	At       time.Time  `json:"at"`
}

// AssignTask places a pending task on a node and moves it to assigning.
type AssignTask struct {
	TaskID int64     `json:"task_id,string"`
	Node   string    `json:"node"`
	GPUs   []int     `json:"gpus,omitempty"`
	NUMA   *int      `json:"numa,omitempty"`
	At     time.Time `json:"at"`
}

// SetNodeDrain stops (or resumes) new placements on a node.
type SetNodeDrain struct {
	Hostname string `json:"hostname"`
	Drained  bool   `json:"drained"`
	// Reason says why the node is drained (shown by the dashboard);
	// ignored when undraining.
	Reason string `json:"reason,omitempty"`
	// By names the principal who drained the node, and At when; the API
	// handler fills both (Apply reads no clock or request). Absent in
	// entries written before they existed; ignored when undraining.
	By string    `json:"by,omitempty"`
	At time.Time `json:"at,omitzero"`
}

// Type implements Command.
func (*SubmitTasks) Type() CommandType { return CmdSubmitTasks }

// Type implements Command.
func (*UpdateTask) Type() CommandType { return CmdUpdateTask }

// Type implements Command.
func (*KillTask) Type() CommandType { return CmdKillTask }

// Type implements Command.
func (*RegisterNode) Type() CommandType { return CmdRegisterNode }

// Type implements Command.
func (*SetNodeStatus) Type() CommandType { return CmdSetNodeStatus }

// Type implements Command.
func (*AssignTask) Type() CommandType { return CmdAssignTask }

// Type implements Command.
func (*SetNodeDrain) Type() CommandType { return CmdSetNodeDrain }

// Encode serialises a command as its one-byte type followed by JSON.
func Encode(c Command) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", c.Type(), err)
	}
	out := make([]byte, 0, len(body)+1)
	out = append(out, byte(c.Type()))
	return append(out, body...), nil
}

// Decode parses an entry written by Encode. ok is false for an unknown type
// that carries IgnoreUnknownFlag; err is set for anything else it cannot read.
func Decode(data []byte) (c Command, ok bool, err error) {
	if len(data) == 0 {
		return nil, false, fmt.Errorf("decode command: empty entry")
	}
	t := CommandType(data[0])
	base := t &^ IgnoreUnknownFlag
	if base > MaxKnownCommand {
		base = 0 // newer than this build: unknown
	}
	switch base {
	case CmdSubmitTasks:
		c = &SubmitTasks{}
	case CmdUpdateTask:
		c = &UpdateTask{}
	case CmdKillTask:
		c = &KillTask{}
	case CmdRegisterNode:
		c = &RegisterNode{}
	case CmdSetNodeStatus:
		c = &SetNodeStatus{}
	case CmdAssignTask:
		c = &AssignTask{}
	case CmdSetNodeDrain:
		c = &SetNodeDrain{}
	case CmdSetEnvironment:
		c = &SetEnvironment{}
	case CmdSetClusterID:
		c = &SetClusterID{}
	case CmdBootstrapAuth:
		c = &BootstrapAuth{}
	case CmdPutUser:
		c = &PutUser{}
	case CmdRemoveUser:
		c = &RemoveUser{}
	case CmdPutGroup:
		c = &PutGroup{}
	case CmdRemoveGroup:
		c = &RemoveGroup{}
	case CmdCreateToken:
		c = &CreateToken{}
	case CmdRevokeToken:
		c = &RevokeToken{}
	case CmdAudited:
		c = &Audited{}
	case CmdRecord:
		c = &Record{}
	case CmdAssignTasks:
		c = &AssignTasks{}
	case CmdSubmitPlaced:
		c = &SubmitPlaced{}
	case CmdUpdateTasks:
		c = &UpdateTasks{}
	case CmdNotifyDelivered:
		c = &NotifyDelivered{}
	case CmdVPSStop:
		c = &VPSStop{}
	case CmdVPSStart:
		c = &VPSStart{}
	case CmdSetVPSSnapshot:
		c = &SetVPSSnapshot{}
	case CmdReportTasks:
		c = &ReportTasks{}
	case CmdRetryTask:
		c = &RetryTask{}
	case CmdArchiveTasks:
		c = &ArchiveTasks{}
	case CmdSubmitPart:
		c = &SubmitPart{}
	default:
		if t&IgnoreUnknownFlag != 0 {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("decode command: unknown type %d", byte(t))
	}
	if err := json.Unmarshal(data[1:], c); err != nil {
		return nil, false, fmt.Errorf("decode %s: %w", t, err)
	}
	if a, isAudit := c.(*Audited); isAudit {
		// The wrapped command is part of the entry: one that cannot be
		// read makes the whole entry unreadable.
		if a.inner, a.innerOK, err = a.decodeInner(); err != nil {
			return nil, false, fmt.Errorf("decode %s: %w", t, err)
		}
	}
	return c, true, nil
}
