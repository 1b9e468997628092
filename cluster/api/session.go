package api

import (
	"context"
	"net/http"
)

// SessionRecordPath is the leader's internal endpoint (cluster token) that
// records a task access session (an exec session's start and end, a
// forward, a file copy) in the audit log, for the replica that served it.
const SessionRecordPath = "/api/audit/sessions"

// SessionHeader carries the ID of a `hakuriver forward` session on each
// of its streams: a replica records the streams of one session as one
// audit record.
const SessionHeader = "X-Hakuriver-Session"

// Session actions in the audit log.
const (
	SessionExecStart = "exec_start"
	SessionExecEnd   = "exec_end"
	SessionForward   = "forward"
	SessionCopyTo    = "cp-to"
	SessionCopyFrom  = "cp-from"
)

// SessionRecord is one task access session, as the replica that served it
// saw it: who (an account and its role), what (Action, TaskID and, for a
// forward or a copy, the port or path), when and for how long, through
// which replica. Never the bytes that went through it. The leader writes
// its audit record's target from these fields.
type SessionRecord struct {
	User string `json:"user"`
	Role string `json:"role,omitempty"`
	// Action is one of the Session* actions.
	Action string `json:"action"`
	TaskID int64  `json:"task_id,string"`
	// Target is what in the task a forward or a copy reached: "port N"
	// or "path P" (empty for exec).
	Target string `json:"target,omitempty"`
	// Via is the replica that served the session.
	Via string `json:"via"`
	// At is when the session began (RFC 3339); Seconds how long it lasted
	// (not on exec_start).
	At      string  `json:"at"`
	Seconds float64 `json:"seconds,omitempty"`
	// TTY: an exec session with a terminal.
	TTY bool `json:"tty,omitempty"`
	// Conns is how many connections a forward session carried.
	Conns int `json:"conns,omitempty"`
}

// RecordSession asks the leader at base to record rec (POST
// SessionRecordPath).
func (rc *ReplicaClient) RecordSession(ctx context.Context, base string, rec SessionRecord) error {
	return rc.c.call(ctx, base, http.MethodPost, SessionRecordPath, rec, nil)
}
