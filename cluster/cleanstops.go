package cluster

import (
	"bytes"
	"log/slog"
	"sync"

	"github.com/hakuriver/hakuriver-ha/gossip"
)

// cleanStops recognises Raft's complaints about a peer replica that stopped
// cleanly: it said in gossip that it was leaving (gossip.Pool.Left), as a
// replica does on SIGTERM during a rolling upgrade. Raft then fails to
// reach it until it is back; that is the expected course of a restart, not
// a fault, so those lines are logged at debug, after one info line per
// stop. A replica that crashed or is cut off never left, and Raft's errors
// about it stay errors. Safe for concurrent use; a nil *cleanStops
// recognises nothing.
type cleanStops struct {
	log *slog.Logger

	mu   sync.Mutex
	left func() []gossip.Member // set once gossip runs
	// noted holds the replicas whose current stop was logged.
	noted map[string]bool
}

func newCleanStops(log *slog.Logger) *cleanStops {
	return &cleanStops{log: log, noted: map[string]bool{}}
}

// watch makes c ask pool who left.
func (c *cleanStops) watch(pool *gossip.Pool) {
	c.mu.Lock()
	c.left = pool.Left
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
	if c.left == nil {
		return false
	}
	left := c.left()
	gone := make(map[string]bool, len(left))
	match := ""
	for _, m := range left {
		if m.Meta.Role != gossip.RoleHost {
			continue
		}
		gone[m.Meta.ID] = true
		if match == "" && (containsToken(line, m.Meta.Raft) || containsToken(line, "server-id="+m.Meta.ID)) {
			match = m.Meta.ID
		}
	}
	for id := range c.noted {
		if !gone[id] {
			delete(c.noted, id) // back: its next stop is noted again
		}
	}
	if match == "" {
		return false
	}
	if !c.noted[match] {
		c.noted[match] = true
		c.log.Info("replica stopped cleanly (it left gossip); Raft retries it until it is back", "replica", match)
	}
	return true
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
