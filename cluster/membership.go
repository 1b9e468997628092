package cluster

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hakuriver/hakuriver-ha/gossip"
)

// aliveHosts returns the host members gossip currently sees alive.
func (h *Host) aliveHosts() []gossip.Member {
	var out []gossip.Member
	for _, m := range h.pool.Members() {
		if m.Alive && m.Meta.Role == gossip.RoleHost && m.Meta.Raft != "" {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// runnerLeft reports whether runner name left gossip on purpose and has
// not rejoined: it is restarting (or stopped) cleanly.
func (h *Host) runnerLeft(name string) bool {
	for _, m := range h.pool.Left() {
		if m.Meta.Role == gossip.RoleRunner && m.Meta.ID == name {
			return true
		}
	}
	return false
}

// bootstrapLoop writes the first Raft configuration once BootstrapExpect
// hosts without Raft state see each other, as Consul and Nomad do. Every one
// of them computes the same configuration, which makes concurrent bootstraps
// safe. A host that sees an already bootstrapped host never bootstraps: it
// waits for the leader to add it as a voter.
func (h *Host) bootstrapLoop(ctx context.Context) {
	if h.raft.hadState {
		return
	}
	for {
		if h.raft.r.Leader() != "" {
			h.markBootstrapped()
			return
		}
		hosts := h.aliveHosts()
		existing := false
		for _, m := range hosts {
			if m.Name != h.cfg.NodeID && m.Meta.Bootstrapped {
				existing = true
			}
		}
		if !existing && len(hosts) >= h.cfg.BootstrapExpect {
			if err := h.bootstrap(hosts); err != nil {
				h.log.Warn("bootstrap", "err", err)
			}
			h.markBootstrapped()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-h.pool.Changed():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (h *Host) bootstrap(hosts []gossip.Member) error {
	var conf raft.Configuration
	for _, m := range hosts {
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(m.Name),
			Address:  raft.ServerAddress(m.Meta.Raft),
		})
	}
	h.log.Info("bootstrapping raft", "servers", len(conf.Servers))
	if err := h.raft.r.BootstrapCluster(conf).Error(); err != nil && err != raft.ErrCantBootstrap {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	return nil
}

func (h *Host) markBootstrapped() {
	if err := h.pool.UpdateMeta(h.meta()); err != nil {
		h.log.Warn("publish bootstrapped flag", "err", err)
	}
}

// proofRetry is how long the leader waits before challenging again a host
// that failed to prove the cluster token.
const proofRetry = 5 * time.Second

// reconcileVoters adds every alive, not yet bootstrapped host that gossip
// sees but the Raft configuration lacks, once it proved holding the cluster
// token (Host.verifyHost); a host that failed is challenged again after
// proofRetry. Hosts that hold Raft state are not re-added automatically, so
// that a replica removed with DELETE /api/cluster/peers stays removed until
// joined by hand.
func (l *leader) reconcileVoters(ctx context.Context, failed map[string]time.Time) {
	known, err := l.voters.servers()
	if err != nil {
		return
	}
	for _, m := range l.hosts() {
		addr, ok := known[m.Name]
		if ok && addr == m.Meta.Raft {
			continue
		}
		if !ok && m.Meta.Bootstrapped {
			continue
		}
		key := m.Name + " " + m.Meta.Raft
		at, failedBefore := failed[key]
		if failedBefore && l.mono().Sub(at) < proofRetry {
			continue
		}
		if err := l.voters.prove(ctx, m); err != nil {
			failed[key] = l.mono()
			log := l.log.Warn
			if failedBefore {
				log = l.log.Debug // said once already
			}
			log("not adding a gossiped host as voter: it did not prove the cluster token", "id", m.Name, "raft", m.Meta.Raft, "err", err)
			continue
		}
		delete(failed, key)
		l.log.Info("adding voter", "id", m.Name, "raft", m.Meta.Raft)
		if err := l.voters.addVoter(m.Name, m.Meta.Raft); err != nil {
			l.log.Warn("add voter", "id", m.Name, "err", err)
		}
	}
}
