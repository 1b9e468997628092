package fsm

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// AuditRecord says who changed what, when, through which replica and with
// which request ID. Records are kept in the replicated state, so every
// replica serves the same history.
type AuditRecord struct {
	// Seq is the log index of the entry that carried the change.
	Seq       uint64    `json:"seq,string"`
	At        time.Time `json:"at"`
	User      string    `json:"user"`
	Role      Role      `json:"role,omitempty"`
	Action    string    `json:"action"`
	Target    string    `json:"target,omitempty"`
	Via       string    `json:"via,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
}

// Audited wraps a command with the audit record of the request that asked
// for it: one log entry both changes the state and records the change. The
// record is kept only if the command is accepted. Keep and MaxAge, stamped
// by the leader from its configuration, bound how many records stay (the
// oldest go first); zero means no bound of that kind.
type Audited struct {
	Record  AuditRecord   `json:"record"`
	Keep    int           `json:"keep,omitempty"`
	MaxAge  time.Duration `json:"max_age,omitempty"`
	Command []byte        `json:"command"`

	// inner is Command decoded, and innerOK whether it is a command this
	// build applies (not an ignorable unknown one); Decode sets both.
	inner   Command
	innerOK bool
}

// Type implements Command.
func (*Audited) Type() CommandType { return CmdAudited }

// Record changes nothing. Wrapped in Audited (with Action set on the
// record) it keeps an audit record of an act outside the FSM, such as a
// Raft membership change or a leadership transfer.
type Record struct{}

// Type implements Command.
func (*Record) Type() CommandType { return CmdRecord }

// Wrap returns c wrapped with its audit record.
func Wrap(c Command, rec AuditRecord, keep int, maxAge time.Duration) (*Audited, error) {
	if _, nested := c.(*Audited); nested {
		return nil, fmt.Errorf("%w: an audited command cannot be wrapped again", ErrInvalid)
	}
	data, err := Encode(c)
	if err != nil {
		return nil, err
	}
	if rec.Action == "" {
		rec.Action = c.Type().String()
		if _, placed := c.(*SubmitPlaced); placed {
			rec.Action = CmdSubmitTasks.String() // a submit, whether placed at once or not
		}
	}
	return &Audited{Record: rec, Keep: keep, MaxAge: maxAge, Command: data}, nil
}

// decodeInner reads the wrapped command. A wrapped command that cannot be
// read makes the whole entry unreadable.
func (c *Audited) decodeInner() (Command, bool, error) {
	inner, ok, err := Decode(c.Command)
	if err != nil {
		return nil, false, fmt.Errorf("audited command: %w", err)
	}
	if _, nested := inner.(*Audited); nested {
		return nil, false, fmt.Errorf("audited command: nested audit envelope")
	}
	return inner, ok, nil
}

// applyAudited applies the inner command and, if it was accepted, keeps
// the record.
func (m *Machine) applyAudited(index uint64, c *Audited, inner Command) Result {
	res := m.applyCommand(index, inner)
	if res.Err != nil {
		return res
	}
	if sr, ok := res.Value.(SubmitResult); ok && sr.Duplicate {
		return res // a retry of a submit already recorded
	}
	rec := c.Record
	rec.Seq = index
	if rec.Target == "" {
		if sr, ok := res.Value.(SubmitResult); ok && len(sr.TaskIDs) > 0 {
			rec.Target = "task " + strconv.FormatInt(sr.TaskIDs[0], 10)
			if n := len(sr.TaskIDs); n > 1 {
				rec.Target += " (+" + strconv.Itoa(n-1) + ")"
			}
		}
	}
	m.audit = append(m.audit, rec)
	m.pruneAudit(rec.At, c.Keep, c.MaxAge)
	return res
}

// pruneAudit drops the oldest records beyond keep and those older than
// maxAge before now.
func (m *Machine) pruneAudit(now time.Time, keep int, maxAge time.Duration) {
	drop := 0
	if keep > 0 && len(m.audit) > keep {
		drop = len(m.audit) - keep
	}
	if maxAge > 0 {
		cut := now.Add(-maxAge)
		for drop < len(m.audit) && m.audit[drop].At.Before(cut) {
			drop++
		}
	}
	// Reslicing, not copying: a full log costs no copy per write (append
	// copies the live records only when it grows the array). Records are
	// never changed in place, so snapshots sharing the array stay valid.
	m.audit = m.audit[drop:]
}

// AuditFilter selects audit records.
type AuditFilter struct {
	User  string
	Since time.Time
	// After skips records up to this Seq (paging).
	After uint64
}

// Audit returns up to limit records matching f, oldest first, and whether
// more follow.
func (m *Machine) Audit(f AuditFilter, limit int) ([]AuditRecord, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i := sort.Search(len(m.audit), func(i int) bool { return m.audit[i].Seq > f.After })
	out := []AuditRecord{}
	for ; i < len(m.audit); i++ {
		r := m.audit[i]
		if f.User != "" && r.User != f.User || !f.Since.IsZero() && r.At.Before(f.Since) {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, r)
	}
	return out, false
}
