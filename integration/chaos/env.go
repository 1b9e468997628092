//go:build integration

package chaos

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hakuriver/hakuriver-ha/cluster/api"
	"github.com/hakuriver/hakuriver-ha/integration/harness"
)

// Bounds of a run.
const (
	// quiesceTimeout bounds the wait for every task to end after healing.
	quiesceTimeout = 90 * time.Second
	// agreeTimeout bounds the wait for the replicas to list the same state.
	agreeTimeout = 30 * time.Second
	// recoverTimeout bounds the wait for writes through every member.
	recoverTimeout = 60 * time.Second
)

// RunnerName is the native runner of an Env.
const RunnerName = "chaos-r1"

// Env is a 3-replica cluster and one native runner, each in its own
// network namespace on a Bridge, with a workload recording into one
// History.
type Env struct {
	TB        harness.TB
	C         *harness.Cluster
	Net       *harness.Bridge
	TokenFile string
	Hist      *History
	W         *Workload

	// disks maps a replica's data dir to the major:minor of the loop
	// device under it (absent: a tmpfs).
	disks map[string]string
	// rng draws a fault's own choices (which member, how much); Run seeds
	// it, so a campaign's seed fixes them.
	rng *rand.Rand

	mu         sync.Mutex
	isolations []Isolation
	reports    []Report
	// last is the final state the last Check saw.
	last Final
}

// NewEnv builds the network, starts the cluster and the runner. An error
// wrapping harness.ErrNetnsUnavailable means the machine cannot host it.
func NewEnv(tb harness.TB, bin string) (*Env, error) {
	tb.Helper()
	net, err := harness.NewBridge(tb, 4)
	if err != nil {
		return nil, err
	}
	ips, nss := net.IPs(), net.Netns()
	// Each data dir is a small filesystem of its own, so that a disk can
	// be filled: ext4 on a loop device, whose writes can be slowed (see
	// slowdisk.go), or a tmpfs where loop devices are not available; the
	// disk guard keeps only 1 MiB free (the default 512 MiB would not fit).
	disks := map[string]string{}
	c := harness.StartCluster(tb, harness.Options{Bin: bin, Replicas: 3, Addresses: ips[:3], Netns: nss[:3],
		HeartbeatInterval: 1, HeartbeatTimeoutFactor: 5, Args: []string{"--min-free-disk", "1Mi"},
		BeforeStart: func(r *harness.Replica) error {
			dev, err := mountLoopExt4(tb, r.DataDir(), DataDirMiB)
			if err == nil {
				disks[r.DataDir()] = dev
				return nil
			}
			tb.Logf("%s: data dir on a tmpfs (no slow-fsync fault): %v", r.ID, err)
			return mountTmpfs(tb, r.DataDir(), DataDirMiB)
		}})
	c.StartRunner(RunnerName, harness.RunnerOptions{Cores: 4, Memory: "2G", NoDocker: true, NoCgroups: true, Address: ips[3], Netns: nss[3]})
	e := &Env{TB: tb, C: c, Net: net, disks: disks, TokenFile: filepath.Join(c.SharedDir(), "chaos-tokens"), Hist: &History{}}
	var targets []Target
	for i := range c.N() {
		targets = append(targets, Target{ID: c.Replica(i).ID, API: c.Replica(i).API})
	}
	e.W = NewWorkload(e.Hist, c.AdminToken(), e.TokenFile, RunnerName, targets)
	return e, nil
}

// Isolated records that member was cut off from a majority from..to.
func (e *Env) Isolated(member string, from, to time.Time) {
	e.mu.Lock()
	e.isolations = append(e.isolations, Isolation{Member: member, From: from, To: to})
	e.mu.Unlock()
}

// Report is what one fault did to the clients.
type Report struct {
	Fault string
	// Minority names the members cut off from the majority.
	Minority []string
	// Writes, WriteErrors: writes invoked while the fault lasted and how
	// many of them were not acknowledged.
	Writes, WriteErrors int
	// MajorityWrites, MajorityErrors: the same for writes sent to a
	// member on the majority side.
	MajorityWrites, MajorityErrors int
	// MinorityWrites: writes sent to a member on the minority side (the
	// checker requires that none was acknowledged).
	MinorityWrites int
	// Resume: from the fault to the first acknowledged write invoked
	// after it through a member on the majority side (-1: none).
	Resume time.Duration
	// Recovery: from healing until a write through every replica was
	// acknowledged.
	Recovery time.Duration
}

// ErrorRate is WriteErrors/Writes.
func (r Report) ErrorRate() float64 {
	if r.Writes == 0 {
		return 0
	}
	return float64(r.WriteErrors) / float64(r.Writes)
}

// MajorityErrorRate is MajorityErrors/MajorityWrites.
func (r Report) MajorityErrorRate() float64 {
	if r.MajorityWrites == 0 {
		return 0
	}
	return float64(r.MajorityErrors) / float64(r.MajorityWrites)
}

// Reports returns the reports of every fault so far.
func (e *Env) Reports() []Report {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.reports)
}

