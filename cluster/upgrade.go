package cluster

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/hakuriver/hakuriver-ha/cluster/httpapi"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/gossip"
)

// ErrUpgradePending is returned when the leader will not propose a command
// because a replica it sees does not know the command's type yet.
var ErrUpgradePending = httpapi.ErrUpgradePending

// legacyMaxCommand is what a replica knows that gossips no command level:
// the last command type of the releases from before replicas advertised it.
const legacyMaxCommand = fsm.CmdSetEnvironment

// hostLevel is what one host replica says it can apply.
type hostLevel struct {
	id, version string
	max         fsm.CommandType
}

// commandLevels is the command level of every host replica in the gossip
// pool, valid until changed is closed.
type commandLevels struct {
	changed <-chan struct{}
	hosts   []hostLevel
}

// levelCache holds the last commandLevels computed.
type levelCache struct{ p atomic.Pointer[commandLevels] }

// levels returns the command levels of the pool's host replicas, computed
// again only after the pool changed.
func (c *levelCache) levels(pool *gossip.Pool) *commandLevels {
	if l := c.p.Load(); l != nil {
		select {
		case <-l.changed:
		default:
			return l
		}
	}
	l := &commandLevels{changed: pool.Changed()} // before reading: no change is missed
	for _, m := range pool.Members() {
		if m.Meta.Role != gossip.RoleHost {
			continue
		}
		max := fsm.CommandType(m.Meta.MaxCommand)
		if max == 0 {
			max = legacyMaxCommand
		}
		l.hosts = append(l.hosts, hostLevel{id: m.Meta.ID, version: m.Meta.Version, max: max})
	}
	c.p.Store(l)
	return l
}

// commandKnown checks that every host replica the leader sees through gossip
// knows command type t, so that none halts on the entry (fsm.ErrHalted).
// An ignorable type is always allowed. A replica that is down is not seen:
// if it comes back with an older binary it stops at the entry, loudly, until
// it is upgraded.
func (h *Host) commandKnown(t fsm.CommandType) error {
	if t&fsm.IgnoreUnknownFlag != 0 {
		return nil
	}
	var old []string
	for _, hl := range h.levels.levels(h.pool).hosts {
		if t > hl.max {
			old = append(old, fmt.Sprintf("%s (version %s, knows commands up to %d)", hl.id, hl.version, hl.max))
		}
	}
	if len(old) > 0 {
		return fmt.Errorf("%w: replica %s cannot apply %s (command %d) yet: upgrade every replica, then retry",
			ErrUpgradePending, strings.Join(old, ", "), t, byte(t))
	}
	return nil
}

// halted is called once when the local state machine stops on an entry it
// cannot read: the replica must not serve or apply anything more.
func (h *Host) halted(err error) {
	h.log.Error("replica halted: it cannot apply the replicated log any further", "err", err)
	if h.cfg.OnHalt != nil {
		h.cfg.OnHalt(err)
	}
}
