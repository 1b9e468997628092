package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/fsm"

	"github.com/hashicorp/raft"
)

// leadershipLoop watches Raft state; when this replica becomes leader it
// waits for a Barrier (so its FSM holds every committed entry), marks itself
// ready for writes and runs leaderLoop until leadership is lost.
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
			h.leaderReady.Store(false)
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
				h.leaderLoop(lctx)
			}()
		case !isLeader && stop != nil:
			h.leaderReady.Store(false)
			stop()
			<-done
			stop = nil
			h.log.Info("lost leadership")
		}
	}
}

// leaderLoop is the leader's work: barrier, then voter reconciliation.
func (h *Host) leaderLoop(ctx context.Context) {
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
	h.ensureClusterID(ctx)
	h.live.Store(newLiveState(time.Now()))
	h.leaderReady.Store(true)
	h.log.Info("leader ready", "applied_index", h.machine.AppliedIndex())
	defer h.leaderReady.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() { defer wg.Done(); h.scheduleLoop(ctx) }()
	go func() { defer wg.Done(); h.livenessLoop(ctx) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	failedProofs := map[string]time.Time{}
	for {
		h.reconcileVoters(ctx, failedProofs)
		h.ensureClusterID(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-h.pool.Changed():
		}
	}
}

// ensureClusterID names the cluster once: a leader that finds no ID in the
// FSM proposes a random one. The FSM keeps the first ID committed, so a
// proposal racing another leader's changes nothing; a failed one is
// retried on the next pass, as is one that waits for a replica of an older
// version (which could not apply it) to be upgraded.
func (h *Host) ensureClusterID(ctx context.Context) {
	if h.machine.ClusterID() != "" {
		return
	}
	if err := h.commandKnown(fsm.CmdSetClusterID); err != nil {
		h.log.Debug("cluster ID waits for every replica to be upgraded", "err", err)
		return
	}
	b := make([]byte, 8)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	if h.applyLogged(ctx, &fsm.SetClusterID{ID: hex.EncodeToString(b)}) {
		h.log.Info("cluster ID chosen", "cluster_id", h.machine.ClusterID())
	}
}
