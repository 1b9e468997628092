package cluster

import (
	"context"
	"net/http"
	"strconv"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// origin is where a write entered the cluster: the replica that first
// received it and the request ID it carries. onLeader puts it in the
// request's context on the leader.
type origin struct {
	via, requestID string
}

type originKey struct{}

// withOrigin returns r carrying its origin: the replica that forwarded it
// (X-Hakuriver-Forwarded) or this one.
func (h *Host) withOrigin(r *http.Request) *http.Request {
	via := r.Header.Get(api.ForwardedHeader)
	if _, known := h.pool.Member(via); via == "" || !known {
		// Not forwarded, or the header names no member: a caller may set
		// it, so only a replica in gossip is believed.
		via = h.cfg.NodeID
	}
	o := origin{via: via, requestID: r.Header.Get(requestIDHeader)}
	return r.WithContext(context.WithValue(r.Context(), originKey{}, o))
}

// audited wraps c with its audit record when a person (an account or an
// anonymous caller) asked for it, or when the cluster token bootstrapped
// the accounts. Runner reports and the leader's own decisions are not
// audited. One log entry carries both the change and its record.
func (h *Host) audited(ctx context.Context, c fsm.Command) (fsm.Command, error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return c, nil
	}
	if p.Kind == auth.Cluster {
		switch c.(type) {
		case *fsm.BootstrapAuth, *fsm.Record:
		default:
			return c, nil
		}
	}
	if h.commandKnown(fsm.CmdAudited) != nil {
		return c, nil // a replica too old to read audit envelopes: no record
	}
	o, _ := ctx.Value(originKey{}).(origin)
	rec := fsm.AuditRecord{At: h.clock().UTC(), User: p.Name, Role: p.Role, Via: o.via, RequestID: o.requestID, Target: auditTarget(c)}
	if n, ok := ctx.Value(noteKey{}).(note); ok {
		rec.Action, rec.Target = n.action, n.target
	}
	if s, ok := ctx.Value(sessionRecordKey{}).(fsm.AuditRecord); ok {
		// A task access session a replica served: the record it sent, with
		// the session's user, time and replica (sessionaudit.go).
		s.RequestID = rec.RequestID
		rec = s
	}
	return fsm.Wrap(c, rec, h.cfg.AuditKeep, h.cfg.AuditMaxAge)
}

// note names an act recorded with fsm.Record.
type note struct{ action, target string }

type noteKey struct{}

// recordAct keeps an audit record of an act outside the FSM (membership,
// leadership) made by the caller in ctx. Nothing is recorded for calls
// without a caller (the leader's own decisions). A failure to record is
// logged: the act itself happened.
func (h *Host) recordAct(ctx context.Context, action, target string) {
	if _, ok := auth.FromContext(ctx); !ok {
		return
	}
	if err := h.commandKnown(fsm.CmdRecord); err != nil {
		h.log.Info("not recorded in the audit log: a replica cannot read audit records yet", "action", action, "target", target)
		return
	}
	ctx = context.WithValue(ctx, noteKey{}, note{action: action, target: target})
	if _, err := h.apply(ctx, &fsm.Record{}); err != nil {
		h.log.Warn("could not record an act in the audit log", "action", action, "target", target, "err", err)
	}
}

// auditTarget names what c acts on.
func auditTarget(c fsm.Command) string {
	switch c := c.(type) {
	case *fsm.KillTask:
		return "task " + strconv.FormatInt(c.TaskID, 10)
	case *fsm.UpdateTask:
		return "task " + strconv.FormatInt(c.TaskID, 10)
	case *fsm.VPSStop:
		return "task " + strconv.FormatInt(c.TaskID, 10)
	case *fsm.VPSStart:
		return "task " + strconv.FormatInt(c.TaskID, 10)
	case *fsm.SetVPSSnapshot:
		if c.Snapshot != nil {
			return "vps snapshot " + c.Snapshot.Name + " of task " + strconv.FormatInt(c.Snapshot.TaskID, 10)
		}
		return "vps snapshot " + c.Delete
	case *fsm.SetNodeDrain:
		return "node " + c.Hostname
	case *fsm.PutUser:
		if c.User != nil {
			return "user " + c.User.Name
		}
	case *fsm.RemoveUser:
		return "user " + c.Name
	case *fsm.PutGroup:
		if c.Group != nil {
			return "group " + c.Group.Name
		}
	case *fsm.RemoveGroup:
		return "group " + c.Name
	case *fsm.CreateToken:
		if c.Token != nil {
			return "token " + c.Token.ID + " of " + c.Token.User
		}
	case *fsm.RevokeToken:
		return "token " + c.ID
	case *fsm.BootstrapAuth:
		if c.Admin != nil {
			return "user " + c.Admin.Name
		}
	case *fsm.SetEnvironment:
		return "environment " + c.Name
	}
	return ""
}
