package doctor

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// Pseudo-members of a cluster report: the cross-member comparisons and the
// machine that runs the doctor.
const (
	ClusterNode = "cluster"
	ClientNode  = "client"
)

// Member roles, as gossip and the cluster report name them.
const (
	RoleHost   = "host"
	RoleRunner = "runner"
)

// Doctor endpoint paths of each role.
const (
	HostPath   = "/api/doctor"
	RunnerPath = "/doctor"
)

// ReplicaStatus is what one host replica says of the Raft group (its GET
// /api/cluster), the part the comparisons use.
type ReplicaStatus struct {
	NodeID       string
	LeaderID     string
	Term         uint64
	State        string
	AppliedIndex uint64
	CommitIndex  uint64
	// HeartbeatInterval is the runner heartbeat period the replica
	// expects; 0 when it does not say.
	HeartbeatInterval time.Duration
}

// Replica is one voter of the Raft configuration as the cluster lists it.
type Replica struct {
	ID    string
	API   string // API base URL; "" when unknown
	Raft  string
	State string
}

// Runner is one registered runner as the leader lists it.
type Runner struct {
	Name    string
	URL     string // API base URL; "" when unknown
	Status  string
	Offline bool
	// LastHeartbeat is the RFC 3339 time of the last heartbeat the leader
	// saw; "" when none.
	LastHeartbeat string
}

// VPSPort is the SSH port a running VPS task publishes on its runner, which
// the host replicas probe.
type VPSPort struct {
	TaskID  int64
	Node    string
	SSHPort int
}

// Member is one host replica or runner a cluster doctor examines: where to
// reach it, what to ask it, and, once examined, its report, its Raft status
// (replicas) and its clock skew. A Member is not safe for concurrent use;
// each one is examined by one goroutine.
type Member struct {
	ID    string
	Role  string // RoleHost or RoleRunner
	Base  string // API base URL; "" when unknown
	Path  string // doctor endpoint path
	Raft  string
	State string // replica state or runner status
	Req   Request

	Report  Report
	Status  *ReplicaStatus // a replica's own view of the group
	Skew    time.Duration
	SkewErr time.Duration // uncertainty: half the network round trip
	Reached bool
	Extra   []Check // checks from earlier calls (the probe write)
}

// MembersOf lists the replicas of the Raft configuration and the registered
// runners, each sorted by name, with an empty report named after each.
func MembersOf(replicas []Replica, runners []Runner) []*Member {
	var out []*Member
	reps := append([]Replica(nil), replicas...)
	sort.Slice(reps, func(i, j int) bool { return reps[i].ID < reps[j].ID })
	for _, r := range reps {
		out = append(out, &Member{ID: r.ID, Role: RoleHost, Base: r.API, Path: HostPath, Raft: r.Raft, State: r.State})
	}
	ns := append([]Runner(nil), runners...)
	sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
	for _, n := range ns {
		out = append(out, &Member{ID: n.Name, Role: RoleRunner, Base: n.URL, Path: RunnerPath, State: n.Status})
	}
	for _, m := range out {
		m.Report = Report{Node: m.ID, Role: m.Role}
	}
	return out
}

// GossipOnly returns the gossip members that are neither in the Raft
// configuration nor registered (a replica that never joined, a runner whose
// registration fails), each with a failed membership check.
func GossipOnly(known []*Member, peers []Peer) []*Member {
	have := map[string]bool{}
	for _, m := range known {
		have[m.Role+"/"+m.ID] = true
	}
	var out []*Member
	for _, p := range peers {
		if (p.Role != RoleHost && p.Role != RoleRunner) || have[p.Role+"/"+p.ID] {
			continue
		}
		m := &Member{ID: p.ID, Role: p.Role, Base: p.API, Raft: p.Raft, Path: RunnerPath, State: "in gossip only"}
		if p.Role == RoleHost {
			m.Path, m.State = HostPath, "in gossip, not in the raft configuration"
		}
		m.Report = Report{Node: m.ID, Role: m.Role}
		m.Report.Checks = append(m.Report.Checks, Check{Name: "membership", Status: StatusFail, Measured: m.State,
			Cause: map[string]string{
				RoleHost:   "the replica never joined the Raft group: check its bootstrap_expect and that the leader reaches its Raft port",
				RoleRunner: "the runner is alive but not registered: its cluster token is rejected or it cannot reach any host API (see its probes)",
			}[p.Role]})
		out = append(out, m)
	}
	return out
}

// FindCheck returns the check called name, or a failed placeholder saying
// the member did not report it.
func FindCheck(checks []Check, name string) Check {
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	return Check{Name: name, Status: StatusFail, Measured: "not reported", Cause: "the member runs an older version without this check"}
}

