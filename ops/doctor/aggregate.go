package doctor

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Thresholds of the cross-member comparisons.
const (
	// SkewWarn and SkewFail bound a member's clock skew against the
	// machine running the doctor.
	SkewWarn = time.Second
	SkewFail = 5 * time.Second
	// RaftLagWarn is how many entries a replica may apply behind the
	// highest commit index before it is warned about.
	RaftLagWarn = 1000
	// HeartbeatWarn is how many heartbeat periods a runner's last
	// heartbeat may be old before it is warned about.
	HeartbeatWarn = 3
)

// ClusterReport is a whole cluster doctor report (also the CLI's JSON
// document): every member's report in order and the counts of their checks.
type ClusterReport struct {
	Time      time.Time `json:"time"`
	ElapsedMS float64   `json:"elapsed_ms"`
	Members   []Report  `json:"members"`
	Summary   Summary   `json:"summary"`
}

// Summarise stamps each member's name on its checks, counts them, and
// returns the report of members finished at end, begun at start. It never
// returns a nil Checks list.
func Summarise(members []Report, start, end time.Time) ClusterReport {
	out := ClusterReport{Time: end, Members: members}
	for i := range out.Members {
		m := &out.Members[i]
		if m.Checks == nil {
			m.Checks = []Check{}
		}
		for j := range m.Checks {
			m.Checks[j].Node = m.Node
		}
		out.Summary.Add(m.Checks...)
	}
	out.ElapsedMS = float64(end.Sub(start)) / float64(time.Millisecond)
	return out
}

// View is what the cluster API told the doctor, besides the members: the
// answering replica's status and the runner list (or why it failed), as
// listed at RunnersAt.
type View struct {
	Status     ReplicaStatus
	Runners    []Runner
	RunnersAt  time.Time
	RunnersErr error
	// HeartbeatPeriod is the fallback runner heartbeat period when no
	// replica says which it expects.
	HeartbeatPeriod time.Duration
}

// Aggregate compares the examined members: it adds each member's clock
// skew, each replica's Raft lag and each runner's heartbeat age to its
// report, and returns the reports in order: the "cluster" pseudo-member
// (leader agreement, versions, shared_dir paths, name resolution, the runner
// list), the members, then client (the doctor machine's own probes).
func Aggregate(v View, members []*Member, client Report) []Report {
	cl := Report{Node: ClusterNode, Role: ClusterNode}
	cl.Checks = append(cl.Checks, LeaderCheck(v.Status, members))
	cl.Checks = append(cl.Checks, Compare(members)...)
	if v.RunnersErr != nil {
		what, cause := Classify(v.RunnersErr)
		cl.Checks = append(cl.Checks, Check{Name: "runner list", Status: StatusFail,
			Measured: fmt.Sprintf("GET /api/nodes: %s (%v)", what, v.RunnersErr), Cause: cause})
	}
	AttachHeartbeats(members, v.Runners, v.RunnersAt, v.HeartbeatPeriod)
	out := []Report{cl}
	for _, m := range members {
		out = append(out, m.Report)
	}
	return append(out, client)
}

// LeaderCheck checks that st knows a leader and that the replicas examined
// agree on it.
func LeaderCheck(st ReplicaStatus, members []*Member) Check {
	c := Check{Name: "raft leader", Status: StatusOK}
	if st.LeaderID == "" {
		c.Status, c.Measured = StatusFail, fmt.Sprintf("none known by %s (term %d)", st.NodeID, st.Term)
		c.Cause = "no quorum: fewer than a majority of replicas reach each other over Raft; start the stopped ones or open their Raft ports"
		return c
	}
	c.Measured = fmt.Sprintf("%s (term %d)", st.LeaderID, st.Term)
	var disagree []string
	for _, m := range members {
		if m.Status != nil && m.Status.LeaderID != st.LeaderID {
			disagree = append(disagree, fmt.Sprintf("%s sees %s", m.ID, orDash(m.Status.LeaderID)))
		}
	}
	if len(disagree) > 0 {
		c.Status, c.Measured = StatusWarn, c.Measured+"; but "+strings.Join(disagree, ", ")
		c.Cause = "replicas disagree on the leader: an election is in progress, or a replica is cut off from the others"
	}
	return c
}

// Compare returns the checks of what must agree across the reached members
// (versions, shared_dir paths, name resolution), and adds each reached
// member's clock skew and each replica's Raft lag to its own report.
func Compare(members []*Member) []Check {
	versions, shared := map[string][]string{}, map[string][]string{}
	resolved := map[string]map[string][]string{} // name → addresses → members
	var maxCommit uint64
	for _, m := range members {
		if m.Status != nil {
			maxCommit = max(maxCommit, m.Status.CommitIndex)
		}
	}
	for _, m := range members {
		if !m.Reached {
			continue
		}
		versions[m.Report.Version] = append(versions[m.Report.Version], m.ID)
		shared[m.Report.SharedDir] = append(shared[m.Report.SharedDir], m.ID)
		for name, addrs := range m.Report.Resolved {
			a := append([]string(nil), addrs...)
			sort.Strings(a)
			key := strings.Join(a, ",")
			if resolved[name] == nil {
				resolved[name] = map[string][]string{}
			}
			resolved[name][key] = append(resolved[name][key], m.ID)
		}
		m.Report.Checks = append(m.Report.Checks, SkewCheck(m.Skew, m.SkewErr))
		if m.Status != nil {
			m.Report.Checks = append(m.Report.Checks, LagCheck(*m.Status, maxCommit))
		}
	}
	out := []Check{
		Agreement("versions", versions, "mixed versions: finish the rolling upgrade so every node runs the same release"),
		Agreement("shared_dir paths", shared,
			"shared_dir differs between nodes: fine only if each is a mount of the same storage (the shared storage checks prove it)"),
	}
	names := make([]string, 0, len(resolved))
	for n := range resolved {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if len(resolved[n]) > 1 {
			out = append(out, Agreement("resolve "+n, resolved[n],
				"the name resolves differently on different nodes: make DNS or /etc/hosts agree everywhere"))
		}
	}
	return out
}

