package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/config"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
)

// Thresholds of the cross-member comparisons.
const (
	skewWarn      = time.Second
	skewFail      = 5 * time.Second
	raftLagWarn   = 1000 // entries behind the highest commit index
	heartbeatWarn = 3    // missed heartbeat intervals
	doctorWorkers = 32   // members examined at once
)

// Pseudo-members of the report.
const (
	clusterNode = "cluster"
	clientNode  = "client"
)

// member is one host replica or runner to examine.
type member struct {
	id    string
	role  string // "host" or "runner"
	base  string // API base URL; "" when unknown
	path  string // doctor endpoint path
	raft  string
	state string // replica state or runner status
	req   doctor.Request

	report  doctor.Report
	status  *api.ClusterStatus // a replica's own /api/cluster
	skew    time.Duration
	skewErr time.Duration // uncertainty: half the network round trip
	reached bool
	extra   []doctor.Check // checks from earlier calls (the probe write)
}

// doctorRun gathers one cluster report.
type doctorRun struct {
	client       *api.Client
	hosts        []string
	token        string
	probeTimeout time.Duration
	heartbeat    time.Duration
}

// run gathers every member's view and compares them. It never fails: what
// it cannot reach becomes a failed check.
func (d *doctorRun) run(ctx context.Context) doctorOutput {
	start := time.Now()
	var (
		st              api.ClusterStatus
		nodes           []api.NodeView
		tasks           []fsm.Task
		stErr, nodesErr error
		wg              sync.WaitGroup
		nodesAt         time.Time
	)
	wg.Go(func() { st, stErr = d.client.Cluster(ctx, false) })
	wg.Go(func() { nodes, nodesErr = d.client.Nodes(ctx); nodesAt = time.Now() })
	wg.Go(func() { tasks, _, _ = d.client.Tasks(ctx, api.TaskQuery{Status: string(fsm.StatusRunning)}) }) //nolint:errcheck // VPS ports are optional
	wg.Wait()
	if stErr != nil {
		return finish([]doctor.Report{d.unreachable(ctx, stErr)}, start)
	}
	members := membersOf(st, nodes)
	probe, peers := d.writeProbe(ctx, members)
	members = append(members, gossipOnly(members, peers)...)
	d.plan(members, peers, tasks, probe)

	var apiChecks []doctor.Check
	wg.Go(func() { apiChecks = d.clientAPIProbes(ctx, members) })
	d.examine(ctx, members)
	wg.Wait()
	client := doctor.Report{Node: clientNode, Role: clientNode, Version: version, Time: time.Now(),
		Checks: append(apiChecks, d.clientSSHProbes(ctx, members, peers)...)}

	cl := doctor.Report{Node: clusterNode, Role: clusterNode}
	cl.Checks = append(cl.Checks, leaderCheck(st, members))
	cl.Checks = append(cl.Checks, compareMembers(members)...)
	if nodesErr != nil {
		what, cause := doctor.Classify(nodesErr)
		cl.Checks = append(cl.Checks, doctor.Check{Name: "runner list", Status: doctor.StatusFail,
			Measured: fmt.Sprintf("GET /api/nodes: %s (%v)", what, nodesErr), Cause: cause})
	}
	d.attachHealth(members, nodes, nodesAt)

	out := []doctor.Report{cl}
	for _, m := range members {
		out = append(out, m.report)
	}
	return finish(append(out, client), start)
}

