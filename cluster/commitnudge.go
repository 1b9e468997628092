package cluster

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// A Raft follower learns that an entry is committed only from the leader's
// next AppendEntries. hashicorp/raft sends one when new entries arrive and
// otherwise every CommitTimeout, on an idle cluster too: a short
// CommitTimeout makes a write through a follower (which
// waits until its own state holds the write) and a task's end, read
// through a follower, quick, but keeps an idle cluster busy (three idle
// replicas used 16 % of a core at 5 ms, 4 % at 50 ms). The commit nudger
// sends the commit index only when something was committed and no new
// entry is on its way to carry it, so CommitTimeout stays long.
//
// A nudge is an AppendEntries with no entries whose previous entry is the
// leader's commit index (the follower must hold that very entry, index and
// term, or it refuses) and whose commit index is that same index: by Raft's
// log matching the follower's log equals the leader's up to it, so the
// follower commits nothing the leader has not committed. A follower that
// does not hold the entry yet (the commit counted the other follower)
// refuses; it is nudged again shortly, once the normal replication has
// brought the entry (a few times in a row at most). A follower far behind, unreachable, or whose entry
// at that index differs (after a leader change) is left to the normal
// replication for a while.

// nudgeGrace is how long after a commit, while entries beyond it are in
// flight, the nudger waits for a new entry that would carry the commit
// index anyway (under load one always comes). A commit of the leader's
// last entry (nothing in flight: a lone client) is nudged at once.
const nudgeGrace = time.Millisecond

// nudgeRetry is when a follower that did not hold the committed entry yet
// is nudged again.
const nudgeRetry = 2 * time.Millisecond

// nudgeRetries is how many refusals in a row, from a follower that did
// not hold the entry yet, are retried after nudgeRetry; then it is held off
// for nudgeBackoff.
const nudgeRetries = 5

// nudgeFarBehind is how many entries behind the commit a follower may be
// and still be nudged again after nudgeRetry rather than nudgeBackoff.
const nudgeFarBehind = 1024

// nudgeBackoff is how long nudges to a follower stop after one failed,
// found a different entry, or found the follower far behind.
const nudgeBackoff = time.Second

// nudgeTimeout bounds one nudge.
const nudgeTimeout = 2 * time.Second

// commitNudger sends followers the leader's commit index after commits
// that no new entry follows.
type commitNudger struct {
	r     *raft.Raft
	trans *raft.NetworkTransport
	logs  raft.LogStore
	self  raft.ServerID
	log   *slog.Logger

	kick  <-chan struct{} // raftFSM.applied
	retry chan struct{}   // a follower is due to be nudged again

	mu    sync.Mutex
	peers map[raft.ServerID]*nudgePeer
}

// nudgePeer is the nudger's view of one follower.
type nudgePeer struct {
	inFlight bool
	sent     uint64    // highest commit index the follower took from a nudge
	holdOff  time.Time // no nudge before
	refused  int       // refusals in a row: the follower did not hold the entry
}

func newCommitNudger(n *raftNode, self raft.ServerID, log *slog.Logger) *commitNudger {
	return &commitNudger{
		r: n.r, trans: n.trans, logs: n.cached, self: self, log: log,
		kick:  n.applied,
		retry: make(chan struct{}, 1),
		peers: map[raft.ServerID]*nudgePeer{},
	}
}

// run nudges until ctx ends; the nudges it started are waited for.
func (c *commitNudger) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-c.retry:
		}
		if c.r.State() != raft.Leader {
			continue
		}
		if last := c.r.LastIndex(); last != c.r.CommitIndex() {
			// Entries beyond the commit are in flight; those sent before
			// it do not carry it. Wait briefly for one stored after it.
			select {
			case <-ctx.Done():
				return
			case <-time.After(nudgeGrace):
			}
			if c.r.LastIndex() != last || c.r.State() != raft.Leader {
				continue // a new entry follows and carries the commit index
			}
		}
		commit := c.r.CommitIndex()
		var entry raft.Log
		if err := c.logs.GetLog(commit, &entry); err != nil {
			continue // compacted meanwhile: the next commit nudges
		}
		term := c.r.CurrentTerm()
		if term != entry.Term {
			// Only entries of the leader's own term commit by counting
			// replicas; until one has, leave the commit index to Raft.
			continue
		}
		f := c.r.GetConfiguration() // a copy of the latest, no round trip
		if f.Error() != nil {
			continue
		}
		addr := c.trans.EncodePeer(c.self, c.trans.LocalAddr())
		req := &raft.AppendEntriesRequest{
			RPCHeader:         raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(c.self), Addr: addr},
			Term:              term,
			Leader:            addr, //nolint:staticcheck // followers before protocol 3 read it
			PrevLogEntry:      commit,
			PrevLogTerm:       entry.Term,
			LeaderCommitIndex: commit,
		}
		for _, s := range f.Configuration().Servers {
			if s.ID == c.self || !c.take(s.ID, commit) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.send(ctx, s, req)
			}()
		}
	}
}

// take claims a nudge of index to id: none in flight, not held off, and
// index not taken already.
func (c *commitNudger) take(id raft.ServerID, index uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[id]
	if p == nil {
		p = &nudgePeer{}
		c.peers[id] = p
	}
	if p.inFlight || p.sent >= index || time.Now().Before(p.holdOff) {
		return false
	}
	p.inFlight = true
	return true
}

// send sends one nudge to s and records the outcome. It returns when ctx
// ends without waiting for the transport, whose own I/O timeout ends the
// call.
func (c *commitNudger) send(ctx context.Context, s raft.Server, req *raft.AppendEntriesRequest) {
	var resp raft.AppendEntriesResponse
	done := make(chan error, 1)
	go func() { done <- c.trans.AppendEntries(s.ID, s.Address, req, &resp) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(nudgeTimeout):
		err = context.DeadlineExceeded
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[s.ID]
	if err != nil {
		// The call may still be running: the nudge stays in flight until
		// it ends.
		go func() {
			<-done
			c.mu.Lock()
			p.inFlight = false
			c.mu.Unlock()
		}()
		p.holdOff = time.Now().Add(nudgeBackoff)
		c.log.Debug("commit nudge failed", "peer", s.ID, "index", req.LeaderCommitIndex, "err", err)
		return
	}
	p.inFlight = false
	switch {
	case resp.Success:
		p.sent, p.refused = max(p.sent, req.LeaderCommitIndex), 0
		// Commits while this nudge was in flight were not sent to s.
		c.again()
	case resp.LastLog < req.PrevLogEntry && req.PrevLogEntry-resp.LastLog <= nudgeFarBehind && p.refused < nudgeRetries:
		// Not there yet: the replication in flight brings the entry.
		p.refused++
		time.AfterFunc(nudgeRetry, c.again)
	default:
		p.refused = 0
		p.holdOff = time.Now().Add(nudgeBackoff)
		c.log.Debug("commit nudge refused", "peer", s.ID, "index", req.LeaderCommitIndex, "last_log", resp.LastLog, "term", resp.Term)
	}
}

// again makes run look at the followers once more.
func (c *commitNudger) again() {
	select {
	case c.retry <- struct{}{}:
	default:
	}
}
