package cluster

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/cluster/taskstream"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// newExecAPI returns the exec handler over this replica's local state.
func (h *Host) newExecAPI() *httpapi.ExecAPI {
	d := taskstream.Dialer{Token: h.cfg.ClusterToken}
	if h.cfg.TLS != nil {
		d.TLS = h.cfg.TLS.Client()
	}
	return &httpapi.ExecAPI{
		NodeID: h.cfg.NodeID, Tasks: h.machine, Nodes: h.machine,
		Streams: d, Audit: h, Log: h.log.With("component", "exec"),
	}
}

// execSessionKey carries the audit record of an exec session into audited.
type execSessionKey struct{}

// Bounds of recording exec sessions.
const (
	sessionAuditTries = 20
	sessionAuditWait  = 500 * time.Millisecond
	// sessionAuditQueue bounds the records waiting (for a leader, say).
	sessionAuditQueue = 4096
)

// sessionRecorder hands exec session records to the leader one after the
// other, in the order the sessions produced them.
type sessionRecorder struct {
	once sync.Once
	q    chan api.SessionAudit
}

// RecordSession records an exec session in the audit log in the
// background: through Raft on the leader, else by asking the leader
// (POST api.SessionAuditPath), trying again while there is none, a bounded
// number of times. Records go in order through one queue; it never blocks
// the stream (a record that finds the queue full, or that could not be
// made, is logged).
func (h *Host) RecordSession(rec api.SessionAudit) {
	if h.closed.Load() {
		return
	}
	r := &h.execAudit
	r.once.Do(func() {
		r.q = make(chan api.SessionAudit, sessionAuditQueue)
		h.goRun(func() { h.recordSessions(r.q) })
	})
	select {
	case r.q <- rec:
	default:
		h.log.Warn("exec session not recorded in the audit log: too many records waiting", "task_id", rec.TaskID, "user", rec.User, "action", rec.Action)
	}
}

// recordSessions records what comes on q until the replica closes.
func (h *Host) recordSessions(q <-chan api.SessionAudit) {
	for {
		var rec api.SessionAudit
		select {
		case <-h.life.Done():
			return
		case rec = <-q:
		}
		var err error
		for range sessionAuditTries {
			if err = h.recordSessionOnce(h.life, rec); err == nil || h.life.Err() != nil {
				break
			}
			select {
			case <-h.life.Done():
			case <-time.After(sessionAuditWait):
			}
		}
		if err != nil {
			h.log.Warn("could not record an exec session in the audit log", "task_id", rec.TaskID, "user", rec.User, "action", rec.Action, "err", err)
		}
	}
}

func (h *Host) recordSessionOnce(ctx context.Context, rec api.SessionAudit) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if h.currentLeader() != nil {
		return h.applySession(ctx, rec)
	}
	_, base := h.leaderInfo()
	if base == "" {
		return ErrNoLeader
	}
	return h.replicas.RecordExecSession(ctx, base, rec)
}

// handleSessionAudit is the leader's side of RecordSession (cluster token).
func (h *Host) handleSessionAudit(w http.ResponseWriter, r *http.Request) {
	var rec api.SessionAudit
	if err := httpapi.DecodeJSON(r, &rec); err != nil {
		writeError(w, err)
		return
	}
	if err := checkSessionAudit(rec); err != nil {
		writeError(w, badRequest("%v", err))
		return
	}
	if err := h.applySession(r.Context(), rec); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// checkSessionAudit names the first bad field of rec.
func checkSessionAudit(rec api.SessionAudit) error {
	switch {
	case rec.Action != "exec_start" && rec.Action != "exec_end":
		return fmt.Errorf("action: want exec_start or exec_end, got %q", rec.Action)
	case rec.TaskID <= 0:
		return fmt.Errorf("task_id: want a positive task ID, got %d", rec.TaskID)
	case rec.User == "" || len(rec.User) > 256:
		return fmt.Errorf("user: want 1 to 256 bytes, got %d", len(rec.User))
	case len(rec.Via) > 256 || len(rec.Role) > 64:
		return fmt.Errorf("via, role: too long")
	case rec.Seconds < 0:
		return fmt.Errorf("seconds: must not be negative, got %v", rec.Seconds)
	}
	if _, err := time.Parse(time.RFC3339Nano, rec.At); err != nil {
		return fmt.Errorf("at: want an RFC 3339 time: %v", err)
	}
	return nil
}

// applySession commits rec as an audit record (fsm.Record, audited with
// the session's own user, time and replica).
func (h *Host) applySession(ctx context.Context, rec api.SessionAudit) error {
	if err := h.commandKnown(fsm.CmdRecord); err != nil {
		return err
	}
	at, err := time.Parse(time.RFC3339Nano, rec.At)
	if err != nil {
		return badRequest("at: %v", err)
	}
	target := "task " + strconv.FormatInt(rec.TaskID, 10)
	if rec.TTY {
		target += " (tty)"
	}
	if rec.Action == "exec_end" {
		target += fmt.Sprintf(" after %.3fs", rec.Seconds)
	}
	ar := fsm.AuditRecord{At: at, User: rec.User, Role: fsm.Role(rec.Role), Action: rec.Action, Target: target, Via: rec.Via}
	// The replica records it: the record names the session's user.
	ctx = auth.WithPrincipal(context.WithValue(ctx, execSessionKey{}, ar), auth.Principal{Kind: auth.Cluster, Name: "cluster"})
	_, err = h.apply(ctx, &fsm.Record{})
	return err
}