// Agreement is ok when every member reported the same value (byValue maps
// each value to the members that reported it), warn with cause otherwise or
// when nobody answered.
func Agreement(name string, byValue map[string][]string, cause string) Check {
	vals := make([]string, 0, len(byValue))
	for v := range byValue {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	if len(vals) == 0 {
		return Check{Name: name, Status: StatusWarn, Measured: "no member answered", Cause: "see the members' reachable checks"}
	}
	if len(vals) == 1 {
		return Check{Name: name, Status: StatusOK, Measured: fmt.Sprintf("%s on all %d members", orDash(vals[0]), len(byValue[vals[0]]))}
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprintf("%s on %s", orDash(v), strings.Join(byValue[v], ","))
	}
	return Check{Name: name, Status: StatusWarn, Measured: strings.Join(parts, "; "), Cause: cause}
}

// SkewCheck judges a member's clock skew against this machine's, measured
// within ±uncertainty: warn beyond SkewWarn, fail beyond SkewFail.
func SkewCheck(skew, uncertainty time.Duration) Check {
	c := Check{Name: "clock skew", Status: StatusOK,
		Measured: fmt.Sprintf("%+.3fs vs this machine (±%.1fms)", skew.Seconds(), float64(uncertainty)/float64(time.Millisecond))}
	abs := max(skew, -skew)
	switch {
	case abs > SkewFail:
		c.Status = StatusFail
	case abs > SkewWarn:
		c.Status = StatusWarn
	}
	if c.Status != StatusOK {
		c.Cause = "clocks disagree: run NTP (chrony or systemd-timesyncd) on every node; heartbeat ages and log times are off otherwise"
	}
	return c
}

// LagCheck judges how far a replica applies behind the cluster's highest
// commit index: warn beyond RaftLagWarn entries.
func LagCheck(st ReplicaStatus, maxCommit uint64) Check {
	var lag uint64
	if maxCommit > st.AppliedIndex {
		lag = maxCommit - st.AppliedIndex
	}
	c := Check{Name: "raft lag", Status: StatusOK,
		Measured: fmt.Sprintf("%s, applied %d, %d behind commit %d", strings.ToLower(st.State), st.AppliedIndex, lag, maxCommit)}
	if lag > RaftLagWarn {
		c.Status, c.Cause = StatusWarn, "this replica applies far behind the others: it is overloaded, its disk is slow, or it is catching up after a restart"
	}
	return c
}

// AttachHeartbeats adds each runner member's heartbeat age, as the leader
// listed it at `at`, to its report. Ages are measured on the leader's clock
// when its skew is known; the period is the one the replicas expect, else
// fallback.
func AttachHeartbeats(members []*Member, runners []Runner, at time.Time, fallback time.Duration) {
	var leaderSkew time.Duration
	for _, m := range members {
		if m.Status != nil && m.Status.State == "leader" {
			leaderSkew = m.Skew
		}
	}
	byName := map[string]Runner{}
	for _, n := range runners {
		byName[n.Name] = n
	}
	period := fallback
	for _, m := range members {
		// The cluster's own heartbeat period beats the caller's.
		if m.Status != nil && m.Status.HeartbeatInterval > 0 {
			period = m.Status.HeartbeatInterval
			break
		}
	}
	for _, m := range members {
		n, ok := byName[m.ID]
		if m.Role != RoleRunner || !ok {
			continue
		}
		m.Report.Checks = append(m.Report.Checks, HeartbeatCheck(n, at.Add(leaderSkew), period))
	}
}

// HeartbeatCheck judges a runner's last heartbeat at now: fail when the
// runner is offline, warn when none was seen or it is older than
// HeartbeatWarn periods.
func HeartbeatCheck(n Runner, now time.Time, period time.Duration) Check {
	c := Check{Name: "heartbeat", Status: StatusOK}
	if n.Offline {
		c.Status, c.Cause = StatusFail, "the runner stopped heart-beating: it is down, or its path to the host API is blocked (see its probes)"
	}
	if n.LastHeartbeat == "" {
		c.Measured = n.Status + ", no heartbeat seen by the leader"
		if c.Status == StatusOK {
			c.Status, c.Cause = StatusWarn, "no live heartbeat on the leader yet: the runner just started, or a new leader was elected moments ago"
		}
		return c
	}
	t, err := time.Parse(time.RFC3339Nano, n.LastHeartbeat)
	if err != nil {
		c.Measured = n.Status + ", last heartbeat " + n.LastHeartbeat
		return c
	}
	age := max(now.Sub(t), 0)
	c.Measured = fmt.Sprintf("%s, last heartbeat %.1fs ago (every %s)", n.Status, age.Seconds(), period)
	if c.Status == StatusOK && age > HeartbeatWarn*period {
		c.Status, c.Cause = StatusWarn, "heartbeats are late: the runner is overloaded or its path to the host API is slow or lossy"
	}
	return c
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