// Fault is one fault to inject under load.
type Fault struct {
	Name string
	// Inject injects the fault and returns the node IDs on the minority
	// side (cut off: they must acknowledge no write) and those out of
	// service (killed), both excluded from the majority side.
	Inject func(e *Env) (minority, down []string, err error)
	// Heal undoes it.
	Heal func(e *Env) error
	// MinHold, when set, is the shortest the fault lasts, whatever hold
	// Run is given.
	MinHold time.Duration
}

// Run injects f for hold under a load of clients (pinned clients talk only
// to the leader at the time of injection), heals, waits until writes go
// through every replica again, and records a Report.
func (e *Env) Run(ctx context.Context, f Fault, clients, pinned int, hold time.Duration, seed uint64) (Report, error) {
	leader := e.C.WaitLeader(harness.LeaderTimeout)
	e.W.Start(ctx, clients, seed, 10000, func(int) int { return -1 })
	e.W.Start(ctx, pinned, seed+1, 10000, func(int) int { return leader })
	sleep(ctx, time.Second)
	e.rng = rand.New(rand.NewPCG(seed, 0x5eed))
	minority, down, err := f.Inject(e)
	from := time.Now()
	if err != nil {
		e.W.Stop()
		return Report{}, fmt.Errorf("inject %s: %w", f.Name, err)
	}
	sleep(ctx, max(hold, f.MinHold))
	to := time.Now()
	for _, m := range minority {
		e.Isolated(m, from, to)
	}
	if err := f.Heal(e); err != nil {
		e.W.Stop()
		return Report{}, fmt.Errorf("heal %s: %w", f.Name, err)
	}
	healed := time.Now()
	rep := Report{Fault: f.Name, Minority: minority, Resume: -1}
	recovered, err := e.probeAll(ctx)
	e.W.Stop()
	if err != nil {
		return rep, fmt.Errorf("after %s: %w", f.Name, err)
	}
	rep.Recovery = recovered.Sub(healed)
	out := append(slices.Clone(minority), down...)
	for _, op := range e.Hist.Ops() {
		if !op.Write() || op.Invoke.Before(from) || op.Invoke.After(to) {
			continue
		}
		rep.Writes++
		majority := !slices.Contains(out, op.Member)
		if majority {
			rep.MajorityWrites++
		}
		if slices.Contains(minority, op.Member) {
			rep.MinorityWrites++
		}
		if op.Result != Ok {
			rep.WriteErrors++
			if majority {
				rep.MajorityErrors++
			}
		} else if !slices.Contains(out, op.Member) && (rep.Resume < 0 || op.Complete.Sub(from) < rep.Resume) {
			rep.Resume = op.Complete.Sub(from)
		}
	}
	e.mu.Lock()
	e.reports = append(e.reports, rep)
	e.mu.Unlock()
	return rep, nil
}