// unreachable reports a cluster whose API no configured replica answers:
// the client's own probes of each configured replica say why.
func (d *doctorRun) unreachable(ctx context.Context, err error) doctor.Report {
	what, cause := doctor.Classify(err)
	if s := apiStatus(err); s == 401 || s == 403 {
		what, cause = fmt.Sprintf("HTTP %d", s), "cluster token mismatch: pass the cluster's token (--token, --token-file or the config's cluster_token)"
	}
	rep := doctor.Report{Node: clientNode, Role: clientNode}
	rep.Checks = append(rep.Checks, doctor.Check{Name: "cluster api", Status: doctor.StatusFail,
		Measured: fmt.Sprintf("GET /api/cluster: %s (%v)", what, err), Cause: cause})
	var targets []doctor.Target
	for _, h := range d.hosts {
		targets = append(targets, doctor.Target{Name: "host api " + h, Kind: doctor.KindHTTP, Address: h + "/api/doctor?ping=1"})
	}
	checks, _ := doctor.ProbeAll(ctx, targets, d.probeTimeout, d.token)
	rep.Checks = append(rep.Checks, checks...)
	return rep
}

// membersOf lists the replicas of the Raft configuration and the registered
// runners, each sorted by name.
func membersOf(st api.ClusterStatus, nodes []api.NodeView) []*member {
	var out []*member
	reps := append([]api.Replica(nil), st.Replicas...)
	sort.Slice(reps, func(i, j int) bool { return reps[i].ID < reps[j].ID })
	for _, r := range reps {
		out = append(out, &member{id: r.ID, role: "host", base: r.API, path: "/api/doctor", raft: r.Raft, state: r.State})
	}
	ns := append([]api.NodeView(nil), nodes...)
	sort.Slice(ns, func(i, j int) bool { return ns[i].Hostname < ns[j].Hostname })
	for _, n := range ns {
		out = append(out, &member{id: n.Hostname, role: "runner", base: n.URL, path: "/doctor", state: string(n.Status)})
	}
	for _, m := range out {
		m.report = doctor.Report{Node: m.id, Role: m.role}
	}
	return out
}

// gossipOnly returns the gossip members that are neither in the Raft
// configuration nor registered: a replica that never joined, a runner whose
// registration fails (wrong token, host API unreachable).
func gossipOnly(known []*member, peers []doctor.Peer) []*member {
	have := map[string]bool{}
	for _, m := range known {
		have[m.role+"/"+m.id] = true
	}
	var out []*member
	for _, p := range peers {
		if (p.Role != "host" && p.Role != "runner") || have[p.Role+"/"+p.ID] {
			continue
		}
		m := &member{id: p.ID, role: p.Role, base: p.API, raft: p.Raft, path: "/doctor", state: "in gossip only"}
		if p.Role == "host" {
			m.path, m.state = "/api/doctor", "in gossip, not in the raft configuration"
		}
		m.report = doctor.Report{Node: m.id, Role: m.role}
		m.report.Checks = append(m.report.Checks, doctor.Check{Name: "membership", Status: doctor.StatusFail, Measured: m.state,
			Cause: map[string]string{
				"host":   "the replica never joined the Raft group: check its bootstrap_expect and that the leader reaches its Raft port",
				"runner": "the runner is alive but not registered: its cluster token is rejected or it cannot reach any host API (see its probes)",
			}[p.Role]})
		out = append(out, m)
	}
	return out
}

// memberClient is an API client for exactly one member.
func (d *doctorRun) memberClient(base string) (*api.Client, error) {
	cc := api.DefaultClientConfig()
	cc.Hosts = []string{base}
	cc.Token = d.token
	cc.Timeout = 2*d.probeTimeout + 5*time.Second
	cc.DialTimeout = min(d.probeTimeout, api.DefaultClientDialTimeout)
	cc.UserAgent = "hakuriver-doctor"
	c, err := api.NewClient(cc)
	if err != nil {
		return nil, fmt.Errorf("member address %q: %w", base, err)
	}
	return c, nil
}

