package cluster

import (
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
)

// historyLen is the number of one-second health samples kept (as the
// original host did).
const historyLen = 60

// liveNode is what the leader knows about a runner beyond the log: its last
// heartbeat and figures. Never replicated (invariant 2).
type liveNode struct {
	// lastHeartbeat is the wall-clock time of the last heartbeat (shown to
	// users); seen is the same instant on the monotonic clock, from which
	// silence is measured, so that a step of the wall clock (NTP, a clock
	// off by minutes) neither silences every runner nor hides a dead one.
	lastHeartbeat time.Time
	seen          time.Time
	hb            api.HeartbeatRequest
	// missing counts consecutive full heartbeats that did not list a task
	// the FSM believes running there (scheduler.Reconcile's counters).
	missing map[int64]int
}

// liveState is the leader's in-memory view of runners. Safe for concurrent
// use. It is reset whenever this replica gains leadership.
type liveState struct {
	mu      sync.Mutex
	nodes   map[string]*liveNode
	since   time.Time // leadership start (monotonic): silence is measured from here at the latest
	history []healthSample
}

type healthSample struct {
	nodes     []api.NodeHealth
	aggregate api.HealthAggregate
}

// newLiveState starts a view at mono, a monotonic-clock reading.
func newLiveState(mono time.Time) *liveState {
	return &liveState{nodes: map[string]*liveNode{}, since: mono}
}

// heartbeat records a heartbeat received at wall-clock time now and
// monotonic-clock time mono, and returns the node's entry.
func (l *liveState) heartbeat(name string, hb api.HeartbeatRequest, now, mono time.Time) *liveNode {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.nodes[name]
	if n == nil {
		n = &liveNode{missing: map[int64]int{}}
		l.nodes[name] = n
	}
	n.lastHeartbeat, n.seen = now, mono
	n.hb = hb
	return n
}

// lastSeen returns when (on the monotonic clock) a node was last heard
// from, or the leadership start when this leader has not heard from it yet.
func (l *liveState) lastSeen(name string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.nodes[name]; n != nil && n.seen.After(l.since) {
		return n.seen
	}
	return l.since
}

// get returns a copy of the node's live figures. A nil liveState (a
// follower's) knows no node.
func (l *liveState) get(name string) (api.HeartbeatRequest, time.Time, bool) {
	if l == nil {
		return api.HeartbeatRequest{}, time.Time{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.nodes[name]
	if n == nil {
		return api.HeartbeatRequest{}, time.Time{}, false
	}
	return n.hb, n.lastHeartbeat, true
}

// reconcile runs f on the node's missing counters under the lock and keeps
// what it returns, so that two heartbeats of one node count in turn.
func (l *liveState) reconcile(n *liveNode, f func(missing map[int64]int) map[int64]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n.missing = f(n.missing)
}

func (l *liveState) addSample(s healthSample) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.history = append(l.history, s)
	if len(l.history) > historyLen {
		l.history = l.history[len(l.history)-historyLen:]
	}
}

// samples returns the health history, oldest first; a nil liveState (a
// follower's) has none.
func (l *liveState) samples() []healthSample {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]healthSample(nil), l.history...)
}

// sampleHealth appends one health sample (leader only, once a second).
func (l *leader) sampleHealth(now time.Time) {
	live := l.live
	var s healthSample
	s.aggregate.LastUpdated = now
	var cpuWeighted float64
	for _, n := range l.state.Nodes() {
		nh := api.NodeHealth{Hostname: n.Hostname, Status: string(n.Status), MemoryTotalBytes: n.MemoryTotalBytes,
			TotalCores: n.TotalCores, NUMATopology: n.NUMATopology, GPUInfo: n.GPUInfo}
		if hb, at, ok := live.get(n.Hostname); ok {
			at := at
			nh.LastHeartbeat = &at
			nh.CPUPercent, nh.MemoryPercent, nh.MemoryUsedBytes = hb.CPUPercent, hb.MemoryPercent, hb.MemoryUsedBytes
			nh.CurrentAvgTemp, nh.CurrentMaxTemp = hb.CurrentAvgTemp, hb.CurrentMaxTemp
			if len(hb.GPUInfo) > 0 {
				nh.GPUInfo = hb.GPUInfo
			}
			if at.After(s.aggregate.LastUpdated) {
				s.aggregate.LastUpdated = at
			}
		}
		a := &s.aggregate
		a.TotalNodes++
		if n.Status == fsm.NodeOnline {
			a.OnlineNodes++
		}
		a.TotalCores += n.TotalCores
		a.TotalMemBytes += n.MemoryTotalBytes
		if nh.MemoryUsedBytes != nil {
			a.UsedMemBytes += *nh.MemoryUsedBytes
		}
		if nh.CPUPercent != nil {
			cpuWeighted += *nh.CPUPercent * float64(n.TotalCores)
		}
		if nh.CurrentAvgTemp != nil {
			a.MaxAvgCPUTemp = max(a.MaxAvgCPUTemp, *nh.CurrentAvgTemp)
		}
		if nh.CurrentMaxTemp != nil {
			a.MaxMaxCPUTemp = max(a.MaxMaxCPUTemp, *nh.CurrentMaxTemp)
		}
		s.nodes = append(s.nodes, nh)
	}
	s.aggregate.AvgCPUPercent = cpuWeighted / float64(max(1, s.aggregate.TotalCores))
	s.aggregate.AvgMemPercent = float64(s.aggregate.UsedMemBytes) / float64(max(1, s.aggregate.TotalMemBytes)) * 100
	live.addSample(s)
}
