package cluster

import (
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/cluster/auth"
)

// A `hakuriver forward` opens one stream per TCP connection it accepts
// (a browser opens dozens). They share the session ID the CLI sends
// (api.SessionHeader), and this replica records them as one audit record
// once the last of them has been closed for sessionLinger: one Raft entry
// per session, not per connection. Streams without a session ID are
// recorded one by one.

// Bounds of the session book.
const (
	// sessionLinger is how long a session without open streams waits for
	// another before it is recorded.
	sessionLinger = 5 * time.Second
	// maxOpenSessions bounds the book; beyond it streams are recorded
	// one by one.
	maxOpenSessions = 10000
	// maxSessionID bounds a session ID's length.
	maxSessionID = 64
)

// sessionKey names one forward session on this replica: what is the
// port ("port N") of task.
type sessionKey struct {
	user, id string
	task     int64
	what     string
}

// openSession is a session with its streams.
type openSession struct {
	p      auth.Principal
	action string
	start  time.Time
	last   time.Time // when its last stream ended
	open   int
	conns  int
	timer  *time.Timer
}

// sessionBook tracks the forward sessions served by this replica.
type sessionBook struct {
	mu sync.Mutex
	m  map[sessionKey]*openSession
}

// validSessionID reports whether a client's session ID is usable: 1 to
// maxSessionID printable ASCII bytes.
func validSessionID(id string) bool {
	if id == "" || len(id) > maxSessionID {
		return false
	}
	for _, c := range []byte(id) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// beginStream notes a stream of session id (of p, on what in task) and
// returns the function to call when it ends. An unusable id, or a full
// book, records the stream on its own when it ends.
func (h *Host) beginStream(p auth.Principal, action, id string, task int64, what string) (end func()) {
	start := time.Now()
	single := func() { h.recordSession(p, action, task, what, start, start, 1) }
	if !validSessionID(id) {
		return single
	}
	b := h.sessions
	k := sessionKey{user: p.Name, id: id, task: task, what: what}
	b.mu.Lock()
	s := b.m[k]
	if s == nil {
		if len(b.m) >= maxOpenSessions {
			b.mu.Unlock()
			return single
		}
		s = &openSession{p: p, action: action, start: start}
		b.m[k] = s
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.open++
	b.mu.Unlock()
	return func() { h.endStream(k, s) }
}

// endStream ends one stream of session s; the last one arms its record.
func (h *Host) endStream(k sessionKey, s *openSession) {
	b := h.sessions
	b.mu.Lock()
	defer b.mu.Unlock()
	s.open--
	s.conns++
	s.last = time.Now()
	if s.open > 0 {
		return
	}
	s.timer = time.AfterFunc(sessionLinger, func() {
		b.mu.Lock()
		if s.open > 0 || b.m[k] != s {
			b.mu.Unlock()
			return
		}
		delete(b.m, k)
		b.mu.Unlock()
		h.recordSession(s.p, s.action, k.task, k.what, s.start, s.last, s.conns)
	})
}

// recordSession records a finished session of p (conns streams from start
// to end, on what in task) in the audit log, in the background
// (RecordSession).
func (h *Host) recordSession(p auth.Principal, action string, task int64, what string, start, end time.Time, conns int) {
	if !end.After(start) {
		end = time.Now()
	}
	h.RecordSession(api.SessionRecord{
		User: p.Name, Role: string(p.Role), Action: action, TaskID: task, Target: what, Via: h.cfg.NodeID,
		At: start.UTC().Format(time.RFC3339Nano), Seconds: end.Sub(start).Seconds(), Conns: conns,
	})
}