// writeProbe has the first replica that answers write a shared-storage
// probe; its answer also gives the gossip view (peers). The write's own check
// goes to the writer's report; when no replica could write, a failed check
// goes to the first replica that answered.
func (d *doctorRun) writeProbe(ctx context.Context, members []*member) (*doctor.ProbeFile, []doctor.Peer) {
	var peers []doctor.Peer
	var firstFailed *member
	var failed doctor.Check
	for _, m := range members {
		if m.role != "host" || m.base == "" {
			continue
		}
		c, err := d.memberClient(m.base)
		if err != nil {
			continue
		}
		var rep doctor.Report
		_, err = c.Do(ctx, "POST", m.path, doctor.Request{WriteProbe: true, TimeoutMS: int(d.probeTimeout.Milliseconds())}, &rep)
		c.Close()
		if err != nil {
			continue
		}
		if peers == nil {
			peers = rep.Peers
		}
		write := findCheck(rep.Checks, "shared storage write")
		if rep.Probe != nil {
			m.extra = append(m.extra, write)
			return rep.Probe, peers
		}
		if firstFailed == nil {
			firstFailed, failed = m, write
		}
	}
	if firstFailed != nil {
		firstFailed.extra = append(firstFailed.extra, failed)
	}
	return nil, peers
}

// findCheck returns the check called name, or a failed placeholder.
func findCheck(checks []doctor.Check, name string) doctor.Check {
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	return doctor.Check{Name: name, Status: doctor.StatusFail, Measured: "not reported", Cause: "the member runs an older version without this check"}
}

// plan gives every member the paths it opens and the probe to read back.
func (d *doctorRun) plan(members []*member, peers []doctor.Peer, tasks []fsm.Task, probe *doctor.ProbeFile) {
	runnerURL := map[string]string{}
	for _, m := range members {
		if m.role == "runner" {
			runnerURL[m.id] = m.base
		}
	}
	for _, m := range members {
		var t []doctor.Target
		add := func(kind doctor.Kind, name, addr string) {
			if addr != "" {
				t = append(t, doctor.Target{Name: name, Kind: kind, Address: addr})
			}
		}
		for _, o := range members {
			if o == m {
				continue
			}
			switch {
			case o.role == "host" && o.base != "":
				add(doctor.KindHTTP, "host api "+o.id, o.base+"/api/doctor?ping=1")
			case o.role == "runner" && m.role == "host" && o.base != "":
				add(doctor.KindHTTP, "runner api "+o.id, o.base+"/doctor?ping=1")
			}
			if m.role == "host" && o.role == "host" {
				add(doctor.KindTCP, "raft "+o.id, o.raft)
			}
		}
		for _, p := range peers {
			if p.ID == m.id && p.Role == m.role {
				continue
			}
			if m.role == "host" || p.Role == "host" {
				add(doctor.KindTCP, "gossip tcp "+p.ID, p.Gossip)
				add(doctor.KindUDPGossip, "gossip udp "+p.ID, p.Gossip)
			}
		}
		if m.role == "host" {
			for _, task := range tasks {
				if task.TaskType != fsm.TaskVPS || task.SSHPort <= 0 {
					continue
				}
				if u, err := url.Parse(runnerURL[task.AssignedNode]); err == nil && u.Hostname() != "" {
					add(doctor.KindTCP, fmt.Sprintf("vps %d ssh on %s", task.TaskID, task.AssignedNode),
						net.JoinHostPort(u.Hostname(), strconv.Itoa(task.SSHPort)))
				}
			}
		}
		m.req = doctor.Request{Targets: t, TimeoutMS: int(d.probeTimeout.Milliseconds())}
		if probe != nil && !(m.role == "host" && m.id == probe.Writer) {
			m.req.ReadProbe = probe
		}
	}
}

// examine calls every member's doctor endpoint (and each replica's own
// /api/cluster) in parallel and records its report, clock skew and status.
func (d *doctorRun) examine(ctx context.Context, members []*member) {
	sem := make(chan struct{}, doctorWorkers)
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			d.examineOne(ctx, m)
		})
	}
	wg.Wait()
}

