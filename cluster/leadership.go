package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hakuriver/hakuriver-ha/gossip"

	"github.com/hashicorp/raft"
)

// leadershipLoop watches Raft state; when this replica becomes leader it
// runs leadTerm (Barrier, then a leader) until leadership is lost.
func (h *Host) leadershipLoop(ctx context.Context) {
	var stop context.CancelFunc
	var leaderTerm uint64
	done := make(chan struct{})
	close(done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	wasBootstrapped := h.raft.hadState
	for {
		select {
		case <-ctx.Done():
			if stop != nil {
				stop()
			}
			<-done
			return
		case <-h.raft.r.LeaderCh():
		case <-tick.C:
		}
		if !wasBootstrapped && h.raft.r.Leader() != "" {
			wasBootstrapped = true
			h.markBootstrapped()
		}
		isLeader := h.raft.r.State() == raft.Leader
		if isLeader && stop != nil && h.raft.r.CurrentTerm() != leaderTerm {
			// Leadership was lost and regained between two looks: restart
			// the leader's work so that it runs after a fresh Barrier.
			h.lead.Store(nil)
			stop()
			<-done
			stop = nil
		}
		switch {
		case isLeader && stop == nil:
			leaderTerm = h.raft.r.CurrentTerm()
			var lctx context.Context
			lctx, stop = context.WithCancel(ctx)
			done = make(chan struct{})
			go func() {
				defer close(done)
				h.leadTerm(lctx)
			}()
		case !isLeader && stop != nil:
			h.lead.Store(nil)
			stop()
			<-done
			stop = nil
			h.log.Info("lost leadership")
		}
	}
}

// leadTerm is one term of leadership: a Barrier (so the FSM holds every
// committed entry), then a leader that serves writes until ctx ends.
func (h *Host) leadTerm(ctx context.Context) {
	for {
		if err := h.raft.r.Barrier(5 * time.Second).Error(); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	l := newLeader(h.leaderDeps())
	l.ensureClusterID(ctx)
	l.start(ctx)
	defer l.stop()
	if ctx.Err() != nil {
		return
	}
	h.lead.Store(l)
	defer h.lead.CompareAndSwap(l, nil)
	h.log.Info("leader ready", "applied_index", h.machine.AppliedIndex())
	<-ctx.Done()
}

// leaderDeps wires the leader to this replica's parts.
func (h *Host) leaderDeps() leaderDeps {
	return leaderDeps{
		log:              h.log,
		state:            h.machine,
		apply:            h.apply,
		known:            h.commandKnown,
		hosts:            h.aliveHosts,
		changed:          h.pool.Changed,
		voters:           raftVoters{r: h.raft.r, verify: h.verifyHost},
		runners:          h.runners,
		runnerLeft:       h.runnerLeft,
		heartbeatTimeout: h.cfg.HeartbeatInterval * time.Duration(h.cfg.HeartbeatTimeoutFactor),
		// Offline within a quarter second of the timeout.
		livenessTick: min(250*time.Millisecond, h.cfg.HeartbeatInterval/4+1),
		now:          h.clock,
		placed:       h.metrics.placements.Inc,
		notify:       h.runNotifier,
		history:      historyRule{keep: h.cfg.HistoryKeep, keepTasks: h.cfg.HistoryKeepTasks, every: h.cfg.ArchiveInterval},
	}
}

// currentLeader returns this replica's leader, or nil on a follower (and
// while a new leader waits for its Barrier).
func (h *Host) currentLeader() *leader { return h.lead.Load() }

// IsLeader reports whether this replica is the leader and ready for writes.
func (h *Host) IsLeader() bool { return h.currentLeader() != nil }

// kickScheduler asks the leader's scheduling loop for a pass now; on a
// follower it does nothing.
func (h *Host) kickScheduler() {
	if l := h.currentLeader(); l != nil {
		l.kickScheduler()
	}
}

// liveState returns the leader's in-memory runner view, or nil on a
// follower (whose lookups then find nothing).
func (h *Host) liveState() *liveState {
	if l := h.currentLeader(); l != nil {
		return l.live
	}
	return nil
}

// raftVoters is the voterSet of a Raft node.
type raftVoters struct {
	r      *raft.Raft
	verify func(ctx context.Context, m gossip.Member) error
}

func (v raftVoters) servers() (map[string]string, error) {
	cf := v.r.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	out := map[string]string{}
	for _, s := range cf.Configuration().Servers {
		out[string(s.ID)] = string(s.Address)
	}
	return out, nil
}

func (v raftVoters) addVoter(id, addr string) error {
	return v.r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 5*time.Second).Error()
}

func (v raftVoters) prove(ctx context.Context, m gossip.Member) error { return v.verify(ctx, m) }
