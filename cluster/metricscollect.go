package cluster

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/scheduler"
)

// The collectors below read the replica's state at scrape time, so that
// nothing but the scrape pays for them.

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

func gaugeOf(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counterOf(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var (
	descRaftState      = desc("hakuriver_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.")
	descRaftIsLeader   = desc("hakuriver_raft_is_leader", "1 when this replica is the leader and ready for writes.")
	descRaftTerm       = desc("hakuriver_raft_term", "Current Raft term.")
	descRaftCommit     = desc("hakuriver_raft_commit_index", "Raft commit index.")
	descRaftApplied    = desc("hakuriver_raft_applied_index", "Last log index applied to this replica's FSM.")
	descRaftLastLog    = desc("hakuriver_raft_last_log_index", "Last index in this replica's Raft log or snapshot.")
	descRaftContact    = desc("hakuriver_raft_last_contact_seconds", "Seconds since this follower last heard from the leader (0 on the leader; absent before any contact).")
	descRaftSnapIndex  = desc("hakuriver_raft_last_snapshot_index", "Last log index of this replica's newest snapshot (absent without one).")
	descRaftSnapAge    = desc("hakuriver_raft_snapshot_age_seconds", "Seconds since this replica's newest snapshot was completed (absent without one).")
	descTasks          = desc("hakuriver_tasks", "Tasks by status in this replica's FSM.", "status")
	descNodeTasks      = desc("hakuriver_node_tasks", "Unfinished tasks placed on each runner node, by status, in this replica's FSM.", "node", "status")
	descNodes          = desc("hakuriver_nodes", "Registered runner nodes.")
	descTasksArchived  = desc("hakuriver_tasks_archived", "Finished tasks in this replica's on-disk archive (archive.db).")
	descTasksMemory    = desc("hakuriver_tasks_in_memory", "Tasks held in this replica's memory (not archived).")
	descArchiveBytes   = desc("hakuriver_archive_bytes", "Size of this replica's task archive file.")
	descRunners        = desc("hakuriver_runners", "Registered runner nodes by committed status (online, offline).", "status")
	descRunnersDrained = desc("hakuriver_runners_drained", "Registered runner nodes that are drained.")
	descHeartbeatAge   = desc("hakuriver_runner_heartbeat_age_seconds", "Seconds since the leader last heard a runner's heartbeat (leader only; from the leadership start at most).", "node")
	descQueue          = desc("hakuriver_scheduler_queue_tasks", "Pending tasks by why they wait (or placing), as the leader's last scheduling pass saw them (leader only).", "reason")
	descSSHSessions    = desc("hakuriver_ssh_proxy_sessions", "Tunnels to a VPS open through this replica's SSH proxy now.")
	descSSHConns       = desc("hakuriver_ssh_proxy_connections", "Client connections to this replica's SSH proxy open now.")
	descSSHTunnels     = desc("hakuriver_ssh_proxy_tunnels_total", "Tunnels to a VPS opened through this replica's SSH proxy.")
	descSSHRefused     = desc("hakuriver_ssh_proxy_refused_total", "Tunnel requests this replica's SSH proxy refused.")
	descSSHBytes       = desc("hakuriver_ssh_proxy_bytes_total", "Bytes relayed through this replica's SSH proxy tunnels, by direction (to_vps, from_vps).", "direction")
)

// nodeTaskStatuses are the statuses hakuriver_node_tasks counts.
func nodeTaskStatuses() [3]fsm.Status {
	return [3]fsm.Status{fsm.StatusAssigning, fsm.StatusRunning, fsm.StatusPaused}
}

// describeAll sends ds.
func describeAll(ch chan<- *prometheus.Desc, ds ...*prometheus.Desc) {
	for _, d := range ds {
		ch <- d
	}
}

// raftCollector reports this replica's Raft figures. It uses Raft's direct
// accessors, not Stats (which waits for Raft's main loop).
type raftCollector struct{ h *Host }

func (c raftCollector) Describe(ch chan<- *prometheus.Desc) {
	describeAll(ch, descRaftState, descRaftIsLeader, descRaftTerm, descRaftCommit, descRaftApplied,
		descRaftLastLog, descRaftContact, descRaftSnapIndex, descRaftSnapAge)
}

func (c raftCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.h.raft.r
	state := r.State()
	ch <- gaugeOf(descRaftState, float64(state))
	ch <- gaugeOf(descRaftIsLeader, boolGauge(c.h.IsLeader()))
	ch <- gaugeOf(descRaftTerm, float64(r.CurrentTerm()))
	ch <- gaugeOf(descRaftCommit, float64(r.CommitIndex()))
	ch <- gaugeOf(descRaftApplied, float64(c.h.machine.AppliedIndex()))
	ch <- gaugeOf(descRaftLastLog, float64(r.LastIndex()))
	now := time.Now()
	switch last := r.LastContact(); {
	case state == raft.Leader:
		ch <- gaugeOf(descRaftContact, 0)
	case !last.IsZero():
		ch <- gaugeOf(descRaftContact, now.Sub(last).Seconds())
	}
	if s := c.h.raft.snapStore.latest(); s != nil {
		ch <- gaugeOf(descRaftSnapIndex, float64(s.index))
		if !s.at.IsZero() {
			ch <- gaugeOf(descRaftSnapAge, now.Sub(s.at).Seconds())
		}
	}
}

// stateCollector reports tasks and runner nodes from this replica's FSM.
type stateCollector struct{ h *Host }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	describeAll(ch, descTasks, descNodeTasks, descNodes, descRunners, descRunnersDrained, descTasksArchived, descTasksMemory, descArchiveBytes)
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.h.machine
	counts := m.Counts()
	for _, s := range allStatusNames() {
		ch <- gaugeOf(descTasks, float64(counts[s]), string(s))
	}
	arch := m.ArchiveStats()
	ch <- gaugeOf(descTasksArchived, float64(arch.Tasks))
	ch <- gaugeOf(descTasksMemory, float64(m.MemoryTasks()))
	ch <- gaugeOf(descArchiveBytes, float64(arch.Bytes))
	nodes := m.Nodes()
	ch <- gaugeOf(descNodes, float64(len(nodes)))
	byStatus := map[fsm.NodeStatus]int{}
	drained := 0
	statuses := nodeTaskStatuses()
	perNode := make(map[string]*[3]int, len(nodes))
	for _, n := range nodes {
		byStatus[n.Status]++
		if n.Drained {
			drained++
		}
		perNode[n.Hostname] = new([3]int)
	}
	ch <- gaugeOf(descRunners, float64(byStatus[fsm.NodeOnline]), string(fsm.NodeOnline))
	ch <- gaugeOf(descRunners, float64(byStatus[fsm.NodeOffline]), string(fsm.NodeOffline))
	ch <- gaugeOf(descRunnersDrained, float64(drained))
	for _, t := range m.Active() {
		counts := perNode[t.AssignedNode] // only registered nodes: bounded labels
		if counts == nil {
			continue
		}
		for i, s := range statuses {
			if t.Status == s {
				counts[i]++
			}
		}
	}
	for name, counts := range perNode {
		for i, s := range statuses {
			ch <- gaugeOf(descNodeTasks, float64(counts[i]), name, string(s))
		}
	}
}

// leaderCollector reports what only the leader knows: the runners'
// heartbeats and the scheduling queue. A follower reports none of it, so
// that a sum over replicas counts each figure once.
type leaderCollector struct{ h *Host }

func (c leaderCollector) Describe(ch chan<- *prometheus.Desc) {
	describeAll(ch, descHeartbeatAge, descQueue)
}

func (c leaderCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.h.currentLeader()
	if l == nil {
		return
	}
	now := l.mono()
	for _, n := range c.h.machine.Nodes() {
		ch <- gaugeOf(descHeartbeatAge, now.Sub(l.live.lastSeen(n.Hostname)).Seconds(), n.Hostname)
	}
	q := l.queueByKind()
	for _, kind := range append(scheduler.WaitKinds(), queuePlacing) {
		ch <- gaugeOf(descQueue, float64(q[kind]), kind)
	}
}

// sshCollector reports the SSH proxy's counters.
type sshCollector struct{ h *Host }

func (c sshCollector) Describe(ch chan<- *prometheus.Desc) {
	describeAll(ch, descSSHSessions, descSSHConns, descSSHTunnels, descSSHRefused, descSSHBytes)
}

func (c sshCollector) Collect(ch chan<- prometheus.Metric) {
	if c.h.sshProxy == nil {
		return
	}
	s := c.h.sshProxy.srv.Stats()
	ch <- gaugeOf(descSSHSessions, float64(s.ActiveTunnels))
	ch <- gaugeOf(descSSHConns, float64(s.Active))
	ch <- counterOf(descSSHTunnels, float64(s.Tunnels))
	ch <- counterOf(descSSHRefused, float64(s.Refused))
	ch <- counterOf(descSSHBytes, float64(s.BytesToVPS), "to_vps")
	ch <- counterOf(descSSHBytes, float64(s.BytesFromVPS), "from_vps")
}