func (d *doctorRun) examineOne(ctx context.Context, m *member) {
	defer func() {
		if !m.reached {
			m.report.Checks = append(m.report.Checks, m.extra...)
		}
	}()
	if m.base == "" {
		what := "not alive in gossip, no API address known"
		if m.role == "runner" {
			what = "registered without an API address"
		}
		m.report.Checks = append(m.report.Checks, doctor.Check{Name: "reachable", Status: doctor.StatusFail,
			Measured: fmt.Sprintf("%s (state %s)", what, orDash(m.state)),
			Cause:    "the process is down, or its gossip port is blocked: see the other members' raft and gossip probes"})
		return
	}
	c, err := d.memberClient(m.base)
	if err != nil {
		m.report.Checks = append(m.report.Checks, doctor.Check{Name: "reachable", Status: doctor.StatusFail, Measured: err.Error(),
			Cause: "the cluster lists a malformed address for this member"})
		return
	}
	defer c.Close()
	var rep doctor.Report
	t0 := time.Now()
	_, err = c.Do(ctx, "POST", m.path, m.req, &rep)
	t1 := time.Now()
	if err != nil {
		what, cause := doctor.Classify(err)
		if s := apiStatus(err); s != 0 {
			what, cause = fmt.Sprintf("HTTP %d", s), "the member answers with an error: see the measured message"
			if s == 401 || s == 403 {
				cause = "cluster token mismatch: this member's cluster token differs from the one doctor was given"
			}
		}
		m.report.Checks = append(m.report.Checks, doctor.Check{Name: "reachable", Status: doctor.StatusFail,
			Measured: fmt.Sprintf("POST %s%s: %s (%v)", m.base, m.path, what, lastErr(err)), Cause: cause})
		return
	}
	rep.Node, rep.Role = m.id, m.role // the cluster's name for it
	rep.Checks = append(append(m.report.Checks, rep.Checks...), m.extra...)
	m.report, m.reached = rep, true
	rtt := max(t1.Sub(t0)-time.Duration(rep.ElapsedMS*float64(time.Millisecond)), 0)
	m.skewErr = rtt / 2
	m.skew = rep.Time.Add(rtt / 2).Sub(t1)
	if m.role == "host" {
		if st, err := c.Cluster(ctx, false); err == nil {
			m.status = &st
		}
	}
}

// lastErr drops the client's "no replica reachable (tried ...)" wrapping
// around the one transport error of a single-member call.
func lastErr(err error) error {
	if errors.Is(err, api.ErrNoReplica) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			if errs := j.Unwrap(); len(errs) > 0 {
				return errs[len(errs)-1]
			}
		}
	}
	return err
}

// clientAPIProbes probes, from this machine, every replica's API.
func (d *doctorRun) clientAPIProbes(ctx context.Context, members []*member) []doctor.Check {
	var targets []doctor.Target
	for _, m := range members {
		if m.role == "host" && m.base != "" {
			targets = append(targets, doctor.Target{Name: "host api " + m.id, Kind: doctor.KindHTTP, Address: m.base + "/api/doctor?ping=1"})
		}
	}
	checks, _ := doctor.ProbeAll(ctx, targets, d.probeTimeout, d.token)
	return checks
}

// clientSSHProbes probes, from this machine, every replica's SSH proxy, as
// the replicas reported it (or gossip announces it).
func (d *doctorRun) clientSSHProbes(ctx context.Context, members []*member, peers []doctor.Peer) []doctor.Check {
	addrs := map[string]string{}
	for _, p := range peers {
		if p.Role == "host" && p.SSHProxy != "" {
			addrs[p.ID] = p.SSHProxy
		}
	}
	for _, m := range members {
		if a := m.report.Endpoints["ssh_proxy"]; m.role == "host" && a != "" {
			addrs[m.id] = a
		}
	}
	ids := make([]string, 0, len(addrs))
	for id := range addrs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	targets := make([]doctor.Target, 0, len(ids))
	for _, id := range ids {
		targets = append(targets, doctor.Target{Name: "ssh proxy " + id, Kind: doctor.KindTCP, Address: addrs[id]})
	}
	checks, _ := doctor.ProbeAll(ctx, targets, d.probeTimeout, d.token)
	return checks
}

