package api

import (
	"context"
	"net/http"
)

// SessionRecordPath is the leader's internal endpoint (cluster token) that
// records a finished task access session (a forwarded connection, a file
// copy) in the audit log, for the replica that served it.
const SessionRecordPath = "/api/audit/sessions"

// SessionHeader carries the ID of a `hakuriver forward` session on each
// of its streams: a replica records the streams of one session as one
// audit record.
const SessionHeader = "X-Hakuriver-Session"

// SessionRecord is one finished task access session, as the replica that
// served it saw it: who (an account and its role), what (Action: forward,
// cp-to, cp-from; Target: the task, its port or path, when and for how
// long), through which replica. Never the bytes that went through it.
type SessionRecord struct {
	User   string `json:"user"`
	Role   string `json:"role,omitempty"`
	Action string `json:"action"`
	Target string `json:"target"`
	Via    string `json:"via"`
}

// RecordSession asks the leader at base to record rec (POST
// SessionRecordPath).
func (rc *ReplicaClient) RecordSession(ctx context.Context, base string, rec SessionRecord) error {
	return rc.c.call(ctx, base, http.MethodPost, SessionRecordPath, rec, nil)
}
