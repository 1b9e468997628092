package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/fsm"
	"github.com/hakuriver/hakuriver-ha/ops/doctor"
)

// doctorWorkers bounds the members examined at once.
const doctorWorkers = 32

// doctorRun gathers one cluster report through the API client; ops/doctor
// plans the probes and compares the answers.
type doctorRun struct {
	client *api.Client
	hosts  []string
	token  string
	// bearer is the caller's account token, used when there is no
	// cluster token.
	bearer       string
	probeTimeout time.Duration
	heartbeat    time.Duration
}

// run gathers every member's view and compares them. It never fails: what
// it cannot reach becomes a failed check.
func (d *doctorRun) run(ctx context.Context) doctor.ClusterReport {
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
		return doctor.Summarise([]doctor.Report{d.unreachable(ctx, stErr)}, start, time.Now())
	}
	runners := doctorRunners(nodes)
	members := doctor.MembersOf(doctorReplicas(st.Replicas), runners)
	probe, peers := d.writeProbe(ctx, members)
	members = append(members, doctor.GossipOnly(members, peers)...)
	doctor.Plan(members, peers, doctorVPS(tasks), probe, d.probeTimeout)

	var apiChecks []doctor.Check
	wg.Go(func() { apiChecks, _ = doctor.ProbeAll(ctx, doctor.APITargets(members), d.probeTimeout, d.token) })
	d.examine(ctx, members)
	wg.Wait()
	sshChecks, _ := doctor.ProbeAll(ctx, doctor.SSHProxyTargets(members, peers), d.probeTimeout, d.token)
	client := doctor.Report{Node: doctor.ClientNode, Role: doctor.ClientNode, Version: version, Time: time.Now(),
		Checks: append(apiChecks, sshChecks...)}

	view := doctor.View{Status: replicaStatus(st), Runners: runners, RunnersAt: nodesAt, RunnersErr: nodesErr, HeartbeatPeriod: d.heartbeat}
	return doctor.Summarise(doctor.Aggregate(view, members, client), start, time.Now())
}

// replicaStatus maps a replica's /api/cluster answer onto what doctor
// compares.
func replicaStatus(st api.ClusterStatus) doctor.ReplicaStatus {
	return doctor.ReplicaStatus{NodeID: st.NodeID, LeaderID: st.LeaderID, Term: st.Term, State: st.State,
		AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex,
		HeartbeatInterval: time.Duration(st.HeartbeatIntervalSeconds * float64(time.Second))}
}

func doctorReplicas(reps []api.Replica) []doctor.Replica {
	out := make([]doctor.Replica, len(reps))
	for i, r := range reps {
		out[i] = doctor.Replica{ID: r.ID, API: r.API, Raft: r.Raft, State: r.State}
	}
	return out
}

func doctorRunners(nodes []api.NodeView) []doctor.Runner {
	out := make([]doctor.Runner, len(nodes))
	for i, n := range nodes {
		out[i] = doctor.Runner{Name: n.Hostname, URL: n.URL, Status: string(n.Status), Offline: n.Status == fsm.NodeOffline}
		if n.LastHeartbeat != nil {
			out[i].LastHeartbeat = *n.LastHeartbeat
		}
	}
	return out
}

// doctorVPS lists the SSH ports of the running VPS tasks.
func doctorVPS(tasks []fsm.Task) []doctor.VPSPort {
	var out []doctor.VPSPort
	for _, t := range tasks {
		if t.TaskType == fsm.TaskVPS && t.SSHPort > 0 {
			out = append(out, doctor.VPSPort{TaskID: t.TaskID, Node: t.AssignedNode, SSHPort: t.SSHPort})
		}
	}
	return out
}