// leaderCheck checks that a leader is known and that replicas agree on it.
func leaderCheck(st api.ClusterStatus, members []*member) doctor.Check {
	c := doctor.Check{Name: "raft leader", Status: doctor.StatusOK}
	if st.LeaderID == "" {
		c.Status, c.Measured = doctor.StatusFail, fmt.Sprintf("none known by %s (term %d)", st.NodeID, st.Term)
		c.Cause = "no quorum: fewer than a majority of replicas reach each other over Raft; start the stopped ones or open their Raft ports"
		return c
	}
	c.Measured = fmt.Sprintf("%s (term %d)", st.LeaderID, st.Term)
	var disagree []string
	for _, m := range members {
		if m.status != nil && m.status.LeaderID != st.LeaderID {
			disagree = append(disagree, fmt.Sprintf("%s sees %s", m.id, orDash(m.status.LeaderID)))
		}
	}
	if len(disagree) > 0 {
		c.Status, c.Measured = doctor.StatusWarn, c.Measured+"; but "+strings.Join(disagree, ", ")
		c.Cause = "replicas disagree on the leader: an election is in progress, or a replica is cut off from the others"
	}
	return c
}

// compareMembers compares what must agree across members: versions,
// shared_dir paths and name resolution; and adds each member's clock skew
// and each replica's Raft lag to its own report.
func compareMembers(members []*member) []doctor.Check {
	var out []doctor.Check
	versions, shared := map[string][]string{}, map[string][]string{}
	resolved := map[string]map[string][]string{} // name → addresses → members
	var maxCommit uint64
	for _, m := range members {
		if m.status != nil {
			maxCommit = max(maxCommit, m.status.CommitIndex)
		}
	}
	for _, m := range members {
		if !m.reached {
			continue
		}
		versions[m.report.Version] = append(versions[m.report.Version], m.id)
		shared[m.report.SharedDir] = append(shared[m.report.SharedDir], m.id)
		for name, addrs := range m.report.Resolved {
			a := append([]string(nil), addrs...)
			sort.Strings(a)
			key := strings.Join(a, ",")
			if resolved[name] == nil {
				resolved[name] = map[string][]string{}
			}
			resolved[name][key] = append(resolved[name][key], m.id)
		}
		m.report.Checks = append(m.report.Checks, skewCheck(m))
		if m.status != nil {
			m.report.Checks = append(m.report.Checks, lagCheck(m.status, maxCommit))
		}
	}
	out = append(out, agreement("versions", versions, "mixed versions: finish the rolling upgrade so every node runs the same release"))
	out = append(out, agreement("shared_dir paths", shared,
		"shared_dir differs between nodes: fine only if each is a mount of the same storage (the shared storage checks prove it)"))
	names := make([]string, 0, len(resolved))
	for n := range resolved {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if len(resolved[n]) > 1 {
			out = append(out, agreement("resolve "+n, resolved[n],
				"the name resolves differently on different nodes: make DNS or /etc/hosts agree everywhere"))
		}
	}
	return out
}