// Plan sets every member's Req: the paths it opens (other replicas' API and
// Raft, runners' API from the replicas, gossip to and from replicas, VPS SSH
// ports from the replicas), each probe bounded by timeout, and the storage
// probe to read back (all but its writer).
func Plan(members []*Member, peers []Peer, vps []VPSPort, probe *ProbeFile, timeout time.Duration) {
	runnerURL := map[string]string{}
	for _, m := range members {
		if m.Role == RoleRunner {
			runnerURL[m.ID] = m.Base
		}
	}
	for _, m := range members {
		m.Req = Request{Targets: planTargets(m, members, peers, vps, runnerURL), TimeoutMS: int(timeout.Milliseconds())}
		if probe != nil && !(m.Role == RoleHost && m.ID == probe.Writer) {
			m.Req.ReadProbe = probe
		}
	}
}

// planTargets lists the paths m opens.
func planTargets(m *Member, members []*Member, peers []Peer, vps []VPSPort, runnerURL map[string]string) []Target {
	var t []Target
	add := func(kind Kind, name, addr string) {
		if addr != "" {
			t = append(t, Target{Name: name, Kind: kind, Address: addr})
		}
	}
	for _, o := range members {
		if o == m {
			continue
		}
		switch {
		case o.Role == RoleHost && o.Base != "":
			add(KindHTTP, "host api "+o.ID, o.Base+HostPath+"?ping=1")
		case o.Role == RoleRunner && m.Role == RoleHost && o.Base != "":
			add(KindHTTP, "runner api "+o.ID, o.Base+RunnerPath+"?ping=1")
		}
		if m.Role == RoleHost && o.Role == RoleHost {
			add(KindTCP, "raft "+o.ID, o.Raft)
		}
	}
	for _, p := range peers {
		if p.ID == m.ID && p.Role == m.Role {
			continue
		}
		if m.Role == RoleHost || p.Role == RoleHost {
			add(KindTCP, "gossip tcp "+p.ID, p.Gossip)
			add(KindUDPGossip, "gossip udp "+p.ID, p.Gossip)
		}
	}
	if m.Role != RoleHost {
		return t
	}
	for _, v := range vps {
		if v.SSHPort <= 0 {
			continue
		}
		if u, err := url.Parse(runnerURL[v.Node]); err == nil && u.Hostname() != "" {
			add(KindTCP, fmt.Sprintf("vps %d ssh on %s", v.TaskID, v.Node), net.JoinHostPort(u.Hostname(), strconv.Itoa(v.SSHPort)))
		}
	}
	return t
}

// Record stores the report rep that m answered: sent and received bound the
// call, so that the clock skew against this machine is estimated from the
// member's Time plus half the round trip (less the member's own work).
// Checks from before (Report.Checks) come first, Extra last.
func (m *Member) Record(rep Report, sent, received time.Time) {
	rep.Node, rep.Role = m.ID, m.Role // the cluster's name for it
	rep.Checks = append(append(m.Report.Checks, rep.Checks...), m.Extra...)
	m.Report, m.Reached = rep, true
	rtt := max(received.Sub(sent)-time.Duration(rep.ElapsedMS*float64(time.Millisecond)), 0)
	m.SkewErr = rtt / 2
	m.Skew = rep.Time.Add(rtt / 2).Sub(received)
}

// Unreached adds the failed check c to a member that could not be examined,
// followed by its Extra checks.
func (m *Member) Unreached(c Check) {
	m.Report.Checks = append(append(m.Report.Checks, c), m.Extra...)
}

// NoAddressCheck is the failed "reachable" check of a member without an API
// address.
func NoAddressCheck(m *Member) Check {
	what := "not alive in gossip, no API address known"
	if m.Role == RoleRunner {
		what = "registered without an API address"
	}
	return Check{Name: "reachable", Status: StatusFail, Measured: fmt.Sprintf("%s (state %s)", what, orDash(m.State)),
		Cause: "the process is down, or its gossip port is blocked: see the other members' raft and gossip probes"}
}

// APITargets lists, for the machine running the doctor, a probe of every
// replica's API.
func APITargets(members []*Member) []Target {
	var targets []Target
	for _, m := range members {
		if m.Role == RoleHost && m.Base != "" {
			targets = append(targets, Target{Name: "host api " + m.ID, Kind: KindHTTP, Address: m.Base + HostPath + "?ping=1"})
		}
	}
	return targets
}

// SSHProxyTargets lists, for the machine running the doctor, a probe of
// every replica's SSH proxy as the replica reported it, else as gossip
// announces it, sorted by replica.
func SSHProxyTargets(members []*Member, peers []Peer) []Target {
	addrs := map[string]string{}
	for _, p := range peers {
		if p.Role == RoleHost && p.SSHProxy != "" {
			addrs[p.ID] = p.SSHProxy
		}
	}
	for _, m := range members {
		if a := m.Report.Endpoints["ssh_proxy"]; m.Role == RoleHost && a != "" {
			addrs[m.ID] = a
		}
	}
	ids := make([]string, 0, len(addrs))
	for id := range addrs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	targets := make([]Target, 0, len(ids))
	for _, id := range ids {
		targets = append(targets, Target{Name: "ssh proxy " + id, Kind: KindTCP, Address: addrs[id]})
	}
	return targets
}
