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
// A replica that crashed or is cut off never left, and Raft's errors about
// it stay errors. Safe for concurrent use; a nil *cleanStops recognises
// nothing.
type cleanStops struct {
	log *slog.Logger

	mu         sync.Mutex
	departures func() []gossip.Departure // set once gossip runs
	// noted holds the stops logged, by replica and time of leaving.
	noted map[string]time.Time
}

// cleanStopGrace is how long after a replica is back that errors about
// it still count as its clean stop's (a connection to the old process).
const cleanStopGrace = 5 * time.Second

func newCleanStops(log *slog.Logger) *cleanStops {
	return &cleanStops{log: log, noted: map[string]time.Time{}}
}

// watch makes c ask pool who left.
func (c *cleanStops) watch(pool *gossip.Pool) {
	c.mu.Lock()
	c.departures = pool.Departures
	c.mu.Unlock()
}

// quiet reports whether a Raft log line is about a replica that left on
// purpose, naming it by Raft address or server ID. The first line of each
// stop is noted at info.
func (c *cleanStops) quiet(line []byte) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.departures == nil {
		return false
	}
	now := time.Now()
	for _, d := range c.departures() {
		if d.Meta.Role != gossip.RoleHost || !d.BackAt.IsZero() && now.Sub(d.BackAt) > cleanStopGrace {
			continue
		}
		if !containsToken(line, d.Meta.Raft) && !containsToken(line, "server-id="+d.Meta.ID) {
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