// agreement is ok when every member reported the same value, else warn.
func agreement(name string, byValue map[string][]string, cause string) doctor.Check {
	vals := make([]string, 0, len(byValue))
	for v := range byValue {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	if len(vals) == 0 {
		return doctor.Check{Name: name, Status: doctor.StatusWarn, Measured: "no member answered", Cause: "see the members' reachable checks"}
	}
	if len(vals) == 1 {
		return doctor.Check{Name: name, Status: doctor.StatusOK, Measured: fmt.Sprintf("%s on all %d members", orDash(vals[0]), len(byValue[vals[0]]))}
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprintf("%s on %s", orDash(v), strings.Join(byValue[v], ","))
	}
	return doctor.Check{Name: name, Status: doctor.StatusWarn, Measured: strings.Join(parts, "; "), Cause: cause}
}

// skewCheck judges a member's clock against this machine's.
func skewCheck(m *member) doctor.Check {
	c := doctor.Check{Name: "clock skew", Status: doctor.StatusOK,
		Measured: fmt.Sprintf("%+.3fs vs this machine (±%.1fms)", m.skew.Seconds(), float64(m.skewErr)/float64(time.Millisecond))}
	abs := max(m.skew, -m.skew)
	switch {
	case abs > skewFail:
		c.Status = doctor.StatusFail
	case abs > skewWarn:
		c.Status = doctor.StatusWarn
	}
	if c.Status != doctor.StatusOK {
		c.Cause = "clocks disagree: run NTP (chrony or systemd-timesyncd) on every node; heartbeat ages and log times are off otherwise"
	}
	return c
}

// lagCheck judges how far a replica applies behind the cluster's commit.
func lagCheck(st *api.ClusterStatus, maxCommit uint64) doctor.Check {
	var lag uint64
	if maxCommit > st.AppliedIndex {
		lag = maxCommit - st.AppliedIndex
	}
	c := doctor.Check{Name: "raft lag", Status: doctor.StatusOK,
		Measured: fmt.Sprintf("%s, applied %d, %d behind commit %d", strings.ToLower(st.State), st.AppliedIndex, lag, maxCommit)}
	if lag > raftLagWarn {
		c.Status, c.Cause = doctor.StatusWarn, "this replica applies far behind the others: it is overloaded, its disk is slow, or it is catching up after a restart"
	}
	return c
}

// attachHealth adds each runner's heartbeat age (as the leader saw it) to
// its report. Ages are measured on the leader's clock when its skew is known.
func (d *doctorRun) attachHealth(members []*member, nodes []api.NodeView, at time.Time) {
	var leaderSkew time.Duration
	for _, m := range members {
		if m.status != nil && m.status.State == "leader" {
			leaderSkew = m.skew
		}
	}
	byName := map[string]api.NodeView{}
	for _, n := range nodes {
		byName[n.Hostname] = n
	}
	period := d.heartbeat
	for _, m := range members {
		// The cluster's own heartbeat period beats this client's config.
		if m.status != nil && m.status.HeartbeatIntervalSeconds > 0 {
			period = time.Duration(m.status.HeartbeatIntervalSeconds * float64(time.Second))
			break
		}
	}
	if period <= 0 {
		period = config.Default().Timing.HeartbeatPeriod()
	}
	for _, m := range members {
		n, ok := byName[m.id]
		if m.role != "runner" || !ok {
			continue
		}
		m.report.Checks = append(m.report.Checks, heartbeatCheck(n, at.Add(leaderSkew), period))
	}
}

// heartbeatCheck judges a runner's last heartbeat.
func heartbeatCheck(n api.NodeView, now time.Time, period time.Duration) doctor.Check {
	c := doctor.Check{Name: "heartbeat", Status: doctor.StatusOK}
	if n.Status == fsm.NodeOffline {
		c.Status, c.Cause = doctor.StatusFail, "the runner stopped heart-beating: it is down, or its path to the host API is blocked (see its probes)"
	}
	if n.LastHeartbeat == nil {
		c.Measured = string(n.Status) + ", no heartbeat seen by the leader"
		if c.Status == doctor.StatusOK {
			c.Status, c.Cause = doctor.StatusWarn, "no live heartbeat on the leader yet: the runner just started, or a new leader was elected moments ago"
		}
		return c
	}
	t, err := time.Parse(time.RFC3339Nano, *n.LastHeartbeat)
	if err != nil {
		c.Measured = string(n.Status) + ", last heartbeat " + *n.LastHeartbeat
		return c
	}
	age := max(now.Sub(t), 0)
	c.Measured = fmt.Sprintf("%s, last heartbeat %.1fs ago (every %s)", n.Status, age.Seconds(), period)
	if c.Status == doctor.StatusOK && age > heartbeatWarn*period {
		c.Status, c.Cause = doctor.StatusWarn, "heartbeats are late: the runner is overloaded or its path to the host API is slow or lossy"
	}
	return c
}
