package cluster

import (
	"bytes"
	"log/slog"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/gossip"
)

// cleanStops recognises Raft's complaints about a peer replica that stopped
// cleanly: it said in gossip that it was leaving (gossip.Pool.Departures),
// as a replica does on SIGTERM during a rolling upgrade. Raft then fails to
// reach it until it is back, and a connection to the old process may
// still fail just after; that is the expected course of a restart, not a
// fault, so those lines are logged at debug, after one info line per stop.
// Gossip may tell of the departure a little after Raft notices it (a busy
// machine): a complaint about a replica that is alive in gossip is judged
// once settle has passed. A replica that crashed or is cut off never left,
// and Raft's errors about it stay errors. Safe for concurrent use; a nil
// *cleanStops recognises nothing.
type cleanStops struct {
	log *slog.Logger
	// settle is how long a complaint about a replica alive in gossip waits
	// for news of its departure.
	settle time.Duration

	mu         sync.Mutex
	departures func() []gossip.Departure // set once gossip runs
	members    func() []gossip.Member
	// noted holds the stops logged, by replica and time of leaving.
	noted map[string]time.Time
}

// Bounds of cleanStops.
const (
	// cleanStopGrace is how long after a replica is back that errors about
	// it still count as its clean stop's (a connection to the old process).
	cleanStopGrace = 5 * time.Second
	// cleanStopSettle is cleanStops.settle: long enough for a leave to
	// cross gossip on a loaded machine (2 s was not, under CI load: a
	// rolling upgrade's restart then logged the leader's failed heartbeat
	// as an ERROR).
	cleanStopSettle = 5 * time.Second
)

// verdict is what cleanStops says of a Raft complaint.
type verdict int

const (
	notOurs verdict = iota // about no replica known to have left: log it as it is
	quiet                  // about a replica that stopped cleanly: debug
	unsure                 // about a replica alive in gossip: judge after settle
)

func newCleanStops(log *slog.Logger) *cleanStops {
	return &cleanStops{log: log, settle: cleanStopSettle, noted: map[string]time.Time{}}
}

// watch makes c ask pool who left.
func (c *cleanStops) watch(pool *gossip.Pool) {
	c.mu.Lock()
	c.departures, c.members = pool.Departures, pool.Members
	c.mu.Unlock()
}

// judge says whether a Raft log line logged at now is about a replica that
// stopped cleanly, naming it by Raft address or server ID.
func (c *cleanStops) judge(line []byte, now time.Time) verdict {
	if c == nil {
		return notOurs
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.departures == nil {
		return notOurs
	}
	if c.departed(line, now, now) {
		return quiet
	}
	if incoming(line) {
		return unsure // it does not say from whom: judged by any departure
	}
	for _, m := range c.members() {
		if m.Meta.Role == gossip.RoleHost && names(line, m.Meta) {
			return unsure
		}
	}
	return notOurs
}

// settled judges again, settle after it was logged at at, a line that was
// unsure: quiet when the replica it names has left by now.
func (c *cleanStops) settled(line []byte, at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.departed(line, at, now) {
		return true
	}
	if !incoming(line) {
		return false
	}
	// A connection a peer had opened to this replica broke: a clean stop's
	// when some replica left about then.
	for _, d := range c.departures() {
		if d.Meta.Role == gossip.RoleHost && !d.LeftAt.After(now) && at.Sub(d.LeftAt) <= cleanStopGrace {
			return true
		}
	}
	return false
}

// incoming reports whether line is Raft's complaint about a connection a
// peer opened to this replica, which names no peer.
func incoming(line []byte) bool {
	return bytes.Contains(line, []byte("failed to decode incoming command")) &&
		(bytes.Contains(line, []byte("connection reset by peer")) || bytes.Contains(line, []byte("EOF")))
}

// departed reports whether line names a replica that had left by the time
// now and was not back long before at (its departure known by now); it
// notes each stop once. c.mu is held.
func (c *cleanStops) departed(line []byte, at, now time.Time) bool {
	for _, d := range c.departures() {
		if d.Meta.Role != gossip.RoleHost || d.LeftAt.After(now) || !d.BackAt.IsZero() && at.Sub(d.BackAt) > cleanStopGrace {
			continue
		}
		if !names(line, d.Meta) {
			continue
		}
		if !c.noted[d.Meta.ID].Equal(d.LeftAt) {
			c.noted[d.Meta.ID] = d.LeftAt
			c.log.Info("replica stopped cleanly (it left gossip); Raft retries it until it is back", "replica", d.Meta.ID)
		}
		return true
	}
	return false
}

// names reports whether line names the replica of m by Raft address or
// server ID.
func names(line []byte, m gossip.Meta) bool {
	return containsToken(line, m.Raft) || containsToken(line, "server-id="+m.ID)
}

// containsToken reports whether line holds s neither preceded nor followed
// by a character that would continue it (a digit of a longer port or
// address, a longer ID).
func containsToken(line []byte, s string) bool {
	if s == "" {
		return false
	}
	for rest := line; ; {
		i := bytes.Index(rest, []byte(s))
		if i < 0 {
			return false
		}
		end := i + len(s)
		if (i == 0 || !isTokenByte(rest[i-1])) && (end == len(rest) || !isTokenByte(rest[end])) {
			return true
		}
		rest = rest[i+1:]
	}
}

func isTokenByte(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b == '-' || b == '_' || b == '.'
}
