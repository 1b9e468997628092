package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// Task access sessions (exec, forward, cp) in the audit log. The replica
// that served a session hands its api.SessionRecord to RecordSession,
// which never blocks the stream; one background recorder per replica
// commits the records in order, on the leader: through Raft here when this
// replica leads, else through the leader's internal route (POST
// api.SessionRecordPath), trying again while there is no leader. A
// forward's many connections are gathered into one record first
// (sessions.go).

// sessionRecordKey carries a session's audit record into audited.
type sessionRecordKey struct{}

// Bounds of recording sessions.
const (
	// sessionRecordBound bounds the attempts to record one session: a
	// leader may have to be elected first.
	sessionRecordBound = 30 * time.Second
	// sessionRecordWait is the pause between attempts.
	sessionRecordWait = 250 * time.Millisecond
	// sessionRecordQueue bounds the records waiting (for a leader, say).
	sessionRecordQueue = 4096
	// maxSessionTarget bounds a record's target (a copy's path).
	maxSessionTarget = maxCopyPath + 256
)

// sessionRecorder hands session records to the leader one after the
// other, in the order the sessions produced them.
type sessionRecorder struct {
	once sync.Once
	q    chan api.SessionRecord
}

// RecordSession records a task access session in the audit log in the
// background. Records go in order through one bounded queue; it never
// blocks the stream (a record that finds the queue full, or that could
// not be made within sessionRecordBound, is logged).
func (h *Host) RecordSession(rec api.SessionRecord) {
	if h.closed.Load() {
		return
	}
	r := &h.sessionAudit
	r.once.Do(func() {
		r.q = make(chan api.SessionRecord, sessionRecordQueue)
		h.goRun(func() { h.recordSessions(r.q) })
	})
	select {
	case r.q <- rec:
	default:
		h.log.Warn("session not recorded in the audit log: too many records waiting", "task_id", rec.TaskID, "user", rec.User, "action", rec.Action)
	}
}

// recordSessions records what comes on q until the replica closes.
func (h *Host) recordSessions(q <-chan api.SessionRecord) {
	for {
		var rec api.SessionRecord
		select {
		case <-h.life.Done():
			return
		case rec = <-q:
		}
		deadline := time.Now().Add(sessionRecordBound)
		var err error
		for {
			err = h.recordSessionOnce(h.life, rec)
			var ae *api.APIError
			if err == nil || h.life.Err() != nil || time.Now().After(deadline) ||
				(errors.As(err, &ae) && ae.StatusCode >= 400 && ae.StatusCode < 500) {
				break // done, closing, out of time, or refused for good
			}
			select {
			case <-h.life.Done():
			case <-time.After(sessionRecordWait):
			}
		}
		if err != nil && h.life.Err() == nil {
			h.log.Warn("a task access session was not recorded in the audit log", "task_id", rec.TaskID, "user", rec.User, "action", rec.Action, "err", err)
		}
	}
}

func (h *Host) recordSessionOnce(ctx context.Context, rec api.SessionRecord) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if h.currentLeader() != nil {
		return h.applySession(ctx, rec)
	}
	lid, base := h.leaderInfo()
	if lid == "" || base == "" || lid == h.cfg.NodeID {
		return ErrNoLeader
	}
	return h.replicas.RecordSession(ctx, base, rec)
}

// handleSessionRecord is the leader's side of RecordSession (cluster
// token only).
func (h *Host) handleSessionRecord(w http.ResponseWriter, r *http.Request) {
	var rec api.SessionRecord
	if err := httpapi.DecodeJSON(r, &rec); err != nil {
		writeError(w, err)
		return
	}
	if err := checkSessionRecord(rec); err != nil {
		writeError(w, badRequest("%v", err))
		return
	}
	if _, known := h.pool.Member(rec.Via); !known {
		rec.Via = h.cfg.NodeID
	}
	ctx, cancel := h.applyCtx(r)
	defer cancel()
	if err := h.applySession(ctx, rec); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.MessageResponse{Message: "recorded"})
}

// checkSessionRecord names the first bad field of rec.
func checkSessionRecord(rec api.SessionRecord) error {
	switch rec.Action {
	case api.SessionExecStart, api.SessionExecEnd, api.SessionForward, api.SessionCopyTo, api.SessionCopyFrom:
	default:
		return fmt.Errorf("action %q: must be %s, %s, %s, %s or %s", rec.Action,
			api.SessionExecStart, api.SessionExecEnd, api.SessionForward, api.SessionCopyTo, api.SessionCopyFrom)
	}
	switch {
	case rec.User == "" || len(rec.User) > 256:
		return fmt.Errorf("user: required, 1 to 256 bytes, got %d", len(rec.User))
	case rec.TaskID <= 0:
		return fmt.Errorf("task_id: want a positive task ID, got %d", rec.TaskID)
	case len(rec.Target) > maxSessionTarget:
		return fmt.Errorf("target: longer than %d bytes", maxSessionTarget)
	case len(rec.Via) > 256 || len(rec.Role) > 64:
		return fmt.Errorf("via, role: too long")
	case rec.Seconds < 0:
		return fmt.Errorf("seconds: must not be negative, got %v", rec.Seconds)
	case rec.Conns < 0:
		return fmt.Errorf("conns: must not be negative, got %d", rec.Conns)
	}
	if _, err := time.Parse(time.RFC3339Nano, rec.At); err != nil {
		return fmt.Errorf("at: want an RFC 3339 time: %v", err)
	}
	return nil
}

// sessionTarget is the audit record's target of rec: the task, what in it
// (a port, a path; a terminal), and how long, with how many connections.
func sessionTarget(rec api.SessionRecord, at time.Time) string {
	target := "task " + strconv.FormatInt(rec.TaskID, 10)
	took := time.Duration(rec.Seconds * float64(time.Second)).Round(time.Millisecond)
	switch rec.Action {
	case api.SessionExecStart, api.SessionExecEnd:
		if rec.TTY {
			target += " (tty)"
		}
		if rec.Action == api.SessionExecEnd {
			target += fmt.Sprintf(" after %.3fs", rec.Seconds)
		}
		return target
	case api.SessionForward:
		return fmt.Sprintf("%s %s, %d connection(s), from %s for %s", target, rec.Target, rec.Conns, at.UTC().Format(time.RFC3339), took)
	default:
		return fmt.Sprintf("%s %s, from %s for %s", target, rec.Target, at.UTC().Format(time.RFC3339), took)
	}
}

// applySession commits rec as an audit record (fsm.Record, audited with
// the session's own user, time and replica). Nothing is kept while a
// replica cannot read audit records yet.
func (h *Host) applySession(ctx context.Context, rec api.SessionRecord) error {
	if err := h.commandKnown(fsm.CmdRecord); err != nil {
		h.log.Info("session not recorded in the audit log: a replica cannot read audit records yet", "task_id", rec.TaskID, "action", rec.Action)
		return nil
	}
	at, err := time.Parse(time.RFC3339Nano, rec.At)
	if err != nil {
		return badRequest("at: %v", err)
	}
	ar := fsm.AuditRecord{At: at, User: rec.User, Role: fsm.Role(rec.Role), Action: rec.Action, Target: sessionTarget(rec, at), Via: rec.Via}
	// The replica records it: the record names the session's user.
	ctx = auth.WithPrincipal(context.WithValue(ctx, sessionRecordKey{}, ar), auth.Principal{Kind: auth.Cluster, Name: "cluster"})
	_, err = h.apply(ctx, &fsm.Record{})
	return err
}