// unreachable reports a cluster whose API no configured replica answers:
// the client's own probes of each configured replica say why.
func (d *doctorRun) unreachable(ctx context.Context, err error) doctor.Report {
	what, cause := doctor.Classify(err)
	if s := api.StatusCode(err); s == 401 || s == 403 {
		what, cause = fmt.Sprintf("HTTP %d", s), "cluster token mismatch: pass the cluster's token (--token, --token-file or the config's cluster_token)"
	}
	rep := doctor.Report{Node: doctor.ClientNode, Role: doctor.ClientNode}
	rep.Checks = append(rep.Checks, doctor.Check{Name: "cluster api", Status: doctor.StatusFail,
		Measured: fmt.Sprintf("GET /api/cluster: %s (%v)", what, err), Cause: cause})
	var targets []doctor.Target
	for _, h := range d.hosts {
		targets = append(targets, doctor.Target{Name: "host api " + h, Kind: doctor.KindHTTP, Address: h + doctor.HostPath + "?ping=1"})
	}
	checks, _ := doctor.ProbeAll(ctx, targets, d.probeTimeout, d.token)
	rep.Checks = append(rep.Checks, checks...)
	return rep
}

// memberClient is an API client for exactly one member.
func (d *doctorRun) memberClient(base string) (*api.Client, error) {
	cc := api.DefaultClientConfig()
	cc.Hosts = []string{base}
	cc.Token = d.token
	if d.token == "" {
		cc.Bearer = d.bearer
	}
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
func (d *doctorRun) writeProbe(ctx context.Context, members []*doctor.Member) (*doctor.ProbeFile, []doctor.Peer) {
	var peers []doctor.Peer
	var firstFailed *doctor.Member
	var failed doctor.Check
	for _, m := range members {
		if m.Role != doctor.RoleHost || m.Base == "" {
			continue
		}
		c, err := d.memberClient(m.Base)
		if err != nil {
			continue
		}
		var rep doctor.Report
		_, err = c.Do(ctx, "POST", m.Path, doctor.Request{WriteProbe: true, TimeoutMS: int(d.probeTimeout.Milliseconds())}, &rep)
		c.Close()
		if err != nil {
			continue
		}
		if peers == nil {
			peers = rep.Peers
		}
		write := doctor.FindCheck(rep.Checks, "shared storage write")
		if rep.Probe != nil {
			m.Extra = append(m.Extra, write)
			return rep.Probe, peers
		}
		if firstFailed == nil {
			firstFailed, failed = m, write
		}
	}
	if firstFailed != nil {
		firstFailed.Extra = append(firstFailed.Extra, failed)
	}
	return nil, peers
}

// examine calls every member's doctor endpoint (and each replica's own
// /api/cluster) in parallel and records its report, clock skew and status.
func (d *doctorRun) examine(ctx context.Context, members []*doctor.Member) {
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

func (d *doctorRun) examineOne(ctx context.Context, m *doctor.Member) {
	if m.Base == "" {
		m.Unreached(doctor.NoAddressCheck(m))
		return
	}
	c, err := d.memberClient(m.Base)
	if err != nil {
		m.Unreached(doctor.Check{Name: "reachable", Status: doctor.StatusFail, Measured: err.Error(),
			Cause: "the cluster lists a malformed address for this member"})
		return
	}
	defer c.Close()
	var rep doctor.Report
	t0 := time.Now()
	_, err = c.Do(ctx, "POST", m.Path, m.Req, &rep)
	t1 := time.Now()
	if err != nil {
		what, cause := doctor.Classify(err)
		if s := api.StatusCode(err); s != 0 {
			what, cause = fmt.Sprintf("HTTP %d", s), "the member answers with an error: see the measured message"
			if s == 401 || s == 403 {
				cause = "cluster token mismatch: this member's cluster token differs from the one doctor was given"
			}
		}
		m.Unreached(doctor.Check{Name: "reachable", Status: doctor.StatusFail,
			Measured: fmt.Sprintf("POST %s%s: %s (%v)", m.Base, m.Path, what, lastErr(err)), Cause: cause})
		return
	}
	m.Record(rep, t0, t1)
	if m.Role == doctor.RoleHost {
		if st, err := c.Cluster(ctx, false); err == nil {
			rs := replicaStatus(st)
			m.Status = &rs
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