// probeAll submits through every replica in turn until each has
// acknowledged one write, the runner is online again and every replica's
// gossip sees every other alive (full recovery), and returns when the last
// of these was seen.
func (e *Env) probeAll(ctx context.Context) (time.Time, error) {
	start := time.Now()
	deadline := start.Add(recoverTimeout)
	var steps []string
	err := harness.Eventually(recoverTimeout, func() (bool, string) {
		n, err := e.C.Node(RunnerName)
		if err != nil {
			return false, err.Error()
		}
		return n.Status == "online", "runner " + RunnerName + " is " + string(n.Status)
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("runner not online again within %s: %w", recoverTimeout, err)
	}
	steps = append(steps, fmt.Sprintf("runner online +%s", time.Since(start).Round(time.Millisecond)))
	rng := rand.New(rand.NewPCG(0, 0))
	for _, t := range e.W.Targets {
		for n := 1; ; n++ {
			op := e.W.submit(ctx, -1, t, rng)
			if op.Result == Ok {
				steps = append(steps, fmt.Sprintf("%s +%s (%d tries, last %s)", t.ID, time.Since(start).Round(time.Millisecond), n, op.Complete.Sub(op.Invoke).Round(time.Millisecond)))
				break
			}
			if n == 1 || op.Complete.Sub(op.Invoke) > time.Second {
				steps = append(steps, fmt.Sprintf("%s try %d: %s after %s", t.ID, n, op.Err, op.Complete.Sub(op.Invoke).Round(time.Millisecond)))
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return time.Time{}, fmt.Errorf("no write through %s acknowledged within %s: %s", t.ID, recoverTimeout, op.Err)
			}
			sleep(ctx, 100*time.Millisecond)
		}
	}
	// Gossip healed too: every replica sees every other alive (a replica
	// gossip still holds dead is "unreachable" in GET /api/cluster).
	err = harness.Eventually(time.Until(deadline), func() (bool, string) {
		for i := range e.C.N() {
			st, err := e.C.Status(i)
			if err != nil {
				return false, err.Error()
			}
			for _, r := range st.Replicas {
				if r.State == "unreachable" {
					return false, fmt.Sprintf("%s sees %s unreachable", st.NodeID, r.ID)
				}
			}
		}
		return true, ""
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("gossip not healed within %s: %w", recoverTimeout, err)
	}
	steps = append(steps, fmt.Sprintf("gossip healed +%s", time.Since(start).Round(time.Millisecond)))
	e.TB.Logf("recovery: %s", strings.Join(steps, "; "))
	return time.Now(), nil
}

// Quiesce waits until every task the cluster holds has ended and the
// replicas agree on their applied index, then returns the final state.
func (e *Env) Quiesce() (Final, error) {
	leader := e.C.WaitLeader(harness.LeaderTimeout)
	err := harness.Eventually(quiesceTimeout, func() (bool, string) {
		tasks, err := e.C.AllTasks(leader)
		if err != nil {
			return false, err.Error()
		}
		for _, t := range tasks {
			if !isFinal(string(t.Status)) {
				return false, fmt.Sprintf("task %d is %s", t.TaskID, t.Status)
			}
		}
		return true, ""
	})
	if err != nil {
		return Final{}, fmt.Errorf("quiesce: %w", err)
	}
	final := Final{Replicas: map[string]ReplicaState{}}
	err = harness.Eventually(agreeTimeout, func() (bool, string) {
		final.Order = nil
		var applied []uint64
		for i := range e.C.N() {
			id := e.C.Replica(i).ID
			rs, err := e.replicaState(i)
			if err != nil {
				return false, err.Error()
			}
			final.Replicas[id] = rs
			final.Order = append(final.Order, id)
			applied = append(applied, rs.Applied)
		}
		for _, a := range applied[1:] {
			if a != applied[0] {
				return false, fmt.Sprintf("applied indexes %v", applied)
			}
		}
		return true, ""
	})
	if err != nil {
		// Report what differs: the checker names it as a divergence.
		e.TB.Logf("replicas did not reach one applied index: %v", err)
	}
	toks, err := readTokens(e.TokenFile)
	if err != nil {
		return Final{}, err
	}
	final.Tokens = toks
	if len(final.Order) > 0 {
		ref := final.Replicas[final.Order[0]]
		e.TB.Logf("quiet: %d tasks, %d tokens, applied index %d, state digest %.16s on %s",
			len(ref.Tasks), len(toks), ref.Applied, ref.Digest, final.Order[0])
	}
	return final, nil
}

// replicaState reads replica i's FSM digest (GET
// /api/cluster/state-digest: the SHA-256 of its snapshot encoding) and its
// full task listing between two equal readings of the digest's applied
// index, so that both are that index's.
func (e *Env) replicaState(i int) (ReplicaState, error) {
	for range 20 {
		a, err := e.digest(i)
		if err != nil {
			return ReplicaState{}, err
		}
		tasks, err := e.C.AllTasks(i)
		if err != nil {
			return ReplicaState{}, err
		}
		b, err := e.digest(i)
		if err != nil {
			return ReplicaState{}, err
		}
		if a.AppliedIndex != b.AppliedIndex {
			continue
		}
		rs := ReplicaState{Applied: b.AppliedIndex, Digest: b.SHA256, Tasks: map[string]TaskState{}}
		for _, t := range tasks {
			rs.Tasks[strconv.FormatInt(t.TaskID, 10)] = TaskState{RequestID: t.RequestID, Status: string(t.Status), KillRequestID: t.KillRequestID}
		}
		return rs, nil
	}
	return ReplicaState{}, fmt.Errorf("replica %s keeps applying entries", e.C.Replica(i).ID)
}

// digest asks replica i for its own state digest.
func (e *Env) digest(i int) (api.StateDigest, error) {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	a, err := e.C.CallInternal(ctx, i, http.MethodGet, "/api/cluster/state-digest", nil)
	if err != nil {
		return api.StateDigest{}, err
	}
	if a.Status != http.StatusOK {
		return api.StateDigest{}, fmt.Errorf("GET /api/cluster/state-digest on %s: %s", e.C.Replica(i).ID, a)
	}
	var d api.StateDigest
	return d, a.Decode(&d)
}

// readTokens counts the lines of the token file (absent: none yet).
func readTokens(path string) (map[string]int, error) {
	out := map[string]int{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out[l]++
		}
	}
	return out, sc.Err()
}

// Check quiesces the cluster and checks the whole history so far.
func (e *Env) Check() ([]Anomaly, error) {
	final, err := e.Quiesce()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	iso := slices.Clone(e.isolations)
	e.last = final
	e.mu.Unlock()
	return Check(e.Hist.Ops(), iso, final), nil
}

// Losses counts, as of the last Check, the acknowledged tasks that ended
// lost after running (reported losses) and without running (see Losses).
func (e *Env) Losses() (ran, notRun int) {
	e.mu.Lock()
	final := e.last
	e.mu.Unlock()
	return Losses(e.Hist.Ops(), final)
}

// leaderID returns the node ID of the current leader.
func (e *Env) leaderID() (int, string) {
	i := e.C.WaitLeader(harness.LeaderTimeout)
	return i, e.C.Replica(i).ID
}
